import {
  type AbortableQueryOptions,
  type CompiledQuery,
  DefaultQueryExecutor,
  type DialectAdapter,
  type KyselyPlugin,
  type QueryCompiler,
  type QueryResult,
  type UnknownRow,
} from 'kysely'
import type { ScopedConnectionProvider } from '../guard/transaction-scope.js'
import type { BackendDriver } from './backend-driver.js'

/**
 * A read backend's executor where a replica can pipeline reads (PgReadLane): a query is seen before a
 * connection is taken for it, so that a single read can go on the lane of a replica whose pool has no
 * connection to give, instead of waiting for one. Everything else (a query with an abort signal, a stream,
 * a transaction, a pinned connection, a read the lane does not take) runs as on Kysely's own executor.
 */
export class LaneExecutor extends DefaultQueryExecutor {
  readonly #compiler: QueryCompiler
  readonly #adapter: DialectAdapter
  readonly #provider: ScopedConnectionProvider
  readonly #driver: BackendDriver

  constructor(
    compiler: QueryCompiler,
    adapter: DialectAdapter,
    provider: ScopedConnectionProvider,
    plugins: KyselyPlugin[],
    driver: BackendDriver,
  ) {
    super(compiler, adapter, provider, plugins)
    this.#compiler = compiler
    this.#adapter = adapter
    this.#provider = provider
    this.#driver = driver
  }

  override executeQuery<R>(compiledQuery: CompiledQuery, options?: AbortableQueryOptions): Promise<QueryResult<R>> {
    if (options?.signal) return super.executeQuery<R>(compiledQuery, options)
    let laned: Promise<QueryResult<R>> | undefined
    try {
      // The same refusal as a connection's: a read on the outer backend from inside a write transaction.
      this.#provider.refuseEscape()
      laned = this.#driver.readOnLane<R>(compiledQuery)
    } catch (error) {
      return Promise.reject(error)
    }
    if (!laned) return super.executeQuery<R>(compiledQuery, options)
    return this.plugins.length === 0 ? laned : laned.then((result) => this.#transformed(result, compiledQuery))
  }

  // What Kysely's executor does with a result: each plugin's transformResult, in order.
  async #transformed<R>(result: QueryResult<R>, query: CompiledQuery): Promise<QueryResult<R>> {
    let transformed = result as QueryResult<UnknownRow>
    for (const plugin of this.plugins) {
      transformed = await plugin.transformResult(Object.freeze({ queryId: query.queryId, result: transformed }))
    }
    return transformed as QueryResult<R>
  }

  #with(plugins: KyselyPlugin[]): LaneExecutor {
    return new LaneExecutor(this.#compiler, this.#adapter, this.#provider, plugins, this.#driver)
  }

  override withPlugins(plugins: ReadonlyArray<KyselyPlugin>): LaneExecutor {
    return this.#with([...this.plugins, ...plugins])
  }

  override withPlugin(plugin: KyselyPlugin): LaneExecutor {
    return this.#with([...this.plugins, plugin])
  }

  override withPluginAtFront(plugin: KyselyPlugin): LaneExecutor {
    return this.#with([plugin, ...this.plugins])
  }

  override withoutPlugins(): LaneExecutor {
    return this.#with([])
  }
}

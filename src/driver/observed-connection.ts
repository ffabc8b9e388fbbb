import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely'
import type { FallbackReason } from '../events.js'
import { type QueryContext, serverOf } from '../observability/query-context.js'
import type { Moved, QueryObserver } from '../observability/query-observer.js'
import { BackendConnection } from './backend-connection.js'
import type { BackendDriver } from './backend-driver.js'
import type { Node } from './node.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/** What the driver knew when it handed the connection out (or routed its read again). */
export interface Acquisition {
  readonly observer: QueryObserver
  readonly role: 'read' | 'write'
  readonly system: 'postgresql' | 'mysql'
  readonly session: boolean
  readonly fallback: boolean
  readonly fallbackReason: FallbackReason | undefined
  readonly waitMs: number | undefined
  readonly acquireMs: number
}

/** Where a query ran; these fields change when a read checked on an unconfirmed replica is routed again. */
type Routing = Pick<QueryContext, 'node' | 'server' | 'fallback' | 'fallbackReason' | 'waitMs' | 'acquireMs'>

/**
 * A backend connection whose queries are logged and traced. Handed out only while the log, a channel
 * subscriber or an OpenTelemetry SDK is there, so that unobserved queries take the plain path.
 */
export class ObservedConnection extends BackendConnection {
  /** The query under way, while it may still be routed again. */
  #current: { readonly context: { -readonly [K in keyof Routing]: Routing[K] }; readonly moved: Moved } | undefined

  constructor(
    inner: DatabaseConnection,
    node: Node,
    driver: BackendDriver,
    private acquisition: Acquisition,
  ) {
    super(inner, node, driver)
  }

  override executeQuery<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    const context = this.#context(query, false)
    return this.acquisition.observer.execute(context, this.#watch(context), () => super.executeQuery<R>(query, options))
  }

  override streamQuery<R>(
    query: CompiledQuery,
    chunkSize: number,
    options?: ExecuteOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const context = this.#context(query, true)
    return this.acquisition.observer.stream(
      context,
      this.#watch(context),
      super.streamQuery<R>(query, chunkSize, options),
    )
  }

  /**
   * The read went to a replica unconfirmed, which had not replayed its target: it continues on `fresh`,
   * and its log entry, channel message and span say so (the node that answers, the wait, the fallback).
   */
  override attach(fresh: BackendConnection): void {
    super.attach(fresh)
    if (fresh instanceof ObservedConnection) {
      const { fallback, fallbackReason, waitMs, acquireMs } = fresh.acquisition
      // Time spent acquiring, both times; not the unconfirmed read's own round trip in between.
      this.acquisition = {
        ...this.acquisition,
        fallback,
        fallbackReason,
        waitMs,
        acquireMs: this.acquisition.acquireMs + acquireMs,
      }
    }
    const current = this.#current
    if (!current) return
    Object.assign(current.context, this.#routing())
    current.moved.onMove?.()
  }

  /** Only a connection still unconfirmed can be routed again; its first query is the one that moves. */
  #watch(context: QueryContext): Moved | undefined {
    if (!this.unconfirmed) return undefined
    const moved: Moved = {}
    this.#current = { context, moved }
    return moved
  }

  #routing(): Routing {
    const { fallback, fallbackReason, waitMs, acquireMs } = this.acquisition
    const node = this.node.name
    return { node, server: serverOf(node), fallback, fallbackReason, waitMs, acquireMs }
  }

  #context(query: CompiledQuery, isStream: boolean): QueryContext {
    const { role, system, session } = this.acquisition
    return { query, role, system, session, isStream, ...this.#routing() }
  }
}

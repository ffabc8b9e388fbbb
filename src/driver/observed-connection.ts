import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely'
import type { FallbackReason } from '../events.js'
import { type QueryContext, serverOf } from '../observability/query-context.js'
import type { QueryObserver } from '../observability/query-observer.js'
import { BackendConnection } from './backend-connection.js'
import type { BackendDriver } from './backend-driver.js'
import type { Node } from './node.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/** What the driver knew when it handed the connection out. */
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

/**
 * A backend connection whose queries are logged and traced. Handed out only while the log, a channel
 * subscriber or an OpenTelemetry SDK is there, so that unobserved queries take the plain path.
 */
export class ObservedConnection extends BackendConnection {
  constructor(
    inner: DatabaseConnection,
    node: Node,
    driver: BackendDriver,
    private readonly acquisition: Acquisition,
  ) {
    super(inner, node, driver)
  }

  override executeQuery<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    return this.acquisition.observer.execute(this.#context(query, false), () => super.executeQuery<R>(query, options))
  }

  override streamQuery<R>(
    query: CompiledQuery,
    chunkSize: number,
    options?: ExecuteOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    return this.acquisition.observer.stream(this.#context(query, true), super.streamQuery<R>(query, chunkSize, options))
  }

  #context(query: CompiledQuery, isStream: boolean): QueryContext {
    const { role, system, session, fallback, fallbackReason, waitMs, acquireMs } = this.acquisition
    const node = this.node.name
    return {
      query,
      role,
      node,
      server: serverOf(node),
      system,
      session,
      fallback,
      fallbackReason,
      waitMs,
      acquireMs,
      isStream,
    }
  }
}

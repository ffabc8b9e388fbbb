import {
  CompiledQuery,
  type ControlConnectionProvider,
  type DatabaseConnection,
  type IsolationLevel,
  type QueryResult,
} from 'kysely'
import type { BackendDriver } from './backend-driver.js'
import type { Node } from './node.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/**
 * A connection of one node, as handed to Kysely. On a read backend every query passes the guard
 * before it is sent, the database's read-only refusals come back as WriteOnReadBackendError, and a
 * read that loses its connection is retried once on another node.
 */
export class BackendConnection implements DatabaseConnection {
  /** Set by the backend driver between BEGIN and COMMIT/ROLLBACK. */
  inTransaction = false
  /** Set when the open transaction changed the schema: its COMMIT raises the schema floor. */
  schemaChanged = false
  /** Set while the connection holds a turn of the primary's fallback budget. */
  budgeted = false

  /** Set once the user aborted the query in flight: its failure then says nothing about the node. */
  #aborted = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly node: Node,
    private readonly driver: BackendDriver,
  ) {}

  async executeQuery<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    const { guard } = this.driver
    if (!guard) return this.driver.executeWrite<R>(this, query, options)
    guard.check(query)
    this.driver.telemetry?.read(this.node.name)
    try {
      return await this.executeRead<R>(query, options)
    } catch (error) {
      if (!this.inTransaction && !this.#aborted && this.driver.router.failed(this.node, error)) {
        // The query may have run, but a read has no effect: run it once more elsewhere.
        return this.driver.readElsewhere<R>(query, this.node, options)
      }
      throw guard.translate(error)
    }
  }

  async executeRead<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    if (this.node.readOnly?.enforcement === 'transaction' && !this.inTransaction) {
      return this.inReadOnlyTransaction(() => this.inner.executeQuery<R>(query, options))
    }
    return this.inner.executeQuery<R>(query, options)
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize: number,
    options?: ExecuteOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const { guard } = this.driver
    guard?.check(query)
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize, options)
    } catch (error) {
      throw guard ? guard.translate(error) : error
    }
  }

  /**
   * Kysely's `inflightQueryAbortStrategy: 'cancel query'`: cancels the query in flight on this
   * connection's server. Absent when the node's dialect cannot cancel, so that Kysely says so before
   * running the query.
   */
  get cancelQuery(): ((provider: ControlConnectionProvider) => Promise<void>) | undefined {
    return this.inner.cancelQuery ? this.#cancelQuery : undefined
  }

  /**
   * Kysely's `inflightQueryAbortStrategy: 'kill session'`: ends the session the query runs in, and with
   * it the connection, which the pool replaces. Absent when the node's dialect cannot.
   */
  get killSession(): ((provider: ControlConnectionProvider) => Promise<void>) | undefined {
    return this.inner.killSession ? this.#killSession : undefined
  }

  /** Lets the inner connection learn its server-side session id before a cancellable query starts. */
  get collectSessionInfo(): (() => Promise<void>) | undefined {
    return this.inner.collectSessionInfo ? this.#collectSessionInfo : undefined
  }

  // Kysely's control connections come from the backend's own provider, which would route the cancel
  // through the guard and the replica pool to any node (a KILL on the wrong replica could end another
  // client's session); the cancel must reach the server that runs the query.
  #control(): ControlConnectionProvider {
    return (consumer) => this.node.withConnection(consumer)
  }

  async #cancelQuery(): Promise<void> {
    this.#aborted = true
    await this.inner.cancelQuery?.(this.#control())
  }

  async #killSession(): Promise<void> {
    this.#aborted = true
    await this.inner.killSession?.(this.#control())
  }

  async #collectSessionInfo(): Promise<void> {
    await this.inner.collectSessionInfo?.()
  }

  /** Begins a read-only transaction on the node, applying the session rules of its database. */
  async beginReadOnly(isolationLevel: IsolationLevel | undefined): Promise<void> {
    await this.node.driver.beginTransaction(this.inner, { accessMode: 'read only', isolationLevel })
    const sql = this.node.readOnly?.transactionSql
    if (sql) await this.inner.executeQuery(CompiledQuery.raw(sql))
  }

  private async inReadOnlyTransaction<T>(run: () => Promise<T>): Promise<T> {
    await this.beginReadOnly(undefined)
    try {
      const result = await run()
      await this.node.driver.commitTransaction(this.inner)
      return result
    } catch (error) {
      await this.node.driver.rollbackTransaction(this.inner).catch(() => {})
      throw error
    }
  }
}

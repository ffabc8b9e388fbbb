import { CompiledQuery, type DatabaseConnection, type IsolationLevel, type QueryResult } from 'kysely'
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
      if (!this.inTransaction && this.driver.router.failed(this.node, error)) {
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

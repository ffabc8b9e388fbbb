import { CompiledQuery, type DatabaseConnection, type IsolationLevel, type QueryResult } from 'kysely'
import type { ReadGuard } from '../guard/read-guard.js'
import type { Node } from './node.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/**
 * A connection of one node, as handed to Kysely. On a read backend every query passes the guard
 * before it is sent, and the database's read-only refusals come back as WriteOnReadBackendError.
 */
export class BackendConnection implements DatabaseConnection {
  /** Set by the backend driver between BEGIN and COMMIT/ROLLBACK. */
  inTransaction = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly node: Node,
    private readonly guard: ReadGuard | undefined,
  ) {}

  async executeQuery<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    if (!this.guard) return this.inner.executeQuery<R>(query, options)
    this.guard.check(query)
    try {
      if (this.node.readOnly?.enforcement === 'transaction' && !this.inTransaction) {
        return await this.inReadOnlyTransaction(() => this.inner.executeQuery<R>(query, options))
      }
      return await this.inner.executeQuery<R>(query, options)
    } catch (error) {
      throw this.guard.translate(error)
    }
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize: number,
    options?: ExecuteOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    this.guard?.check(query)
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize, options)
    } catch (error) {
      throw this.guard ? this.guard.translate(error) : error
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

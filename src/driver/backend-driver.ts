import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type TransactionSettings,
} from 'kysely'
import type { ReadGuard } from '../guard/read-guard.js'
import { markWriteTransaction } from '../guard/transaction-scope.js'
import { BackendConnection } from './backend-connection.js'
import type { Node } from './node.js'

/**
 * The Kysely driver behind one backend. The write backend has the primary as its one node; the read
 * backend has the replicas (or a read-only view of the primary) and a guard.
 */
export class BackendDriver implements Driver {
  #next = 0
  // Connections whose session was made read-only by statement (drivers handed in ready-made).
  readonly #readOnlySessions = new WeakSet<DatabaseConnection>()

  constructor(
    readonly role: 'read' | 'write',
    readonly nodes: readonly Node[],
    private readonly guard: ReadGuard | undefined,
  ) {}

  async init(): Promise<void> {
    // Each node starts its own driver on first use, so that an unused replica costs nothing.
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const node = this.pick()
    const inner = await node.acquireConnection()
    const sessionSql = node.readOnly?.enforcement === 'connection' ? node.readOnly.sessionSql : undefined
    if (sessionSql && !this.#readOnlySessions.has(inner)) {
      await inner.executeQuery(CompiledQuery.raw(sessionSql))
      this.#readOnlySessions.add(inner)
    }
    return new BackendConnection(inner, node, this.guard)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const conn = connection as BackendConnection
    if (this.role === 'read') {
      // A read transaction is a consistent snapshot: repeatable read unless asked for stronger.
      await conn.beginReadOnly(settings.isolationLevel ?? 'repeatable read')
    } else {
      await conn.node.driver.beginTransaction(conn.inner, settings)
      markWriteTransaction(connection, true)
    }
    conn.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    try {
      await conn.node.driver.commitTransaction(conn.inner)
    } finally {
      this.ended(conn)
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    try {
      await conn.node.driver.rollbackTransaction(conn.inner)
    } finally {
      this.ended(conn)
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.savepoint?.(conn.inner, name, compile)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.rollbackToSavepoint?.(conn.inner, name, compile)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.releaseSavepoint?.(conn.inner, name, compile)
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    await conn.node.driver.releaseConnection(conn.inner)
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.destroy()))
  }

  private ended(conn: BackendConnection): void {
    conn.inTransaction = false
    if (this.role === 'write') markWriteTransaction(conn, false)
  }

  private pick(): Node {
    const node = this.nodes[this.#next++ % this.nodes.length]
    if (!node) throw new Error('A backend has no database node.')
    return node
  }
}

import { AsyncLocalStorage } from 'node:async_hooks'
import type { DatabaseConnection, Driver } from 'kysely'
import { TransactionEscapeError } from '../errors.js'

interface Scope {
  /** The `createBackends` call the connection belongs to: escapes are only looked for within one. */
  readonly group: object
  readonly connection: DatabaseConnection
  writeTransaction: boolean
}

// Kysely runs a transaction's callback inside the connection provider's consumer, so a scope entered
// there is visible to every query the callback issues, and to nothing outside it.
const storage = new AsyncLocalStorage<Scope>()

/**
 * Kysely's connection provider, plus the scope that tells a query issued on the outer backend from
 * inside a write transaction's callback. Queries on the callback's `tx` use Kysely's single
 * connection provider and never come here.
 */
export class ScopedConnectionProvider {
  constructor(
    private readonly driver: Driver,
    /** The `createBackends` call; undefined when escape detection is switched off. */
    private readonly group: object | undefined,
  ) {}

  async provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    if (!this.group) return this.#unscoped(consumer)
    const outer = storage.getStore()
    if (outer?.writeTransaction && outer.group === this.group) {
      throw new TransactionEscapeError()
    }
    const connection = await this.driver.acquireConnection()
    try {
      return await storage.run({ group: this.group, connection, writeTransaction: false }, consumer, connection)
    } finally {
      await this.driver.releaseConnection(connection)
    }
  }

  async #unscoped<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    const connection = await this.driver.acquireConnection()
    try {
      return await consumer(connection)
    } finally {
      await this.driver.releaseConnection(connection)
    }
  }
}

/** Called by the write driver as a transaction begins and ends on `connection`. */
export function markWriteTransaction(connection: DatabaseConnection, active: boolean): void {
  const scope = storage.getStore()
  if (scope?.connection === connection) scope.writeTransaction = active
}

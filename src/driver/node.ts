import type { DatabaseConnection, Dialect, Driver } from 'kysely'

/**
 * How a read node's sessions are made read-only in the database:
 * - `'connection'`: once per connection (a startup parameter, or a statement when the connection is
 *   first seen); no cost per query.
 * - `'transaction'`: every read outside a transaction runs in its own read-only transaction; for
 *   poolers in transaction mode (PgBouncer) and for a driver shared with the write backend.
 */
export type ReadOnlyEnforcement = 'connection' | 'transaction'

/** How a node makes its sessions read-only; absent on the write node. */
export interface ReadOnlySession {
  readonly enforcement: ReadOnlyEnforcement
  /** Run once on each connection first seen, where the connection did not start read-only. */
  readonly sessionSql?: string
  /** Run after BEGIN on drivers that ignore Kysely's access mode setting (PGlite). */
  readonly transactionSql?: string
  /** A replica: its user is checked not to bypass the server's read_only. */
  readonly replica?: boolean
  /**
   * Present when the pool answers kysely-rw's session reset (MySQL pools kysely-rw creates); the
   * statement that makes the session read-only again afterwards, in 'connection' mode.
   */
  readonly reset?: { readonly restoreSql?: string }
}

/**
 * One database server as seen by one backend: its driver, started on first use, ended once. A
 * connection is handed to one user at a time, also when the driver hands the same one out again
 * (PGlite's single connection, shared by the write backend and the primary's read view).
 */
export class Node {
  readonly #driver: Driver
  readonly #owner: Node | undefined
  readonly #inUse = new Map<DatabaseConnection, Promise<void>>()
  readonly #release = new Map<DatabaseConnection, () => void>()
  /** Set once another node borrows this one's driver: only then can a connection be handed out twice. */
  #shared = false
  #init: Promise<void> | undefined
  #destroyed: Promise<void> | undefined

  constructor(
    /** Host, port and database, or a role name; never credentials. */
    readonly name: string,
    readonly dialect: Dialect,
    readonly readOnly: ReadOnlySession | undefined,
    /** A node whose driver this one borrows (a read view of the primary on a shared driver). */
    owner?: Node,
  ) {
    this.#owner = owner
    this.#driver = owner ? owner.driver : dialect.createDriver()
    if (owner) owner.#shared = true
  }

  get driver(): Driver {
    return this.#driver
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    if (this.#owner) return this.#owner.acquireConnection()
    if (this.#destroyed) throw new Error(`The backends were destroyed; ${this.name} is closed.`)
    this.#init ??= this.#driver.init()
    await this.#init
    if (!this.#shared) return this.#driver.acquireConnection()
    for (;;) {
      const connection = await this.#driver.acquireConnection()
      const busy = this.#inUse.get(connection)
      if (!busy) {
        this.#inUse.set(connection, new Promise((resolve) => this.#release.set(connection, resolve)))
        return connection
      }
      await busy
    }
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (this.#owner) return this.#owner.releaseConnection(connection)
    if (!this.#shared) return this.#driver.releaseConnection(connection)
    const wake = this.#release.get(connection)
    this.#inUse.delete(connection)
    this.#release.delete(connection)
    try {
      await this.#driver.releaseConnection(connection)
    } finally {
      wake?.()
    }
  }

  /** Runs `run` on a connection of this node, outside any backend (health checks, positions). */
  async withConnection<T>(run: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    const connection = await this.acquireConnection()
    try {
      return await run(connection)
    } finally {
      await this.releaseConnection(connection)
    }
  }

  destroy(): Promise<void> {
    if (this.#owner) return this.#owner.destroy()
    this.#destroyed ??= this.#init
      ? this.#init.then(
          () => this.#driver.destroy(),
          () => {},
        )
      : Promise.resolve()
    return this.#destroyed
  }
}

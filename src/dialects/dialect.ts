import type { Dialect } from 'kysely'

/** Which database family the backends speak. `'mysql'` covers MySQL 8 and MariaDB (mysql2). */
export type DialectName = 'postgres' | 'mysql'

/**
 * Where a node connects: a connection string, the driver's own pool configuration (`pg.PoolConfig` or
 * mysql2's `PoolOptions`), or a ready Kysely `Dialect` for users with their own driver setup.
 */
export type NodeConfig = string | Dialect | Record<string, unknown>

/** What kysely-rw must know about a database family; one implementation per family. */
export interface DialectSupport {
  /**
   * A Kysely dialect for a connection string or pool configuration. `readOnly` makes every session
   * read-only in the database itself, at connection start where the driver allows it.
   */
  createDialect(config: string | Record<string, unknown>, readOnly: boolean): Dialect
  /** Makes an already open session read-only; for dialects handed in ready-made. */
  readonly readOnlySessionSql: string
  /**
   * Run right after BEGIN on a read-only transaction, for drivers that ignore Kysely's access mode
   * (PGlite); absent where the access mode must precede BEGIN (MySQL, whose driver applies it).
   */
  readonly readOnlyTransactionSql?: string
  /** True when the database refused a statement because the session or server is read-only. */
  isReadOnlyRefusal(error: unknown): boolean
  /** A name for the node in errors and events: host, port and database, never credentials. */
  describe(config: string | Record<string, unknown>): string
}

export function isDialect(config: NodeConfig): config is Dialect {
  return (
    typeof config === 'object' &&
    typeof (config as Partial<Dialect>).createDriver === 'function' &&
    typeof (config as Partial<Dialect>).createQueryCompiler === 'function'
  )
}

import {
  type Dialect,
  MysqlDialect,
  type MysqlPool,
  type PostgresCursorConstructor,
  PostgresDialect,
  type PostgresPool,
} from 'kysely'
import type { DialectName } from './dialect.js'
import { cursorFor } from './pg-cursor.js'

/** A pool made by the application: pg's `Pool`, or mysql2's `createPool` (its promise wrapper too). */
export function poolFamily(config: unknown): DialectName | undefined {
  if (typeof config !== 'object' || config === null) return undefined
  const pool = config as Record<string, unknown>
  if (typeof pool.connect === 'function' && typeof pool.end === 'function') return 'postgres'
  if (typeof pool.getConnection === 'function' && typeof pool.end === 'function') return 'mysql'
  return undefined
}

/**
 * The pool wrapped in Kysely's own dialect, which ends it on `destroy()` as it does a pool handed to
 * it. kysely-rw then treats it as any ready-made dialect: sessions are made read-only by statement.
 */
export function poolDialect(
  pool: object,
  dialect: DialectName,
  cursor: PostgresCursorConstructor | undefined,
): Dialect {
  if (dialect === 'postgres') return new PostgresDialect({ pool: pool as PostgresPool, cursor: cursorFor(cursor) })
  // mysql2/promise's pool keeps the callback pool Kysely's dialect speaks to in `pool`.
  const inner = (pool as { pool?: { getConnection?: unknown } }).pool
  const callbackPool = typeof inner?.getConnection === 'function' ? inner : pool
  return new MysqlDialect({ pool: callbackPool as MysqlPool })
}

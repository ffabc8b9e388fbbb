import {
  type Dialect,
  MysqlDialect,
  type MysqlPool,
  type PostgresCursorConstructor,
  PostgresDialect,
  type PostgresPool,
} from 'kysely'
import { describeNode } from './describe.js'
import type { DialectName } from './dialect.js'
import { cursorFor } from './pg-cursor.js'

/** A pool made by the application: pg's `Pool`, or mysql2's `createPool` (its promise wrapper too). */
export function poolFamily(config: unknown): DialectName | undefined {
  if (typeof config !== 'object' || config === null) return undefined
  const pool = config as Record<string, unknown>
  if (typeof pool.getConnection === 'function' && typeof pool.end === 'function') return 'mysql'
  // pg's Pool counts its clients; a single pg Client or mysql2 connection has connect() and end() too.
  if (typeof pool.connect === 'function' && typeof pool.end === 'function' && typeof pool.totalCount === 'number') {
    return 'postgres'
  }
  return undefined
}

/** A single connection where a pool is expected (pg's `Client`, mysql2's `createConnection`): its driver's name. */
export function singleConnectionOf(config: unknown): string | undefined {
  if (typeof config !== 'object' || config === null || poolFamily(config) !== undefined) return undefined
  const connection = config as Record<string, unknown>
  if (typeof connection.connect !== 'function' || typeof connection.end !== 'function') return undefined
  return typeof connection.execute === 'function' || typeof connection.changeUser === 'function' ? 'mysql2' : 'pg'
}

/**
 * Host, port and database of a pool made by the application, from the options it keeps (pg's `options`,
 * mysql2's `config.connectionConfig`); never user or password. Undefined where the pool keeps none.
 */
export function describePool(pool: object, dialect: DialectName): string | undefined {
  const p = pool as {
    options?: Record<string, unknown>
    config?: { connectionConfig?: Record<string, unknown> }
    pool?: { config?: { connectionConfig?: Record<string, unknown> } }
  }
  const options = dialect === 'postgres' ? p.options : (p.config ?? p.pool?.config)?.connectionConfig
  return typeof options === 'object' && options !== null ? describeNode(options) : undefined
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
  if (dialect === 'postgres') {
    hearErrors(pool as PgPoolEvents)
    return new PostgresDialect({ pool: pool as PostgresPool, cursor: cursorFor(cursor) })
  }
  // mysql2/promise's pool keeps the callback pool Kysely's dialect speaks to in `pool`.
  const inner = (pool as { pool?: { getConnection?: unknown } }).pool
  const callbackPool = typeof inner?.getConnection === 'function' ? inner : pool
  return new MysqlDialect({ pool: callbackPool as MysqlPool })
}

interface PgPoolEvents {
  on(event: 'error', listener: () => void): unknown
  on(event: 'connect', listener: (client: { on(event: 'error', listener: () => void): unknown }) => void): unknown
}

/**
 * A server that goes away (a killed session, a failover) errors the pool's clients, idle or checked out,
 * and pg emits 'error' on them: unheard, it ends the process. The query in flight rejects on its own, and
 * the pool drops the client, so hearing the event is all it takes; pools kysely-rw creates do the same.
 */
function hearErrors(pool: PgPoolEvents): void {
  const ignore = () => {}
  pool.on('error', ignore)
  pool.on('connect', (client) => {
    client.on('error', ignore)
  })
}

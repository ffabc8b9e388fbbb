import { CompiledQuery, type QueryResult } from 'kysely'
import { ConfigurationError, messageOf } from '../errors.js'
import type { Lexing } from './lexer.js'
import { TWO_STATEMENTS } from './one-statement.js'

/**
 * The session-reset rule: a read that called a function that may change the session (anything but
 * a known pure built-in) must leave nothing on the pooled connection.
 * - PostgreSQL reverts `set_config(…, false)`, `SET` and temporary tables of a transaction that ends
 *   with ROLLBACK: such a read runs in `BEGIN READ ONLY … ROLLBACK` (read transactions always end so).
 * - MySQL / MariaDB keep session variables across ROLLBACK: the connection is reset after such a read
 *   (COM_RESET_CONNECTION, mysql2's `reset()`), then made read-only again and checked.
 */
export type SessionEnd = 'rollback' | 'reset'

export const SESSION_END: Record<Lexing, SessionEnd> = { postgres: 'rollback', mysql: 'reset' }

/**
 * The text Kysely's MysqlConnection hands to mysql2 when kysely-rw asks for a session reset. Compared
 * by identity, never by content, so that no query text can ask for one.
 */
export const SESSION_RESET = new String('/* kysely-rw: reset the session */') as unknown as string

type QueryFn = (sql: unknown, values: unknown, callback?: (error: unknown, result?: unknown) => void) => unknown

/** Lets a mysql2 connection of a pool kysely-rw created answer {@link SESSION_RESET} with COM_RESET_CONNECTION. */
export function acceptSessionReset(connection: {
  query: QueryFn
  reset?: (cb: (error: unknown) => void) => void
}): void {
  const query = connection.query
  connection.query = function (this: unknown, sql, values, callback) {
    if (sql !== SESSION_RESET) return query.call(this ?? connection, sql, values, callback)
    const done = typeof values === 'function' ? (values as typeof callback) : callback
    if (typeof connection.reset !== 'function') {
      done?.(new ConfigurationError('This mysql2 version has no connection reset: upgrade mysql2 to 3.x.'))
      return undefined
    }
    connection.reset((error) => done?.(error ?? null, []))
    return undefined
  }
}

export interface SessionExpectations {
  /** The session must already be read-only ('connection' mode). */
  readonly readOnly: boolean
  /** A replica: its user must not be able to bypass the server's read_only (MySQL SUPER, READ ONLY ADMIN). */
  readonly replica: boolean
}

type Send = <R>(query: CompiledQuery) => Promise<QueryResult<R>>

const READ_ONLY_HINT =
  "Behind a pooler that drops or refuses startup parameters (PgBouncer), use readOnlySessions: 'transaction'."

/**
 * Verifies a new (or reset) read connection before any read uses it: it runs one statement per query,
 * it is read-only when it should be, on MySQL its sql_mode lets mysql2's escaping of values hold, and on
 * a MySQL replica its user cannot bypass `read_only`. Throws ConfigurationError otherwise; the connection then serves nothing.
 */
export async function verifySession(send: Send, lexing: Lexing, expect: SessionExpectations): Promise<void> {
  let refused = false
  try {
    await send(CompiledQuery.raw(TWO_STATEMENTS))
  } catch (error) {
    refused = isMultiStatementRefusal(error, lexing)
    if (!refused) throw error
  }
  if (!refused) {
    throw new ConfigurationError(
      lexing === 'postgres'
        ? 'A read connection ran two statements sent as one query: its client ignores queryMode ' +
            "'extended'. Use node-postgres 8.23 or later (or pass a connection string or pool config)."
        : 'A read connection ran two statements sent as one query: its pool has multipleStatements on. ' +
            'Turn multipleStatements off for read pools.',
    )
  }
  const session = await sessionState(send, lexing, expect.readOnly)
  if (expect.readOnly && !session.readOnly) {
    throw new ConfigurationError(`A read connection is not read-only after its set-up. ${READ_ONLY_HINT}`)
  }
  if (/\bNO_BACKSLASH_ESCAPES\b/i.test(session.sqlMode ?? '')) {
    throw new ConfigurationError(
      "A read connection's sql_mode has NO_BACKSLASH_ESCAPES. mysql2 escapes a quote in a value as \\', " +
        'which this mode reads as a backslash and the end of the literal: the rest of the value would run as ' +
        'SQL. Remove NO_BACKSLASH_ESCAPES from sql_mode for this user and server (the global sql_mode, ' +
        'init_connect, the server configuration).',
    )
  }
  if (expect.replica && lexing === 'mysql') {
    const bypass = await readOnlyBypass(send)
    if (bypass) {
      throw new ConfigurationError(
        `The replica's user has ${bypass}, which bypasses the server's read_only: a write through it would ` +
          'diverge the replica. Connect to replicas as a user without SUPER or READ ONLY ADMIN.',
      )
    }
  }
}

function isMultiStatementRefusal(error: unknown, lexing: Lexing): boolean {
  const e = error as { code?: unknown; errno?: unknown } | null
  // 42601 syntax_error: "cannot insert multiple commands into a prepared statement"; 1064 ER_PARSE_ERROR.
  return lexing === 'postgres' ? e?.code === '42601' : e?.errno === 1064
}

interface SessionState {
  readonly readOnly: boolean
  /** MySQL: the session's sql_mode, which decides whether mysql2's escaping of values holds. */
  readonly sqlMode?: string
}

/**
 * What the session is, in one round trip: read-only or not and, on MySQL, its sql_mode (asked of every
 * read connection, the primary's read view's too: a value mysql2 escapes for a session in
 * NO_BACKSLASH_ESCAPES ends its literal early, in the typed builder's reads as in any other).
 */
async function sessionState(send: Send, lexing: Lexing, readOnly: boolean): Promise<SessionState> {
  if (lexing === 'postgres') {
    if (!readOnly) return { readOnly: false }
    const { rows } = await send<{ ro: string }>(
      CompiledQuery.raw("select current_setting('transaction_read_only') as ro"),
    )
    return { readOnly: rows[0]?.ro === 'on' }
  }
  const ask = (variable: string) =>
    send<{ ro: unknown; mode: unknown }>(
      CompiledQuery.raw(`select @@session.sql_mode as mode${readOnly ? `, @@session.${variable} as ro` : ''}`),
    )
  let result: QueryResult<{ ro: unknown; mode: unknown }>
  try {
    result = await ask('transaction_read_only')
  } catch (error) {
    // ER_UNKNOWN_SYSTEM_VARIABLE: MariaDB before 11.1 names it tx_read_only.
    if ((error as { errno?: unknown } | null)?.errno !== 1193) throw error
    result = await ask('tx_read_only')
  }
  const row = result.rows[0]
  return { readOnly: Number(row?.ro) === 1, sqlMode: String(row?.mode ?? '') }
}

/** The global privilege that lets the current MySQL user write on a read_only server, if it has one. */
export async function readOnlyBypass(send: Send): Promise<string | undefined> {
  const { rows } = await send<Record<string, unknown>>(CompiledQuery.raw('show grants'))
  for (const row of rows) {
    const grant = String(Object.values(row)[0] ?? '')
    const global = /^GRANT\s+(.+?)\s+ON\s+\*\.\*/i.exec(grant)?.[1]
    if (!global) continue
    const found = /\bALL PRIVILEGES\b|\bSUPER\b|\bREAD[ _]ONLY ADMIN\b/i.exec(global)
    if (found) return found[0].toUpperCase()
  }
  return undefined
}

/**
 * PgBouncer refuses the `options` startup parameter that makes PostgreSQL sessions read-only; the
 * connection error then says what to change instead of marking the node down for an unknown reason.
 */
export function explainStartupRefusal(error: unknown): unknown {
  if (!/unsupported startup parameter/i.test(messageOf(error))) return error
  const refusal = new ConfigurationError(
    `The server or pooler refused the read-only startup parameter (${messageOf(error)}). ${READ_ONLY_HINT}`,
    { cause: error },
  )
  // The driver's SQLSTATE (08P01) stays: the node is unreachable as configured, and is marked down with
  // this message rather than drained for an unknown reason.
  return Object.assign(refusal, { code: (error as { code?: unknown } | null)?.code })
}

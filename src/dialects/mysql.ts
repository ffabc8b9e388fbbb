import { CompiledQuery, type DatabaseConnection, MysqlDialect } from 'kysely'
import { currentSink } from '../consistency/capture.js'
import { type DialectSupport, isSocketError } from './dialect.js'
import { describeNode } from './describe.js'

const READ_ONLY_SESSION = 'set session transaction read only'

// MariaDB reports the GTID of each write and COMMIT in its OK packet once the session tracks last_gtid.
const TRACK_LAST_GTID =
  "set session session_track_system_variables = concat(@@session_track_system_variables, ',last_gtid')"

// ER_OPTION_PREVENTS_STATEMENT (server --read-only) and ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const READ_ONLY_ERRNOS = new Set([1290, 1792])

type QueryFn = (sql: unknown, values: unknown, callback: (error: unknown, result: unknown) => void) => unknown

/**
 * Reads `last_gtid` out of each OK packet (mysql2's `stateChanges`), which Kysely's driver drops, and
 * hands it to the session that issued the statement.
 */
function trackGtids(connection: { query: QueryFn }): void {
  // Looked up on each call rather than bound once, so that instrumentation of mysql2 still applies.
  const query: QueryFn = (...args) =>
    (Object.getPrototypeOf(connection) as { query: QueryFn }).query.apply(connection, args)
  connection.query = (sql, values, callback) => {
    const sink = currentSink()
    if (!sink || typeof callback !== 'function') return query(sql, values, callback)
    return query(sql, values, (error, result) => {
      const gtid = (result as { stateChanges?: { systemVariables?: { last_gtid?: unknown } } } | undefined)
        ?.stateChanges?.systemVariables?.last_gtid
      if (typeof gtid === 'string' && gtid !== '') sink.position = gtid
      callback(error, result)
    })
  }
}

export const mysql: DialectSupport = {
  createDialect(config, { readOnly, trackPositions }) {
    const poolConfig: Record<string, unknown> = typeof config === 'string' ? { uri: config } : { ...config }
    const setup = [readOnly ? READ_ONLY_SESSION : undefined, trackPositions ? TRACK_LAST_GTID : undefined].filter(
      (statement): statement is string => statement !== undefined,
    )
    return new MysqlDialect({
      // Imported on first use so that `mysql2` stays an optional peer for PostgreSQL users.
      pool: async () => {
        const mysql2 = await import('mysql2')
        const pool = mysql2.createPool(poolConfig)
        if (trackPositions) {
          pool.on('connection', (connection) => trackGtids(connection as unknown as { query: QueryFn }))
        }
        return pool
      },
      // Once per new connection; mysql2 has no startup parameter for these.
      onCreateConnection:
        setup.length > 0
          ? async (connection: DatabaseConnection) => {
              for (const statement of setup) await connection.executeQuery(CompiledQuery.raw(statement))
            }
          : undefined,
    })
  },
  readOnlySessionSql: READ_ONLY_SESSION,
  clusterSql: "select concat(@@server_id, ':', @@gtid_domain_id) as id",
  primaryPositionSql: 'select @@gtid_binlog_pos as pos',
  replicaPositionSql: 'select @@gtid_slave_pos as pos',
  sessionPositionSql: 'select @@last_gtid as pos',
  async waitForPosition(connection, position, timeoutMs) {
    const { rows } = await connection.executeQuery<{ reached: number | string | null }>(
      CompiledQuery.raw('select master_gtid_wait(?, ?) as reached', [position, timeoutMs / 1000]),
    )
    return Number(rows[0]?.reached) === 0
  },
  placeholder: '?',
  quote: (identifier) => identifier.split('.').map((part) => `\`${part.replaceAll('`', '``')}\``).join('.'),
  // ER_NO_SUCH_TABLE
  isMissingTable: (error) => (error as { errno?: unknown } | null)?.errno === 1146,
  isReadOnlyRefusal(error) {
    return READ_ONLY_ERRNOS.has((error as { errno?: number } | null)?.errno ?? -1)
  },
  isConnectionError(error) {
    if (isSocketError(error)) return true
    const e = error as { fatal?: unknown; code?: unknown } | null
    return e?.fatal === true || e?.code === 'PROTOCOL_CONNECTION_LOST'
  },
  describe: describeNode,
}

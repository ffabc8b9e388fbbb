import { CompiledQuery, PostgresDialect } from 'kysely'
import { currentSink } from '../consistency/capture.js'
import { describeNode } from './describe.js'
import { type DialectSupport, isSocketError, type ReplicationStatements } from './dialect.js'

// A startup parameter: every transaction of the session is read-only, at no extra round trip.
const READ_ONLY_OPTION = '-c default_transaction_read_only=on'

// SQLSTATE 25006 read_only_sql_transaction: a write in a read-only transaction, or on a hot standby.
const READ_ONLY_SQL_TRANSACTION = '25006'

// Class 57P (operator intervention: shutdown, crash) and 08 (connection exception) end the connection.
const CONNECTION_SQLSTATE = /^(?:57P0[123]|08)/

const SESSION_POSITION = 'select pg_current_wal_insert_lsn()::text as pos'

// COMMIT and the position in one simple-protocol round trip (no parameters, so node-postgres sends both).
const COMMIT_WITH_POSITION = `commit; ${SESSION_POSITION}`

type QueryFn = (...args: unknown[]) => Promise<unknown>

/** Lets a session learn its COMMIT's position without another round trip. */
function trackCommits(client: { query: QueryFn }): void {
  // Looked up on each call rather than bound once, so that instrumentation of pg's Client still applies.
  const query: QueryFn = (...args) => (Object.getPrototypeOf(client) as { query: QueryFn }).query.apply(client, args)
  client.query = (...args: unknown[]) => {
    const sink = currentSink()
    if (!sink || args[0] !== 'commit') return query(...args)
    return query(COMMIT_WITH_POSITION).then((results) => {
      const [commit, position] = results as [unknown, { rows: { pos: string }[] }]
      sink.position = position.rows[0]?.pos
      return commit
    })
  }
}

const REPLICATION: ReplicationStatements = {
  cluster:
    `select s.system_identifier::text || ':' || c.timeline_id::text as id ` +
    'from pg_control_system() s, pg_control_checkpoint() c',
  // Flushed WAL: what a replica can have; the insert position may run ahead while nothing commits.
  primaryPosition: 'select pg_current_wal_flush_lsn()::text as pos',
  replicaPosition: 'select pg_last_wal_replay_lsn()::text as pos',
  sessionPosition: SESSION_POSITION,
  // The insert position is global and past every acknowledged commit, also under synchronous_commit = off.
  writtenPosition: SESSION_POSITION,
  async waitForPosition(connection, position, timeoutMs) {
    // PostgreSQL before 16 has no server-side wait for replay: poll, cheaply, on the connection that
    // will serve the read.
    const deadline = Date.now() + timeoutMs
    const check = CompiledQuery.raw('select pg_last_wal_replay_lsn() >= $1::pg_lsn as reached', [position])
    for (let delay = 2; ; delay = Math.min(delay * 2, 20)) {
      const { rows } = await connection.executeQuery<{ reached: boolean | null }>(check)
      if (rows[0]?.reached) return true
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)))
    }
  },
}

export const postgres: DialectSupport = {
  createDialect(config, { readOnly, trackPositions }) {
    const poolConfig: Record<string, unknown> =
      typeof config === 'string' ? { connectionString: config } : { ...config }
    if (readOnly) {
      poolConfig.options = [poolConfig.options, READ_ONLY_OPTION].filter(Boolean).join(' ')
    }
    return new PostgresDialect({
      // Imported on first use so that `pg` stays an optional peer for MySQL users.
      pool: async () => {
        const pg = await import('pg')
        const pool = new pg.default.Pool(poolConfig)
        // A server that goes away errors its clients, idle or checked out: the pool drops them and the
        // query in flight rejects; an unheard 'error' event would crash the process instead.
        pool.on('error', () => {})
        pool.on('connect', (client) => {
          client.on('error', () => {})
          if (trackPositions) trackCommits(client as unknown as { query: QueryFn })
        })
        return pool
      },
    })
  },
  readOnlySessionSql: 'set session characteristics as transaction read only',
  readOnlyTransactionSql: 'set transaction read only',
  replication: async () => REPLICATION,
  placeholder: '$1',
  quote: (identifier) =>
    identifier
      .split('.')
      .map((part) => `"${part.replaceAll('"', '""')}"`)
      .join('.'),
  isMissingTable: (error) => (error as { code?: unknown } | null)?.code === '42P01',
  isReadOnlyRefusal(error) {
    return (error as { code?: unknown } | null)?.code === READ_ONLY_SQL_TRANSACTION
  },
  isConnectionError(error) {
    if (isSocketError(error)) return true
    const code = (error as { code?: unknown } | null)?.code
    if (typeof code === 'string' && CONNECTION_SQLSTATE.test(code)) return true
    const message = error instanceof Error ? error.message : ''
    return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)
  },
  describe: describeNode,
}

import { PostgresDialect } from 'kysely'
import { currentSink } from '../consistency/capture.js'
import { hasReached, parsePosition } from '../consistency/position.js'
import { currentCheck } from '../consistency/replay-check.js'
import { walLayout } from '../consistency/wal-layout.js'
import { explainStartupRefusal } from '../guard/session-rules.js'
import { describeNode } from './describe.js'
import { type DialectSupport, isSocketError, type ReplicationStatements } from './dialect.js'
import { checkedReadClass, type PgQueryClass } from './pg-checked-read.js'
import { cursorFor } from './pg-cursor.js'
import { canPipeline, pipelined, type QueryFn, submitted } from './pg-pipeline.js'
import { positionQueryClass } from './pg-position-query.js'
import { type LanePool, PgReadLane } from './pg-read-lane.js'

// A startup parameter: every transaction of the session is read-only, at no extra round trip.
const READ_ONLY_OPTION = '-c default_transaction_read_only=on'

// SQLSTATE 25006 read_only_sql_transaction: a write in a read-only transaction, or on a hot standby.
const READ_ONLY_SQL_TRANSACTION = '25006'

// Class 57P (operator intervention: shutdown, crash) and 08 (connection exception) end the connection.
const CONNECTION_SQLSTATE = /^(?:57P0[123]|08)/

const SESSION_POSITION = 'select pg_current_wal_insert_lsn()::text as pos'

// NULL on a server not in recovery: a check there never confirms a replica read. Sent on its own where a
// session's isolation level keeps it out of the read's transaction (checkReplayInline).
const REPLAY_POSITION = 'select pg_last_wal_replay_lsn()::text as pos'

// COMMIT and the position in one simple-protocol round trip (no parameters, so node-postgres sends both).
const COMMIT_WITH_POSITION = `commit; ${SESSION_POSITION}`

// pg's Client keeps its socket on `connection.stream`; destroying it fails the query in flight with
// "Connection terminated unexpectedly" and takes the client out of its pool.
interface PgClientInternals {
  connection?: { stream?: { destroy(): void } }
}

/**
 * Lets a session learn the position of its COMMIT, or of its autocommit write, in the write's own round trip.
 * A COMMIT has no parameters and takes the simple protocol, which carries the position's statement behind
 * it. A write with parameters takes the extended protocol, one statement per message: the position's
 * statement is pipelined behind it (pg 8.23+), each with its own Sync, so it runs once the write committed;
 * where pg cannot pipeline, or the write is one of a run (`inline` false), the session reads the position
 * with a query of its own (SessionWrites).
 */
function trackCommits(client: { query: QueryFn }, Query: PgQueryClass): void {
  const query = ownQuery(client)
  const Position = positionQueryClass(Query)
  intercept(client, currentSink, (sink, args) => {
    if (args[0] === 'commit') {
      return query(COMMIT_WITH_POSITION).then((results) => {
        const [commit, position] = results as [unknown, { rows: { pos: string }[] }]
        sink.position = position.rows[0]?.pos
        return commit
      })
    }
    if (typeof args[0] !== 'string' || !sink.inline || !canPipeline(client)) return query(...args)
    return pipelined(
      client,
      () => query(...args),
      () => submitted(query, new Position(SESSION_POSITION)),
    ).then(([write, position]) => {
      if (write.status === 'rejected') throw write.reason
      // Without the position (its statement failed), the session reads it with a query of its own.
      if (position.status === 'fulfilled') sink.position = position.value.position
      return write.value
    })
  })
}

/**
 * Lets a read on a replica check, in its own round trip, that the replica replayed what the read must see
 * (ReplayCheck): the replay position's statement goes in front of the read, both under one Sync
 * (CheckedRead), so the read's snapshot is taken once the position was read. A session that is not in READ
 * COMMITTED (a server or role default of REPEATABLE READ) takes one snapshot for both, before the check:
 * its check is not trusted, and the client's later checks go as statements of their own, pipelined in front
 * of the read with a Sync each (pg 8.23+), or queued in front of it where pg cannot pipeline.
 */
function checkReplayInline(client: { query: QueryFn }, Query: PgQueryClass): void {
  const query = ownQuery(client)
  const Checked = checkedReadClass(Query)
  let oneTransaction = true
  intercept(client, currentCheck, (check, args) => {
    // Text and an array of values, as Kysely sends them: pg's own checks of the read then cannot refuse it
    // after the check's messages are written (CheckedRead.submit).
    if (oneTransaction && typeof args[0] === 'string' && (args[1] === undefined || Array.isArray(args[1]))) {
      const read = new Checked(args[0], args[1])
      return new Promise((resolve, reject) => {
        read.callback = (error, result) => {
          if (read.isolation === 'read committed') check.replayed = read.replayed
          else if (read.isolation !== undefined) oneTransaction = false
          if (error) reject(error)
          else resolve(result)
        }
        void query(read)
      })
    }
    if (!canPipeline(client)) {
      void query(REPLAY_POSITION).then(
        (position) => {
          check.replayed = positionOf(position)
        },
        () => {},
      )
      return query(...args)
    }
    return pipelined(
      client,
      () => query(REPLAY_POSITION),
      () => query(...args),
    ).then(([position, read]) => {
      if (position.status === 'fulfilled') check.replayed = positionOf(position.value)
      if (read.status === 'rejected') throw read.reason
      return read.value
    })
  })
}

// Looked up on each call rather than bound once, so that instrumentation of pg's Client still applies.
function ownQuery(client: { query: QueryFn }): QueryFn {
  return (...args) => (Object.getPrototypeOf(client) as { query: QueryFn }).query.apply(client, args)
}

/**
 * Replaces `client.query` with one that hands the calls made while `pending()` returns a value to `divert`,
 * and passes every other call on to pg's own method with its arguments as they came, making no array of them:
 * nearly every query takes that path.
 */
function intercept<T>(
  client: { query: QueryFn },
  pending: () => T | undefined,
  divert: (value: T, args: unknown[]) => Promise<unknown>,
): void {
  client.query = (first?: unknown, second?: unknown, third?: unknown) => {
    const value = pending()
    if (value === undefined) {
      const own = (Object.getPrototypeOf(client) as { query: QueryFn }).query
      if (third !== undefined) return own.call(client, first, second, third)
      return second === undefined ? own.call(client, first) : own.call(client, first, second)
    }
    return divert(
      value,
      third !== undefined ? [first, second, third] : second === undefined ? [first] : [first, second],
    )
  }
}

function positionOf(result: unknown): string | undefined {
  const pos = (result as { rows?: { pos?: unknown }[] } | null)?.rows?.[0]?.pos
  return typeof pos === 'string' ? pos : undefined
}

/**
 * A read connection's session is read-only by its startup parameter, and anything a read runs can call
 * `set_config('default_transaction_read_only', 'off', false)` where the guard cannot see it: in a view,
 * in a function of the app, in a column read in attribute notation. PostgreSQL 14+ reports each change
 * of that setting (ParameterStatus); when it turns off, a statement that turns it back on is queued on
 * the connection, ahead of any later query, so the next read on the pooled session is read-only again.
 */
function keepReadOnly(client: unknown): void {
  const { connection } = client as { connection?: { on?(event: string, listener: (message: unknown) => void): void } }
  connection?.on?.('parameterStatus', (message) => {
    const { parameterName, parameterValue } = message as { parameterName?: unknown; parameterValue?: unknown }
    if (parameterName !== 'default_transaction_read_only' || parameterValue !== 'off') return
    ;(client as { query(text: string): Promise<unknown> }).query(RESTORE_READ_ONLY).catch(() => {})
  })
}

const RESTORE_READ_ONLY = 'set default_transaction_read_only = on'

type ClientClass = new (config: Record<string, unknown>) => object

// pg sets `pipeline` on each Client it constructs from 8.23 on; constructing one opens no connection.
let pipelining: boolean | undefined
function pipelines(Client: ClientClass): boolean {
  pipelining ??= typeof (new Client({}) as { pipeline?: unknown }).pipeline === 'boolean'
  return pipelining
}

/** Clients whose connection attempt ends after `ms` (pg's own timer, which also ends a hung TLS or startup). */
function connectingWithin(Client: ClientClass, ms: number): ClientClass {
  return class extends Client {
    constructor(config: Record<string, unknown>) {
      super({ ...config, connectionTimeoutMillis: ms })
    }
  }
}

/** A pooler's refusal of the read-only startup parameter comes back saying which option to use instead. */
function refuseStartupQuietly(pool: { connect: (...args: unknown[]) => unknown }): void {
  const connect = pool.connect.bind(pool)
  pool.connect = (...args: unknown[]) =>
    args.length > 0
      ? connect(...args)
      : (connect() as Promise<unknown>).catch((error: unknown) => {
          throw explainStartupRefusal(error)
        })
}

// Everything a node monitor needs in one round trip. pg_walfile_name() names the primary's timeline at
// once after a promotion; pg_control_checkpoint() would only after the next checkpoint.
const PROBE =
  'select not pg_is_in_recovery() as writable, ' +
  '(select system_identifier::text from pg_control_system()) as system, ' +
  'case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text ' +
  'else pg_current_wal_flush_lsn()::text end as pos, ' +
  'case when pg_is_in_recovery() then null else substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) end as timeline, ' +
  'l.wal_block_size, l.bytes_per_wal_segment, l.max_data_alignment from pg_control_init() l'

const REPLICATION: ReplicationStatements = {
  cluster:
    `select s.system_identifier::text || ':' || c.timeline_id::text as id ` +
    'from pg_control_system() s, pg_control_checkpoint() c',
  // Flushed WAL: what a replica can have; the insert position may run ahead while nothing commits.
  primaryPosition: 'select pg_current_wal_flush_lsn()::text as pos',
  replicaPosition: REPLAY_POSITION,
  sessionPosition: SESSION_POSITION,
  // The insert position is global and past every acknowledged commit, also under synchronous_commit = off.
  writtenPosition: SESSION_POSITION,
  probe: PROBE,
  readProbe(row) {
    const system = row.system == null ? null : String(row.system)
    const timeline = typeof row.timeline === 'string' ? Number.parseInt(row.timeline, 16) : null
    return {
      writable: row.writable === true,
      position: typeof row.pos === 'string' ? row.pos : null,
      cluster: system !== null && timeline !== null ? `${system}:${timeline}` : null,
      identity: { system, timeline: timeline === null ? null : String(timeline) },
      walLayout: walLayout(row.wal_block_size, row.bytes_per_wal_segment, row.max_data_alignment),
    }
  },
  notAReplicaOf(replica, primary, primaryIsLater) {
    const [a, b] = [replica.identity.system, primary.identity.system]
    if (a && b && a !== b) {
      return `its system identifier ${a} is not the primary's (${b}): it replicates from another cluster`
    }
    // A replica replays only WAL the primary flushed: one past a later reading of the primary's flush
    // position follows another history (an old primary a failover replaced, or a copy of this cluster).
    const [replayed, flushed] = [parsePosition(replica.position), parsePosition(primary.position)]
    if (primaryIsLater && replayed && flushed && hasReached(replayed, flushed) && !hasReached(flushed, replayed)) {
      return (
        `it replayed WAL up to ${replica.position}, past the primary's ${primary.position}: it follows another ` +
        'history of this cluster (an old primary that a failover replaced, or a copy)'
      )
    }
    return undefined
  },
  supersedes(newer, older) {
    const system = newer.identity.system
    const [later, earlier] = [Number(newer.identity.timeline), Number(older.identity.timeline)]
    return system && system === older.identity.system && later > earlier
      ? `is on timeline ${earlier}, an earlier history`
      : undefined
  },
}

export const postgres: DialectSupport = {
  createDialect(config, { readOnly, trackPositions, checkReplay, sockets, deadlines, poolSize, cursor, lane }) {
    const given: Record<string, unknown> = typeof config === 'string' ? { connectionString: config } : config
    const poolConfig: Record<string, unknown> = {
      // No process kept alive by idle connections: the user's values win.
      keepAlive: true,
      keepAliveInitialDelayMillis: deadlines.keepAliveDelayMs,
      allowExitOnIdle: true,
      ...given,
    }
    // No connection attempt without an end. Given to the clients, not to the pool, where it would also put a
    // timer on every checkout of a pooled connection, which kysely-rw bounds already (Node.acquireAs): the
    // user's own value is left where the user put it.
    const connectTimeoutMs = given.connectionTimeoutMillis === undefined ? deadlines.connectTimeoutMs : undefined
    if (poolSize !== undefined) poolConfig.max = poolSize
    if (readOnly) {
      poolConfig.options = [poolConfig.options, READ_ONLY_OPTION].filter(Boolean).join(' ')
    }
    return new PostgresDialect({
      cursor: cursorFor(cursor),
      // Imported on first use so that `pg` stays an optional peer for MySQL users.
      pool: async () => {
        const pg = await import('pg')
        const pool = new pg.default.Pool(
          connectTimeoutMs === undefined
            ? poolConfig
            : {
                ...poolConfig,
                Client: connectingWithin(
                  (poolConfig.Client as ClientClass | undefined) ?? pg.default.Client,
                  connectTimeoutMs,
                ),
              },
        )
        // A server that goes away errors its clients, idle or checked out: the pool drops them and the
        // query in flight rejects; an unheard 'error' event would crash the process instead.
        pool.on('error', () => {})
        refuseStartupQuietly(pool)
        pool.on('connect', (client) => {
          client.on('error', () => {})
          sockets.add(client, () => (client as unknown as PgClientInternals).connection?.stream?.destroy())
          const Query = pg.default.Query as unknown as PgQueryClass
          if (trackPositions) trackCommits(client as unknown as { query: QueryFn }, Query)
          if (checkReplay) checkReplayInline(client as unknown as { query: QueryFn }, Query)
          if (readOnly) keepReadOnly(client)
        })
        pool.on('remove', (client) => sockets.delete(client))
        // pg 8.23+ can pipeline; half the pool at most, so that the rest serves everything else. pg's
        // query_timeout ends a pipelined connection, and every read in flight on it, when one read is slow.
        const width = Math.floor((pool.options.max ?? 10) / 2)
        if (lane && width > 0 && poolConfig.query_timeout === undefined && pipelines(pg.default.Client)) {
          lane.lane = new PgReadLane(pool as unknown as LanePool, width)
        }
        return pool
      },
    })
  },
  checksReplayInline: true,
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
    // 'timeout expired': pg's Client gave up connecting (connectionTimeoutMillis).
    return /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error/i.test(
      message,
    )
  },
  describe: describeNode,
}

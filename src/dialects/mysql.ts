import { CompiledQuery, type DatabaseConnection, MysqlDialect } from 'kysely'
import { currentSink } from '../consistency/capture.js'
import { ConfigurationError } from '../errors.js'
import { acceptSessionReset, readOnlyBypass } from '../guard/session-rules.js'
import { describeNode } from './describe.js'
import { type DialectSupport, isSocketError, type ReplicationStatements } from './dialect.js'
import { cutError, type SocketRegistry } from './sockets.js'

const READ_ONLY_SESSION = 'set session transaction read only'

// ER_OPTION_PREVENTS_STATEMENT (server --read-only) and ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const READ_ONLY_ERRNOS = new Set([1290, 1792])

/** MariaDB: GTID positions (one sequence number per domain). */
const MARIADB: ReplicationStatements & { readonly trackPositions: string } = {
  // The OK packet of each write and COMMIT then carries the transaction's GTID.
  trackPositions: "set session session_track_system_variables = concat(@@session_track_system_variables, ',last_gtid')",
  cluster: "select concat(@@server_id, ':', @@gtid_domain_id) as id",
  primaryPosition: 'select @@gtid_binlog_pos as pos',
  replicaPosition: 'select @@gtid_slave_pos as pos',
  sessionPosition: 'select @@last_gtid as pos',
  writtenPosition: 'select @@gtid_binlog_pos as pos',
  probe:
    'select @@read_only as ro, @@server_id as server_id, @@gtid_domain_id as domain, ' +
    '@@gtid_binlog_pos as binlog, @@gtid_slave_pos as slave',
  readProbe(row) {
    const writable = Number(row.ro) === 0
    const text = (value: unknown) => (value == null ? null : String(value))
    return {
      writable,
      position: text(writable ? row.binlog : row.slave),
      cluster: writable ? `${text(row.server_id)}:${text(row.domain)}` : null,
      identity: { serverId: text(row.server_id), binlog: text(row.binlog), slave: text(row.slave) },
    }
  },
  notAReplicaOf(replica, primary, primaryIsLater) {
    // Without replication privileges the GTIDs are what tell: each names its domain, the server that
    // wrote it and its sequence number. A replica of this primary has only GTIDs the primary has too.
    const have = gtids(primary.identity.binlog)
    if (replica.identity.serverId !== null && replica.identity.serverId === primary.identity.serverId) {
      return `it has the primary's server id ${replica.identity.serverId}`
    }
    if (!primaryIsLater) return undefined
    for (const [domain, { server, seq }] of gtids(replica.identity.slave)) {
      const own = have.get(domain)
      if (!own) return `it replicated GTID domain ${domain}, which the primary has never written`
      if (seq > own.seq) return `it is ahead of the primary in GTID domain ${domain} (${seq} > ${own.seq})`
      if (seq === own.seq && server !== own.server) {
        return `its GTID ${domain}-${server}-${seq} was written by another server than the primary's ${domain}-${own.server}-${own.seq}`
      }
    }
    return undefined
  },
  readOnlyBypass: askReadOnlyBypass,
}

/** The replica monitor's question, the one a read connection's verification asks: can its user bypass read_only? */
function askReadOnlyBypass(connection: DatabaseConnection): Promise<string | undefined> {
  return readOnlyBypass((query) => connection.executeQuery(query))
}

function gtids(text: string | null | undefined): Map<string, { server: string; seq: bigint }> {
  const result = new Map<string, { server: string; seq: bigint }>()
  for (const part of (text ?? '').split(',')) {
    const match = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part)
    if (match) result.set(match[1] as string, { server: match[2] as string, seq: BigInt(match[3] as string) })
  }
  return result
}

/**
 * MySQL 8: GTID sets (`uuid:1-42`). Written to MySQL's documentation;
 * the test suite runs MariaDB only (Debian ships no MySQL server).
 */
const MYSQL: ReplicationStatements & { readonly trackPositions: string } = {
  // The OK packet of each COMMIT then carries the session's own GTID.
  trackPositions: "set session session_track_gtids = 'OWN_GTID'",
  cluster: 'select @@server_uuid as id',
  primaryPosition: 'select @@global.gtid_executed as pos',
  replicaPosition: 'select @@global.gtid_executed as pos',
  // MySQL keeps no last GTID per session: everything executed covers the session's own commit.
  sessionPosition: 'select @@global.gtid_executed as pos',
  writtenPosition: 'select @@global.gtid_executed as pos',
  probe: 'select @@read_only as ro, @@server_uuid as server_uuid, @@global.gtid_executed as pos',
  readProbe(row) {
    const writable = Number(row.ro) === 0
    return {
      writable,
      position: row.pos == null ? null : String(row.pos),
      cluster: writable && row.server_uuid != null ? String(row.server_uuid) : null,
      identity: {},
    }
  },
  // MySQL exposes no source of a replica's data without privileges; read_only is all that is checked.
  notAReplicaOf: () => undefined,
  readOnlyBypass: askReadOnlyBypass,
}

type Flavor = typeof MARIADB

type MysqlQueryable = Parameters<typeof acceptSessionReset>[0]

function refuseMultipleStatements(poolConfig: Record<string, unknown>): void {
  const uri = typeof poolConfig.uri === 'string' ? poolConfig.uri : undefined
  const inUri = uri !== undefined && /^(?:true|1)$/i.test(new URL(uri).searchParams.get('multipleStatements') ?? '')
  if (poolConfig.multipleStatements === true || inUri) {
    throw new ConfigurationError(
      'multipleStatements is on in the configuration of a node that serves reads (a replica, or the primary, ' +
        'whose read view serves reads when no replica can). Turn it off: one statement per query is what keeps ' +
        'a read from carrying a write. Run multi-statement scripts on a connection of your own.',
    )
  }
}

async function flavorOf(connection: DatabaseConnection): Promise<Flavor> {
  const { rows } = await connection.executeQuery<{ version: string }>(CompiledQuery.raw('select version() as version'))
  return /mariadb/i.test(rows[0]?.version ?? '') ? MARIADB : MYSQL
}

type QueryFn = (sql: unknown, values: unknown, callback: (error: unknown, result: unknown) => void) => unknown

interface StateChanges {
  systemVariables?: { last_gtid?: unknown }
  gtids?: unknown
}

/**
 * Reads the GTID out of each OK packet (mysql2's `stateChanges`), which Kysely's driver drops, and
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
      const changes = (result as { stateChanges?: StateChanges } | undefined)?.stateChanges
      const gtid =
        changes?.systemVariables?.last_gtid ?? (Array.isArray(changes?.gtids) ? changes.gtids.join(',') : undefined)
      if (typeof gtid === 'string' && gtid !== '') sink.position = gtid
      callback(error, result)
    })
  }
}

interface PooledSocket {
  stream?: { destroy(error?: Error): void; ref(): void; unref(): void }
  once(event: 'end' | 'error', listener: () => void): void
}

interface WatchedPool {
  on(event: 'connection' | 'acquire' | 'release', listener: (connection: PooledSocket) => void): void
}

/**
 * Registers each connection's socket for cutting, and lets idle ones not keep the process alive (mysql2
 * has no `allowExitOnIdle`): a script that forgets `destroy()` still exits once its queries are done.
 */
function watchSockets(pool: WatchedPool, sockets: SocketRegistry): void {
  pool.on('connection', (connection) => {
    sockets.add(connection, () => connection.stream?.destroy(cutError()))
    connection.once('end', () => sockets.delete(connection))
    connection.once('error', () => sockets.delete(connection))
  })
  pool.on('acquire', (connection) => connection.stream?.ref())
  pool.on('release', (connection) => connection.stream?.unref())
}

/** The MySQL / MariaDB family. One per `createBackends`: it learns which of the two the servers are. */
export function createMysqlSupport(): DialectSupport {
  let flavor: Promise<Flavor> | undefined
  const detect = (connection: DatabaseConnection) => {
    flavor ??= flavorOf(connection).catch((error: unknown) => {
      flavor = undefined
      throw error
    })
    return flavor
  }
  return {
    createDialect(config, { readOnly, trackPositions, sockets, deadlines, poolSize }) {
      const poolConfig: Record<string, unknown> = {
        // No connect without an end: the user's values win.
        connectTimeout: deadlines.connectTimeoutMs,
        enableKeepAlive: true,
        keepAliveInitialDelay: deadlines.keepAliveDelayMs,
        ...(typeof config === 'string' ? { uri: config } : config),
      }
      if (poolSize !== undefined) poolConfig.connectionLimit = poolSize
      // Read pools (the only ones that track no positions) run one statement per query.
      if (!trackPositions) refuseMultipleStatements(poolConfig)
      return new MysqlDialect({
        // Imported on first use so that `mysql2` stays an optional peer for PostgreSQL users.
        pool: async () => {
          const mysql2 = await import('mysql2')
          const pool = mysql2.createPool(poolConfig)
          pool.on('connection', (connection) => acceptSessionReset(connection as unknown as MysqlQueryable))
          watchSockets(pool as unknown as WatchedPool, sockets)
          if (trackPositions) {
            pool.on('connection', (connection) => trackGtids(connection as unknown as { query: QueryFn }))
          }
          return pool
        },
        // Once per new connection; mysql2 has no startup parameter for these.
        onCreateConnection:
          readOnly || trackPositions
            ? async (connection) => {
                if (readOnly) await connection.executeQuery(CompiledQuery.raw(READ_ONLY_SESSION))
                if (trackPositions) {
                  await connection.executeQuery(CompiledQuery.raw((await detect(connection)).trackPositions))
                }
              }
            : undefined,
      })
    },
    // mysql2 cannot pipeline: a check in a round trip of its own costs more than the waits' shared polls.
    checksReplayInline: false,
    readOnlySessionSql: READ_ONLY_SESSION,
    replication: detect,
    placeholder: '?',
    quote: (identifier) =>
      identifier
        .split('.')
        .map((part) => `\`${part.replaceAll('`', '``')}\``)
        .join('.'),
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
}

import { CompiledQuery, type DatabaseConnection, type Dialect, type PostgresCursorConstructor } from 'kysely'
import type { WalLayout } from '../consistency/wal-layout.js'
import type { LaneSlot } from './pg-read-lane.js'
import type { SocketRegistry } from './sockets.js'

/** Which database family the backends speak. `'mysql'` covers MySQL 8 and MariaDB (mysql2). */
export type DialectName = 'postgres' | 'mysql'

/**
 * A node configuration once checked, with pools handed in already wrapped in Kysely's dialect: a
 * connection string, pool options for kysely-rw to make a pool of, or a Kysely `Dialect`.
 */
export type NodeTarget = string | Dialect | Record<string, unknown>

export interface DialectOptions {
  /** Every session read-only in the database itself, at connection start where the driver allows it. */
  readonly readOnly: boolean
  /** Report the position of each write and COMMIT to the capture sink, where the protocol allows it. */
  readonly trackPositions: boolean
  /** A replica's pool: a read may check the replica's replay position in its own round trip (ReplayCheck). */
  readonly checkReplay?: boolean
  /** PostgreSQL: the cursor class `.stream()` uses; pg-cursor, loaded on first use, when absent. */
  readonly cursor?: PostgresCursorConstructor | undefined
  /** Where the pool registers each connection's socket, so that a node declared down can cut them. */
  readonly sockets: SocketRegistry
  /** Bounds on connecting, applied where the user's pool config does not set its own. */
  readonly deadlines: PoolDeadlines
  /** A pool of this many connections at most (a node's monitor needs one); the user's size otherwise. */
  readonly poolSize?: number
  /** A replica's pool: where it can, the pool sets up a lane that pipelines reads while it is exhausted. */
  readonly lane?: LaneSlot
}

/** What a pool kysely-rw creates is told, so that no connection waits forever on a server that hangs. */
export interface PoolDeadlines {
  /** Connecting (and, on pg, waiting for a free pool connection) gives up after this. */
  readonly connectTimeoutMs: number
  /** TCP keepalive probes start after a connection was idle this long. */
  readonly keepAliveDelayMs: number
}

/** What one round trip tells about a server: its role, its position and who it replicates from. */
export interface Probe {
  /** True when the server takes writes: PostgreSQL not in recovery, MySQL/MariaDB `@@read_only = 0`. */
  readonly writable: boolean
  /** A primary's current position, or a replica's replay position; null when the server does not say. */
  readonly position: string | null
  /**
   * On a writable server, the identity session tokens carry: it changes with a failover (PostgreSQL:
   * system identifier and timeline; MariaDB: server id and GTID domain; MySQL: server uuid).
   */
  readonly cluster: string | null
  /** Facts compared by `notAReplicaOf`, opaque to everything else. */
  readonly identity: Readonly<Record<string, string | null>>
  /** How the server lays out its WAL (PostgreSQL): what turns its insert positions into replay positions. */
  readonly walLayout?: WalLayout
}

/** What kysely-rw must know about a database family; one implementation per family. */
export interface DialectSupport {
  /** A Kysely dialect for a connection string or pool configuration. */
  createDialect(config: string | Record<string, unknown>, options: DialectOptions): Dialect
  /** True when a replica pool kysely-rw creates can check its replay position in a read's round trip. */
  readonly checksReplayInline: boolean
  /** Makes an already open session read-only; for dialects handed in ready-made. */
  readonly readOnlySessionSql: string
  /**
   * Run right after BEGIN on a read-only transaction, for drivers that ignore Kysely's access mode
   * (PGlite); absent where the access mode must precede BEGIN (MySQL, whose driver applies it).
   */
  readonly readOnlyTransactionSql?: string
  /**
   * How this server family states replication positions. MySQL and MariaDB differ (GTID sets vs
   * GTID positions), so the answer is read off the server behind `connection` (once, then cached).
   */
  replication(connection: DatabaseConnection): Promise<ReplicationStatements>
  /** The first parameter placeholder in raw SQL. */
  readonly placeholder: string
  /** Quotes an identifier (a table name, possibly `schema.table`). */
  quote(identifier: string): string
  /** True when a query failed because its table does not exist (no migration has run yet). */
  isMissingTable(error: unknown): boolean
  /** True when the database refused a statement because the session or server is read-only. */
  isReadOnlyRefusal(error: unknown): boolean
  /** True when the connection, not the statement, failed: the server is down or went away. */
  isConnectionError(error: unknown): boolean
  /** A name for the node in errors and events: host, port and database, never credentials. */
  describe(config: string | Record<string, unknown>): string
}

/** The statements that read and wait for replication positions on one kind of server. */
export interface ReplicationStatements {
  /** One row `{ id }` naming the cluster and its history (a failover changes it). Run on the primary. */
  readonly cluster: string
  /** One row `{ pos }`: the primary's position that replicas can reach now. */
  readonly primaryPosition: string
  /** One row `{ pos }`: how far a replica has replayed; null where the server does not say. */
  readonly replicaPosition: string
  /** One row `{ pos }`: the position of the session's own last commit, on that connection. */
  readonly sessionPosition: string
  /** One row `{ pos }`, on any connection to the primary: at or past every commit it has acknowledged. */
  readonly writtenPosition: string
  /** One statement whose single row `readProbe` reads; needs no privileges beyond connecting. */
  readonly probe: string
  readProbe(row: Record<string, unknown>): Probe
  /**
   * Why a server that claims to be a replica cannot be one of this primary (another cluster's system
   * identifier, GTIDs from servers or domains the primary never had, a position ahead of the
   * primary's); undefined when nothing the servers expose says so. Comparisons of positions are only
   * made when `primaryIsLater`: the primary was probed after the replica, so it cannot be behind it.
   */
  notAReplicaOf(replica: Probe, primary: Probe, primaryIsLater: boolean): string | undefined
  /**
   * Why `newer`, a writable server, is a later primary of the same cluster than `older`, also writable
   * (PostgreSQL: a later timeline, which only a promotion starts), in words that follow "… but it is";
   * undefined when the servers do not say. Absent where nothing the servers expose tells (MySQL, MariaDB).
   */
  supersedes?(newer: Probe, older: Probe): string | undefined
  /**
   * Why writes by the connection's user would get past the server's `read_only` (MySQL and MariaDB:
   * SUPER, READ ONLY ADMIN), or undefined; absent where no user can (PostgreSQL's hot standby).
   */
  readOnlyBypass?(connection: DatabaseConnection): Promise<string | undefined>
}

/** Runs one of the position statements on `connection`: the `pos` of its one row. */
export async function readPosition(
  connection: DatabaseConnection,
  replication: (connection: DatabaseConnection) => Promise<ReplicationStatements>,
  statement: 'primaryPosition' | 'replicaPosition' | 'sessionPosition' | 'writtenPosition',
): Promise<string | undefined> {
  const statements = await replication(connection)
  const { rows } = await connection.executeQuery<{ pos: string | null }>(CompiledQuery.raw(statements[statement]))
  return rows[0]?.pos ?? undefined
}

export function isDialect(config: unknown): config is Dialect {
  return (
    typeof config === 'object' &&
    config !== null &&
    typeof (config as Partial<Dialect>).createDriver === 'function' &&
    typeof (config as Partial<Dialect>).createQueryCompiler === 'function'
  )
}

const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'])

/** Socket-level failures, common to both drivers. */
export function isSocketError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && SOCKET_ERRORS.has(code)) return true
  const errors = (error as { errors?: unknown } | null)?.errors
  return Array.isArray(errors) && errors.some(isSocketError)
}

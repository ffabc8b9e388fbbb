import type { KyselyPlugin, PostgresCursorConstructor } from 'kysely'
import { type DialectName, isDialect } from './dialects/dialect.js'
import type { MysqlNodeConfig, NodeConfig, PostgresNodeConfig } from './dialects/node-config.js'
import { poolFamily, singleConnectionOf } from './dialects/pools.js'
import type { ReadOnlyEnforcement } from './driver/node.js'
import { ConfigurationError } from './errors.js'
import type { BackendEvent } from './events.js'
import type { BackendLogConfig } from './observability/query-log.js'
import type { TracingOptions } from './observability/tracing.js'
import type { ReplicaSelection } from './routing/strategies.js'

/** What `createBackends` needs: the database family, the primary, and optionally replicas and routing rules. */
export interface BackendsConfig {
  /** `'postgres'` (pg, streaming replication) or `'mysql'` (mysql2; MySQL 8 and MariaDB). */
  readonly dialect: DialectName
  /**
   * The primary: a connection string, the driver's pool options, a pool, or a Kysely `Dialect`. Or a
   * list of candidates (as libpq's multi-host `target_session_attrs=read-write`): writes go to the one
   * that is a primary now (PostgreSQL: not in recovery; MySQL/MariaDB: `read_only` off), re-decided
   * every health check and at once when it fails, so a promoted replica takes writes without a restart.
   * A server may be both a candidate and a replica: while it is the primary it serves no replica reads.
   *
   * `undefined` (an unset environment variable: `primary: process.env.DATABASE_URL`) compiles and is
   * refused at run time by a ConfigurationError that names the option. So is a node of the other
   * family: a URL of another scheme, the other driver's pool or its options.
   */
  readonly primary: NodeConfig | undefined | readonly (NodeConfig | undefined)[]
  /** The replicas, in the same forms. None: reads run on the primary, in read-only sessions. */
  readonly replicas?: readonly (NodeConfig | undefined)[]
  /** Kysely plugins for both backends (CamelCasePlugin and friends). */
  readonly plugins?: KyselyPlugin[]
  /**
   * How read sessions are made read-only in the database. `'connection'` (default) costs nothing per
   * query: a startup parameter on PostgreSQL, one statement per new connection on MySQL. Choose
   * `'transaction'` behind a pooler in transaction mode (PgBouncer), where session settings do not
   * stick: every read then runs in its own `BEGIN READ ONLY … COMMIT`.
   */
  readonly readOnlySessions?: ReadOnlyEnforcement
  /** How a read picks among eligible replicas. Default `'round-robin'`. */
  readonly replicaSelection?: ReplicaSelection
  /** A replica further behind than this is drained until it catches up. Default 5000. */
  readonly maxReplicaLagMs?: number
  /** How often replicas are measured. Default 1000. */
  readonly healthCheckIntervalMs?: number
  /** When no replica can serve a read: run it on the primary (default) or throw NoReplicaAvailableError. */
  readonly whenNoReplica?: 'primary' | 'error'
  /** Sessions: how long a read may wait for a replica to replay the session's writes. Default 1000. */
  readonly readYourWrites?: { readonly maxWaitMs?: number }
  /**
   * Kysely's migration table (`schema.table` allowed), compared between the primary and each replica
   * on every health check: a replica without the primary's latest migration serves no read until it
   * has it, also when another process ran the migration. Default `'kysely_migration'`; `false` skips it.
   */
  readonly migrationTable?: string | false
  /**
   * Throw TransactionEscapeError when a query inside `write.transaction().execute(cb)` runs on the outer
   * `db.read` / `db.write` instead of `tx`. Default true. Nothing is paid while none of this call's write
   * transactions is open. Node 24 carries the scope in AsyncLocalStorage; Node 20 and 22 read the async stack
   * of a query on an outer handle instead, which misses what an async helper the callback returns (rather
   * than awaits) runs after its own first `await` (docs/errors.md).
   */
  readonly detectTransactionEscapes?: boolean
  /**
   * PostgreSQL: the cursor class `.stream()` reads with, for pools kysely-rw creates. Default: `pg-cursor`,
   * loaded on the first `.stream()` when it is installed (an optional peer). A ready-made `Dialect`
   * brings its own.
   */
  readonly cursor?: PostgresCursorConstructor
  /**
   * PostgreSQL (pg 8.23+), replica pools kysely-rw creates: a read that finds every connection the lane
   * holds busy is pipelined on one of them, behind reads already sent there, instead of taking a connection
   * of its own (docs/pipelined-reads.md). Default true. Under load this roughly halves the client CPU per
   * read; the price is that a read can wait behind a slow one sent just before it on the same connection.
   */
  readonly pipelineReads?: boolean
  /**
   * A query log with Kysely's `log` semantics: `['query', 'error']` (either or both) prints to the console
   * as Kysely does, plus the node; a function receives Kysely's `LogEvent` for every query with the node
   * that served it (`node`, `role`, `session`). Never given credentials. Default: no log, at no cost.
   */
  readonly log?: BackendLogConfig
  /**
   * OpenTelemetry spans for every query when `@opentelemetry/api` is installed and an SDK registered, and
   * always the `kysely-rw:query` diagnostics channel. `queryText: true` adds the SQL (`db.query.text`);
   * `openTelemetry: false` makes no spans.
   */
  readonly tracing?: TracingOptions
  /** Receives routing and health events. Never given secrets. */
  readonly onEvent?: (event: BackendEvent) => void
  /**
   * Signs session tokens with HMAC-SHA256 under `secret`, so that a token handed to a client (a cookie)
   * cannot be forged or edited: a token whose signature does not verify is treated as foreign. Tokens
   * are unsigned by default; they carry only a replication position either way.
   */
  readonly sessionTokens?: { readonly secret: string | Uint8Array }
  /**
   * Deadlines, in milliseconds. Each has a default, so that nothing waits forever on a server that
   * hangs instead of failing (a frozen VM, a partition that drops packets: TCP alone gives up only
   * after about 15 minutes).
   */
  readonly timeouts?: {
    /** Connecting to a server (pools kysely-rw creates; a pool config's own value wins). Default 5000. */
    readonly connectMs?: number
    /** Waiting for a pool connection, connecting included. Default 5000. */
    readonly acquireMs?: number
    /** A health check that has not answered by then marks its node down. Default 1000. */
    readonly healthCheckMs?: number
    /** `destroy()` lets queries in flight finish this long, then cuts their connections. Default 5000. */
    readonly destroyMs?: number
  }
  /**
   * The primary's budget for reads that fall back to it because no replica can serve them: at most
   * `maxConcurrent` at once (default 10); a surplus read waits up to `maxQueueMs` (default 500) for a
   * turn, then fails with NoReplicaAvailableError. Only applies when replicas are configured.
   */
  readonly fallbackReads?: { readonly maxConcurrent?: number; readonly maxQueueMs?: number }
  /**
   * Opt-in bounded staleness: when no replica is within `maxReplicaLagMs`, plain reads (never session
   * reads, never past the schema floor) keep using the least lagged replica while its lag is at most
   * `maxLagMs`, instead of moving to the primary. Counted in `stats().staleReads`.
   */
  readonly staleReads?: { readonly maxLagMs: number }
}

/**
 * A {@link BackendsConfig} for PostgreSQL only: annotate a configuration with it (`const config:
 * PostgresBackendsConfig = …`) and MySQL options or pools in it do not compile.
 */
export interface PostgresBackendsConfig extends BackendsConfig {
  readonly dialect: 'postgres'
  readonly primary: PostgresNodeConfig | undefined | readonly (PostgresNodeConfig | undefined)[]
  readonly replicas?: readonly (PostgresNodeConfig | undefined)[]
}

/** A {@link BackendsConfig} for MySQL and MariaDB only, as {@link PostgresBackendsConfig}. */
export interface MysqlBackendsConfig extends BackendsConfig {
  readonly dialect: 'mysql'
  readonly primary: MysqlNodeConfig | undefined | readonly (MysqlNodeConfig | undefined)[]
  readonly replicas?: readonly (MysqlNodeConfig | undefined)[]
}

/** The options of a {@link BackendsConfig}, checked and with their defaults. */
export interface ResolvedOptions {
  readonly dialect: DialectName
  readonly enforcement: ReadOnlyEnforcement
  readonly whenNoReplica: 'primary' | 'error'
  readonly selection: ReplicaSelection
  readonly maxReplicaLagMs: number
  readonly intervalMs: number
  readonly maxWaitMs: number
  /** The key that signs session tokens; undefined: unsigned tokens. */
  readonly tokenSecret: string | Uint8Array | undefined
  readonly connectTimeoutMs: number
  readonly acquireTimeoutMs: number
  readonly healthCheckTimeoutMs: number
  readonly destroyTimeoutMs: number
  readonly fallbackMaxConcurrent: number
  readonly fallbackMaxQueueMs: number
  readonly staleReadsMaxLagMs: number | undefined
  readonly cursor: PostgresCursorConstructor | undefined
  readonly pipelineReads: boolean
  readonly log: BackendLogConfig | undefined
  readonly tracing: TracingOptions | undefined
}

/** The largest delay Node's timers take: longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Checks every option and fills in defaults; a value outside the documented ones is an error, never a guess. */
export function resolveOptions(config: BackendsConfig): ResolvedOptions {
  if (typeof config !== 'object' || config === null) {
    throw new ConfigurationError(`createBackends takes a configuration object, not ${describeValue(config)}.`)
  }
  if (config.dialect === undefined)
    throw new ConfigurationError("createBackends needs a dialect: 'postgres' or 'mysql'.")
  if (config.dialect !== 'postgres' && config.dialect !== 'mysql') {
    throw new ConfigurationError(`Unknown dialect (${describeValue(config.dialect)}): use 'postgres' or 'mysql'.`)
  }
  const candidates: readonly unknown[] = Array.isArray(config.primary) ? config.primary : [config.primary]
  if (candidates.length === 0) throw new ConfigurationError('createBackends needs a primary: primary is an empty list.')
  for (const [i, candidate] of candidates.entries()) {
    nodeConfig(
      candidate,
      candidates.length === 1 && !Array.isArray(config.primary) ? 'primary' : `primary[${i}]`,
      config.dialect,
      true,
    )
  }
  if (config.replicas !== undefined) {
    if (!Array.isArray(config.replicas)) {
      throw new ConfigurationError(
        `replicas must be an array of node configurations, not ${describeValue(config.replicas)}.`,
      )
    }
    for (const [i, replica] of config.replicas.entries()) nodeConfig(replica, `replicas[${i}]`, config.dialect, false)
  }
  if (config.plugins !== undefined && !Array.isArray(config.plugins)) {
    throw new ConfigurationError(`plugins must be an array of Kysely plugins, not ${describeValue(config.plugins)}.`)
  }
  if (config.onEvent !== undefined && typeof config.onEvent !== 'function') {
    throw new ConfigurationError(`onEvent must be a function, not ${describeValue(config.onEvent)}.`)
  }
  if (config.pipelineReads !== undefined && typeof config.pipelineReads !== 'boolean') {
    throw new ConfigurationError(`pipelineReads must be true or false, not ${describeValue(config.pipelineReads)}.`)
  }
  if (config.detectTransactionEscapes !== undefined && typeof config.detectTransactionEscapes !== 'boolean') {
    throw new ConfigurationError(
      `detectTransactionEscapes must be true or false, not ${describeValue(config.detectTransactionEscapes)}.`,
    )
  }
  if (
    config.migrationTable !== undefined &&
    config.migrationTable !== false &&
    (typeof config.migrationTable !== 'string' || config.migrationTable === '')
  ) {
    throw new ConfigurationError(
      `migrationTable must be a table name or false, not ${describeValue(config.migrationTable)}.`,
    )
  }
  if (
    config.readYourWrites !== undefined &&
    (typeof config.readYourWrites !== 'object' || config.readYourWrites === null)
  ) {
    throw new ConfigurationError(
      `readYourWrites must be an object ({ maxWaitMs }), not ${describeValue(config.readYourWrites)}.`,
    )
  }
  const selection = config.replicaSelection ?? 'round-robin'
  if (typeof selection !== 'function') oneOf(selection, ['round-robin', 'random', 'least-lag'], 'replicaSelection')
  return {
    dialect: config.dialect,
    tokenSecret: tokenSecret(config.sessionTokens),
    enforcement: oneOf(config.readOnlySessions, ['connection', 'transaction'], 'readOnlySessions'),
    whenNoReplica: oneOf(config.whenNoReplica, ['primary', 'error'], 'whenNoReplica'),
    selection,
    maxReplicaLagMs: positive(config.maxReplicaLagMs, 5000, 'maxReplicaLagMs'),
    intervalMs: positive(config.healthCheckIntervalMs, 1000, 'healthCheckIntervalMs'),
    maxWaitMs: positive(config.readYourWrites?.maxWaitMs, 1000, 'readYourWrites.maxWaitMs'),
    connectTimeoutMs: positive(config.timeouts?.connectMs, 5000, 'timeouts.connectMs'),
    acquireTimeoutMs: positive(config.timeouts?.acquireMs, 5000, 'timeouts.acquireMs'),
    healthCheckTimeoutMs: positive(config.timeouts?.healthCheckMs, 1000, 'timeouts.healthCheckMs'),
    destroyTimeoutMs: positive(config.timeouts?.destroyMs, 5000, 'timeouts.destroyMs'),
    fallbackMaxConcurrent: positive(config.fallbackReads?.maxConcurrent, 10, 'fallbackReads.maxConcurrent'),
    fallbackMaxQueueMs: positive(config.fallbackReads?.maxQueueMs, 500, 'fallbackReads.maxQueueMs'),
    staleReadsMaxLagMs:
      config.staleReads === undefined
        ? undefined
        : positive(config.staleReads.maxLagMs ?? Number.NaN, 0, 'staleReads.maxLagMs'),
    cursor: cursorOption(config.cursor),
    pipelineReads: config.pipelineReads !== false,
    log: logOption(config.log),
    tracing: config.tracing,
  }
}

function logOption(log: BackendLogConfig | undefined): BackendLogConfig | undefined {
  if (log === undefined || typeof log === 'function') return log
  if (!Array.isArray(log) || log.some((level) => level !== 'query' && level !== 'error')) {
    throw new ConfigurationError(
      `log must be an array of 'query' and 'error', or a function receiving each event, not ${JSON.stringify(log)}.`,
    )
  }
  return log
}

function cursorOption(cursor: PostgresCursorConstructor | undefined): PostgresCursorConstructor | undefined {
  if (cursor !== undefined && typeof cursor !== 'function') {
    throw new ConfigurationError(
      "cursor must be pg-cursor's class (import Cursor from 'pg-cursor'), not an instance or a name.",
    )
  }
  return cursor
}

/** The value, or the first choice when absent; anything else is a configuration error, never a guess. */
function oneOf<T extends string>(value: T | undefined, choices: readonly T[], name: string): T {
  if (value === undefined) return choices[0] as T
  if (!choices.includes(value)) {
    throw new ConfigurationError(
      `${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, not ${describeValue(value)}.`,
    )
  }
  return value
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new ConfigurationError(
      `${name} must be a positive number of milliseconds up to ${MAX_TIMER_MS} (what Node's timers take), ` +
        `not ${describeValue(value)}.`,
    )
  }
  return value
}

/**
 * What a wrong value is, for an error message, without the value itself: an option given by mistake
 * may hold a connection string with its password.
 */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `an array of ${value.length}`
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : `the number ${String(value)}`
  if (typeof value === 'boolean') return String(value)
  if (typeof value === 'string') return value === '' ? 'an empty string' : `a string of ${value.length} characters`
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

// The URL schemes each driver reads. pg also takes `socket:` (a Unix socket); mysql2 ignores the
// scheme, so one of PostgreSQL's is a mistake worth naming.
const SCHEMES: Record<DialectName, readonly string[]> = {
  postgres: ['postgres:', 'postgresql:', 'socket:'],
  mysql: ['mysql:', 'mariadb:'],
}
// The options only one driver knows: in the other family's configuration they are a mix-up.
const FOREIGN_OPTIONS: Record<DialectName, readonly string[]> = {
  postgres: ['uri', 'connectionLimit', 'connectTimeout', 'socketPath', 'waitForConnections'],
  mysql: ['connectionString', 'connectionTimeoutMillis', 'idleTimeoutMillis', 'max', 'application_name'],
}

/**
 * A node is a connection string that parses as a URL of its family, the driver's pool options, a pool
 * made by the application, or a Kysely Dialect. Errors name the option and say what is wrong with it,
 * never its value: a URL's scheme is named only when it is one of the known ones.
 */
function nodeConfig(config: unknown, name: string, dialect: DialectName, primary: boolean): void {
  if (config === undefined || config === null || config === '') {
    const what = config === '' ? 'an empty string' : String(config)
    throw new ConfigurationError(
      `${primary ? 'createBackends needs a primary: ' : ''}${name} is ${what} (an environment variable that ` +
        'is not set?). Give it a connection string, pool options, a pool or a Kysely Dialect' +
        `${primary ? '' : ', or leave it out of replicas'}.`,
    )
  }
  if (typeof config === 'string') {
    connectionUrl(config, name, dialect)
    return
  }
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigurationError(
      `${name} must be a connection string, pool options, a pool or a Kysely Dialect, not ${describeValue(config)}.`,
    )
  }
  if (isDialect(config)) return
  const single = singleConnectionOf(config)
  if (single !== undefined) {
    throw new ConfigurationError(
      `${name} is a single ${single} connection, which kysely-rw cannot share between queries: hand in a pool ` +
        `(${single === 'pg' ? 'new pg.Pool(…)' : "mysql2's createPool(…)"}) or its options.`,
    )
  }
  const family = poolFamily(config)
  if (family !== undefined) {
    if (family !== dialect) {
      throw new ConfigurationError(
        `${name} is a ${family === 'postgres' ? 'pg' : 'mysql2'} pool, but the dialect is '${dialect}': ` +
          `hand in a ${dialect === 'postgres' ? 'pg' : 'mysql2'} pool, or set dialect: '${family}'.`,
      )
    }
    return
  }
  const options = config as Record<string, unknown>
  const foreign = FOREIGN_OPTIONS[dialect].find((option) => option in options)
  if (foreign !== undefined) {
    throw new ConfigurationError(
      `${name} has the option ${foreign}, which ${dialect === 'postgres' ? 'pg' : 'mysql2'} does not know ` +
        `(the dialect is '${dialect}'): use ${dialect === 'postgres' ? "pg's PoolConfig" : "mysql2's PoolOptions"}.`,
    )
  }
  const url = dialect === 'postgres' ? options.connectionString : options.uri
  if (url !== undefined) {
    if (typeof url !== 'string') throw new ConfigurationError(`${name}'s connection string does not parse as a URL.`)
    connectionUrl(url, `${name}'s connection string`, dialect)
  }
}

function connectionUrl(url: string, name: string, dialect: DialectName): void {
  if (!URL.canParse(url)) {
    throw new ConfigurationError(
      `${name} is a string that does not parse as a connection URL (scheme://user:password@host:port/database). ` +
        'Check its spelling; characters such as @ : / # in a password must be percent-encoded.',
    )
  }
  const scheme = new URL(url).protocol
  if (SCHEMES[dialect].includes(scheme)) return
  const other: DialectName = dialect === 'postgres' ? 'mysql' : 'postgres'
  const named = SCHEMES[other].includes(scheme) ? `a ${scheme}// URL` : 'a URL of another scheme'
  throw new ConfigurationError(
    `${name} is ${named}, but the dialect is '${dialect}': use a ${SCHEMES[dialect][0]}// URL` +
      `${SCHEMES[other].includes(scheme) ? `, or set dialect: '${other}'` : ''}.`,
  )
}

function tokenSecret(option: BackendsConfig['sessionTokens']): string | Uint8Array | undefined {
  if (option === undefined) return undefined
  const secret = (option as { secret?: unknown } | null)?.secret
  if ((typeof secret === 'string' || secret instanceof Uint8Array) && secret.length >= 16) return secret
  throw new ConfigurationError(
    'sessionTokens.secret must be a string or bytes of at least 16 characters (a random key from your secret ' +
      `store), not ${describeValue(secret)}.`,
  )
}

import type { KyselyPlugin } from 'kysely'
import type { DialectName, NodeConfig } from './dialects/dialect.js'
import type { ReadOnlyEnforcement } from './driver/node.js'
import { ConfigurationError } from './errors.js'
import type { BackendEvent } from './events.js'
import type { ReplicaSelection } from './routing/strategies.js'

/** What `createBackends` needs: the database family, the primary, and optionally replicas and routing rules. */
export interface BackendsConfig {
  /** `'postgres'` (pg, streaming replication) or `'mysql'` (mysql2; MySQL 8 and MariaDB). */
  readonly dialect: DialectName
  /** The primary: a connection string, the driver's pool config, or a Kysely `Dialect`. */
  readonly primary: NodeConfig
  /** The replicas, in the same forms. None: reads run on the primary, in read-only sessions. */
  readonly replicas?: readonly NodeConfig[]
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
   * `db.read` / `db.write` instead of `tx`. Default true. It rests on AsyncLocalStorage, which on Node 20
   * slows every promise of the process a little (measured in bench/RESULTS.md); Node 24's is cheaper.
   */
  readonly detectTransactionEscapes?: boolean
  /** Receives routing and health events. Never given secrets. */
  readonly onEvent?: (event: BackendEvent) => void
  /**
   * Signs session tokens with HMAC-SHA256 under `secret`, so that a token handed to a client (a cookie)
   * cannot be forged or edited: a token whose signature does not verify is treated as foreign. Tokens
   * are unsigned by default; they carry only a replication position either way.
   */
  readonly sessionTokens?: { readonly secret: string | Uint8Array }
}

/** The options of a {@link BackendsConfig}, checked and with their defaults. */
export interface ResolvedOptions {
  readonly enforcement: ReadOnlyEnforcement
  readonly whenNoReplica: 'primary' | 'error'
  readonly selection: ReplicaSelection
  readonly maxReplicaLagMs: number
  readonly intervalMs: number
  readonly maxWaitMs: number
  /** The key that signs session tokens; undefined: unsigned tokens. */
  readonly tokenSecret: string | Uint8Array | undefined
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
  if (!config.primary) throw new ConfigurationError('createBackends needs a primary.')
  nodeConfig(config.primary, 'primary')
  if (config.replicas !== undefined) {
    if (!Array.isArray(config.replicas)) {
      throw new ConfigurationError(
        `replicas must be an array of node configurations, not ${describeValue(config.replicas)}.`,
      )
    }
    for (const [i, replica] of config.replicas.entries()) nodeConfig(replica, `replicas[${i}]`)
  }
  if (config.plugins !== undefined && !Array.isArray(config.plugins)) {
    throw new ConfigurationError(`plugins must be an array of Kysely plugins, not ${describeValue(config.plugins)}.`)
  }
  if (config.onEvent !== undefined && typeof config.onEvent !== 'function') {
    throw new ConfigurationError(`onEvent must be a function, not ${describeValue(config.onEvent)}.`)
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
    tokenSecret: tokenSecret(config.sessionTokens),
    enforcement: oneOf(config.readOnlySessions, ['connection', 'transaction'], 'readOnlySessions'),
    whenNoReplica: oneOf(config.whenNoReplica, ['primary', 'error'], 'whenNoReplica'),
    selection,
    maxReplicaLagMs: positive(config.maxReplicaLagMs, 5000, 'maxReplicaLagMs'),
    intervalMs: positive(config.healthCheckIntervalMs, 1000, 'healthCheckIntervalMs'),
    maxWaitMs: positive(config.readYourWrites?.maxWaitMs, 1000, 'readYourWrites.maxWaitMs'),
  }
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

/** A node is a connection string that parses as a URL, a pool configuration, or a Kysely Dialect. */
function nodeConfig(config: unknown, name: string): void {
  if (typeof config === 'string') {
    if (!URL.canParse(config)) {
      throw new ConfigurationError(
        `${name} is a string that does not parse as a connection URL (scheme://user:password@host:port/database). ` +
          'Check its spelling; characters such as @ : / # in a password must be percent-encoded.',
      )
    }
    return
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigurationError(
      `${name} must be a connection string, a driver pool configuration or a Kysely Dialect, not ${describeValue(config)}.`,
    )
  }
  const url = (config as Record<string, unknown>).connectionString ?? (config as Record<string, unknown>).uri
  if (url !== undefined && (typeof url !== 'string' || !URL.canParse(url))) {
    throw new ConfigurationError(`${name}'s connection string does not parse as a URL.`)
  }
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

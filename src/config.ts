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
   * `db.read` / `db.write` instead of `tx`. Default true. It rests on AsyncLocalStorage, enabled only while
   * a write transaction is open: on Node 20 and 22 every promise of the process pays a little then, and
   * nothing otherwise (measured in bench/RESULTS.md); Node 24's costs no promise anything.
   */
  readonly detectTransactionEscapes?: boolean
  /** Receives routing and health events. Never given secrets. */
  readonly onEvent?: (event: BackendEvent) => void
}

/** The options of a {@link BackendsConfig}, checked and with their defaults. */
export interface ResolvedOptions {
  readonly enforcement: ReadOnlyEnforcement
  readonly whenNoReplica: 'primary' | 'error'
  readonly selection: ReplicaSelection
  readonly maxReplicaLagMs: number
  readonly intervalMs: number
  readonly maxWaitMs: number
}

/** Checks every option and fills in defaults; a value outside the documented ones is an error, never a guess. */
export function resolveOptions(config: BackendsConfig): ResolvedOptions {
  if (!config.primary) throw new ConfigurationError('createBackends needs a primary.')
  const selection = config.replicaSelection ?? 'round-robin'
  if (typeof selection !== 'function') oneOf(selection, ['round-robin', 'random', 'least-lag'], 'replicaSelection')
  return {
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
      `${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, not ${JSON.stringify(value)}.`,
    )
  }
  return value
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigurationError(`${name} must be a positive number of milliseconds, not ${String(value)}.`)
  }
  return value
}

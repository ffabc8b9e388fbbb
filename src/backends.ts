import { DefaultQueryExecutor, type Dialect, Kysely, type KyselyPlugin } from 'kysely'
import type { ReadBackend, WriteBackend } from './capability.js'
import { type DialectName, type DialectSupport, isDialect, type NodeConfig } from './dialects/dialect.js'
import { mysql } from './dialects/mysql.js'
import { postgres } from './dialects/postgres.js'
import { BackendDriver } from './driver/backend-driver.js'
import { Node, type ReadOnlyEnforcement, type ReadOnlySession } from './driver/node.js'
import { ConfigurationError } from './errors.js'
import { ReadGuard } from './guard/read-guard.js'
import { ScopedConnectionProvider } from './guard/transaction-scope.js'

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
}

/** The two handles of one database: the primary and its replicas. */
export interface Backends<DB> {
  /** The primary. */
  readonly write: WriteBackend<DB>
  /** A replica per query (the primary in a read-only session when there is none). */
  readonly read: ReadBackend<DB>
  /** Closes every pool of both backends. */
  destroy(): Promise<void>
}

const SUPPORT: Record<DialectName, DialectSupport> = { postgres, mysql }

/**
 * Creates the typed backends of one database.
 *
 * ```ts
 * const db = createBackends<DB>({
 *   dialect: 'postgres',
 *   primary: process.env.DATABASE_URL,
 *   replicas: [process.env.REPLICA_URL],
 * })
 * await db.write.insertInto('users').values({ name: 'Ada' }).execute()
 * const users = await db.read.selectFrom('users').selectAll().execute()
 * await db.destroy()
 * ```
 */
export function createBackends<DB>(config: BackendsConfig): Backends<DB> {
  const support = SUPPORT[config.dialect]
  if (!support) {
    throw new ConfigurationError(`Unknown dialect "${String(config.dialect)}": use 'postgres' or 'mysql'.`)
  }
  if (!config.primary) throw new ConfigurationError('createBackends needs a primary.')
  const enforcement = config.readOnlySessions ?? 'connection'
  const primary = nodeFor(support, config.primary, 'primary', undefined)
  const replicas = (config.replicas ?? []).map((replica, i) =>
    nodeFor(support, replica, `replica ${i + 1}`, readOnlySession(support, replica, enforcement)),
  )
  const readNodes = replicas.length > 0 ? replicas : [primaryForReads(support, config.primary, primary, enforcement)]

  const group = {}
  const writeDriver = new BackendDriver('write', [primary], undefined)
  const readDriver = new BackendDriver('read', readNodes, new ReadGuard(support.isReadOnlyRefusal))
  const plugins = config.plugins ?? []
  return {
    write: kyselyOn(writeDriver, primary.dialect, plugins, group) as unknown as WriteBackend<DB>,
    read: kyselyOn(readDriver, primary.dialect, plugins, group) as unknown as ReadBackend<DB>,
    async destroy() {
      await Promise.all([writeDriver.destroy(), readDriver.destroy()])
    },
  }
}

function nodeFor(
  support: DialectSupport,
  config: NodeConfig,
  role: string,
  readOnly: ReadOnlySession | undefined,
): Node {
  if (isDialect(config)) return new Node(role, config, readOnly)
  const startsReadOnly = readOnly?.enforcement === 'connection'
  return new Node(`${role} ${support.describe(config)}`, support.createDialect(config, startsReadOnly), readOnly)
}

function readOnlySession(
  support: DialectSupport,
  config: NodeConfig,
  enforcement: ReadOnlyEnforcement,
): ReadOnlySession {
  if (enforcement === 'transaction') return { enforcement, transactionSql: support.readOnlyTransactionSql }
  // A pool kysely-rw creates starts its sessions read-only; a ready-made dialect's are made so by statement.
  return isDialect(config) ? { enforcement, sessionSql: support.readOnlySessionSql } : { enforcement }
}

// With no replica, reads go to the primary, still in read-only sessions, so that a misrouted write
// fails in development exactly as it would on a replica.
function primaryForReads(
  support: DialectSupport,
  config: NodeConfig,
  primary: Node,
  enforcement: ReadOnlyEnforcement,
): Node {
  if (isDialect(config)) {
    // One ready-made dialect may be a single connection (PGlite): share its driver, and never change
    // the session the write backend also uses.
    return new Node('primary (read-only)', config, readOnlySession(support, config, 'transaction'), primary)
  }
  return nodeFor(support, config, 'primary (read-only)', readOnlySession(support, config, enforcement))
}

function kyselyOn(driver: BackendDriver, dialect: Dialect, plugins: KyselyPlugin[], group: object): Kysely<any> {
  const executor = new DefaultQueryExecutor(
    dialect.createQueryCompiler(),
    dialect.createAdapter(),
    new ScopedConnectionProvider(driver, group),
    plugins,
  )
  return new Kysely({ config: { dialect, plugins }, driver, dialect, executor })
}

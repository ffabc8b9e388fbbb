import { CompiledQuery, DefaultQueryExecutor, type Dialect, Kysely, type KyselyPlugin } from 'kysely'
import type { Migrator } from 'kysely/migration'
import type { ReadBackend, WriteBackend } from './capability.js'
import { type BackendsConfig, resolveOptions } from './config.js'
import { laterOf, parsePosition } from './consistency/position.js'
import { SchemaFloor } from './consistency/schema-floor.js'
import { decodeToken, encodeToken } from './consistency/token.js'
import { type DialectName, type DialectSupport, isDialect, type NodeConfig } from './dialects/dialect.js'
import { createMysqlSupport } from './dialects/mysql.js'
import { postgres } from './dialects/postgres.js'
import { BackendDriver, type BackendDriverOptions } from './driver/backend-driver.js'
import { Node, type ReadOnlyEnforcement, type ReadOnlySession } from './driver/node.js'
import { fixedRouter } from './driver/router.js'
import { ConfigurationError, InvalidSessionTokenError } from './errors.js'
import { type BackendStats, type ReplicaStatus, Telemetry } from './events.js'
import { ReadGuard } from './guard/read-guard.js'
import { ScopedConnectionProvider } from './guard/transaction-scope.js'
import { BackendMigrator, type BackendMigratorProps } from './migrations/migrator.js'
import { HealthChecker } from './routing/health.js'
import { isUnsettled, positionalRouter, recordPending, type SessionState } from './routing/positional-router.js'
import { ReplicaPool } from './routing/replica-pool.js'

export type { BackendsConfig } from './config.js'

/**
 * A read-your-writes session: its reads never see data older than its own last write (or than the
 * token it continued from), and never wait longer than `readYourWrites.maxWaitMs` for a replica.
 */
export interface Session<DB> {
  /** The primary; records the position of each committed write. */
  readonly write: WriteBackend<DB>
  /** A replica that has replayed the session's writes, or the primary. */
  readonly read: ReadBackend<DB>
  /** The session's position as a string, to continue the session in a later request. */
  token(): string
}

/** The two handles of one database: the primary and its replicas. */
export interface Backends<DB> {
  /** The primary. */
  readonly write: WriteBackend<DB>
  /** A replica per query (the primary in a read-only session when none is eligible). */
  readonly read: ReadBackend<DB>
  /** A read-your-writes session; pass a token from `session.token()` to continue one. */
  session(token?: string): Session<DB>
  /** Each replica's state, lag and last check. */
  replicas(): ReplicaStatus[]
  /** Reads per node, writes, fallbacks to the primary, waits and their total time. */
  stats(): BackendStats
  /**
   * Kysely's `Migrator` on the primary (`migrationTableName` defaults to the `migrationTable` option).
   * When a run finishes, the schema floor rises: no read goes to a replica that has not replayed it.
   */
  migrator(props: BackendMigratorProps): Migrator
  /** Stops the health checks and closes every pool. */
  destroy(): Promise<void>
}

// A factory each: the MySQL family learns per createBackends whether its servers are MySQL or MariaDB.
const SUPPORT: Record<DialectName, () => DialectSupport> = { postgres: () => postgres, mysql: createMysqlSupport }

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
  const support = SUPPORT[config.dialect]?.()
  if (!support) {
    throw new ConfigurationError(`Unknown dialect "${String(config.dialect)}": use 'postgres' or 'mysql'.`)
  }
  const { enforcement, whenNoReplica, selection, maxReplicaLagMs, intervalMs, maxWaitMs } = resolveOptions(config)

  const primary = nodeFor(support, config.primary, 'primary', undefined)
  const replicas = (config.replicas ?? []).map((replica, i) =>
    nodeFor(support, replica, `replica ${i + 1}`, readOnlySession(support, replica, enforcement)),
  )
  const primaryRead = primaryForReads(support, config.primary, primary, enforcement)
  const telemetry = new Telemetry(config.onEvent)
  const pool = new ReplicaPool(replicas, primaryRead, { selection, maxReplicaLagMs, whenNoReplica }, telemetry)
  const migrationTable = config.migrationTable === false ? undefined : (config.migrationTable ?? 'kysely_migration')
  const checker = new HealthChecker(
    support,
    primary,
    pool,
    intervalMs,
    Math.max(10 * maxReplicaLagMs, 60_000),
    migrationTable,
  )
  if (replicas.length > 0) checker.start()

  const group = config.detectTransactionEscapes === false ? undefined : {}
  const guard = new ReadGuard(support.isReadOnlyRefusal, config.dialect)
  const isConnectionError = support.isConnectionError
  const plugins = config.plugins ?? []
  const backend = (options: Omit<BackendDriverOptions, 'isConnectionError' | 'telemetry'>) =>
    kyselyOn(new BackendDriver({ ...options, isConnectionError, telemetry }), primary.dialect, plugins, group)
  const floor = new SchemaFloor()
  const replicaRouter = pool.router(isConnectionError)
  const readRouter = (state: SessionState) =>
    positionalRouter(state, floor, pool, support, maxWaitMs, telemetry, replicaRouter)
  const writeOptions = { role: 'write', router: fixedRouter(primary), floor, replication: support.replication } as const

  const write = backend(writeOptions) as unknown as WriteBackend<DB>
  return {
    write,
    read: backend({
      role: 'read',
      router: readRouter({ position: undefined, foreign: false }),
      guard,
    }) as unknown as ReadBackend<DB>,
    session(token?: string): Session<DB> {
      const state = sessionState(token, checker)
      return {
        write: backend({
          ...writeOptions,
          session: true,
          recorder: {
            record(text) {
              const position = parsePosition(text)
              if (position) state.position = laterOf(state.position, position)
            },
            pending: (settled) => recordPending(state, settled),
          },
        }) as unknown as WriteBackend<DB>,
        read: backend({ role: 'read', router: readRouter(state), guard, session: true }) as unknown as ReadBackend<DB>,
        token: () =>
          encodeToken({ cluster: checker.cluster ?? '', position: state.position, unsettled: isUnsettled(state) }),
      }
    },
    replicas: () => pool.status(),
    migrator: (props) =>
      new BackendMigrator(write, floor, () => primaryPosition(primary, support), {
        ...props,
        migrationTableName: props.migrationTableName ?? migrationTable,
      }),
    stats: () => telemetry.snapshot(),
    async destroy() {
      await checker.stop()
      await Promise.all([primary, primaryRead, ...replicas].map((node) => node.destroy()))
    },
  }
}

function sessionState(token: string | undefined, checker: HealthChecker): SessionState {
  if (token === undefined) return { position: undefined, foreign: false }
  if (typeof token !== 'string') throw new InvalidSessionTokenError(token)
  const decoded = decodeToken(token)
  if (!decoded) return { position: undefined, foreign: true }
  const unknown = decoded.unsettled === true
  if (!decoded.position && !unknown) return { position: undefined, foreign: false }
  // A position from another cluster or history can only be honoured on the primary; a cluster not
  // known yet (before the first health check) is not guessed to be this one.
  const foreign = decoded.cluster === '' || decoded.cluster !== checker.cluster
  return { position: decoded.position, foreign, unknown }
}

async function primaryPosition(primary: Node, support: DialectSupport): Promise<string | undefined> {
  return primary.withConnection(async (connection) => {
    const { primaryPosition } = await support.replication(connection)
    const { rows } = await connection.executeQuery<{ pos: string | null }>(CompiledQuery.raw(primaryPosition))
    return rows[0]?.pos ?? undefined
  })
}

function nodeFor(
  support: DialectSupport,
  config: NodeConfig,
  role: string,
  readOnly: ReadOnlySession | undefined,
): Node {
  if (isDialect(config)) return new Node(role, config, readOnly)
  const dialect = support.createDialect(config, {
    readOnly: readOnly?.enforcement === 'connection',
    trackPositions: readOnly === undefined,
  })
  return new Node(`${role} ${support.describe(config)}`, dialect, readOnly)
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

function kyselyOn(
  driver: BackendDriver,
  dialect: Dialect,
  plugins: KyselyPlugin[],
  group: object | undefined,
): Kysely<any> {
  const executor = new DefaultQueryExecutor(
    dialect.createQueryCompiler(),
    dialect.createAdapter(),
    new ScopedConnectionProvider(driver, group),
    plugins,
  )
  return new Kysely({ config: { dialect, plugins }, driver, dialect, executor })
}

import {
  DefaultQueryExecutor,
  type Dialect,
  type DialectAdapter,
  Kysely,
  type KyselyPlugin,
  type QueryCompiler,
} from 'kysely'
import type { Migrator } from 'kysely/migration'
import type { ReadBackend, WriteBackend } from './capability.js'
import { type BackendsConfig, resolveOptions } from './config.js'
import { CommitPositionReads } from './consistency/commit-positions.js'
import { laterOf, parsePosition } from './consistency/position.js'
import { SchemaFloor } from './consistency/schema-floor.js'
import { decodeToken, encodeToken } from './consistency/token.js'
import { replayedForm } from './consistency/wal-layout.js'
import { type DialectName, type DialectSupport, type NodeTarget, readPosition } from './dialects/dialect.js'
import { createMysqlSupport } from './dialects/mysql.js'
import type { NodeConfig } from './dialects/node-config.js'
import { describePool, poolDialect, poolFamily } from './dialects/pools.js'
import { postgres } from './dialects/postgres.js'
import { BackendDriver, type BackendDriverOptions } from './driver/backend-driver.js'
import { LaneExecutor } from './driver/lane-executor.js'
import type { Node } from './driver/node.js'
import { InvalidSessionTokenError } from './errors.js'
import { type BackendStats, type ReplicaStatus, Telemetry } from './events.js'
import { withQuietVerdicts } from './guard/quiet-compiler.js'
import { ReadGuard } from './guard/read-guard.js'
import { type Group, newGroup, ScopedConnectionProvider } from './guard/transaction-scope.js'
import { BackendMigrator, type BackendMigratorProps } from './migrations/migrator.js'
import { NodeFactory } from './node-factory.js'
import { QueryObserver } from './observability/query-observer.js'
import { FallbackBudget } from './routing/fallback-budget.js'
import { isUnsettled, positionalRouter, type SessionState } from './routing/positional-router.js'
import { primaryRouter } from './routing/primary-router.js'
import { ReplayWaits } from './routing/replay-waits.js'
import { ReplicaPool } from './routing/replica-pool.js'
import { SessionWrites } from './routing/session-writes.js'
import type { Candidate } from './topology/topology.js'
import { Topology } from './topology/topology.js'

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
  /**
   * The primary as a plain `Kysely<DB>`, for tools and code typed `Kysely<DB>`: kysely-ctl, Kysely's
   * `Migrator`, third-party adapters. It is the write backend itself (one instance), so it keeps every
   * guarantee of `write`: a schema change raises the schema floor, a query escaping a write transaction
   * is caught. Its `destroy()` ends the whole group, like {@link Backends.destroy}. Prefer `write` in
   * application code: only `WriteBackend<DB>` tells a write from a read at compile time.
   *
   * ```ts
   * const migrator = new Migrator({ db: db.kysely, provider })
   * ```
   */
  readonly kysely: Kysely<DB>
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
  /** {@link Backends.destroy}, for `await using db = createBackends(…)`. */
  [Symbol.asyncDispose](): Promise<void>
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
  // Every option is checked first: the dialect name is looked up only once it is one of the two.
  const options = resolveOptions(config)
  const support = SUPPORT[config.dialect]()
  const { whenNoReplica, selection, maxReplicaLagMs, maxWaitMs } = options
  // A pool handed in is wrapped once, also when it is both a candidate and a replica: its dialect ends it once.
  // Its server is described from the options it keeps, as a connection string or pool config is.
  const wrapped = new Map<object, NodeTarget>()
  const servers = new Map<NodeTarget, string>()
  const nodes = new NodeFactory(support, options, (dialect) => servers.get(dialect))
  const target = (node: NodeConfig | undefined): NodeTarget => {
    const checked = node as NodeTarget
    if (poolFamily(checked) === undefined) return checked
    const pool = checked as object
    const known = wrapped.get(pool)
    if (known) return known
    const dialect = poolDialect(pool, config.dialect, options.cursor)
    wrapped.set(pool, dialect)
    const server = describePool(pool, config.dialect)
    if (server !== undefined) servers.set(dialect, server)
    return dialect
  }
  const primaries: readonly (NodeConfig | undefined)[] = Array.isArray(config.primary)
    ? config.primary
    : [config.primary as NodeConfig]
  const candidates = primaries.map((candidate, i) =>
    nodes.candidate(target(candidate), primaries.length === 1 ? 'primary' : `primary ${i + 1}`),
  )
  const first = candidates[0] as Candidate
  const replicas = (config.replicas ?? []).map((replica, i) => nodes.replica(target(replica), `replica ${i + 1}`))
  const telemetry = new Telemetry(config.onEvent)
  const migrationTable = config.migrationTable === false ? undefined : (config.migrationTable ?? 'kysely_migration')
  let topology: Topology | undefined
  const pool = new ReplicaPool(
    replicas.map((replica) => replica.node),
    () => (topology?.primary ?? first).read,
    new Set(candidates.map((candidate) => candidate.read)),
    {
      selection,
      maxReplicaLagMs,
      whenNoReplica,
      staleReadsMaxLagMs: options.staleReadsMaxLagMs,
      budget: new FallbackBudget(options.fallbackMaxConcurrent, options.fallbackMaxQueueMs),
      primaryHangs: () => topology?.primaryUnanswered === true,
    },
    telemetry,
  )
  topology = new Topology(support, candidates, replicas, pool, telemetry, {
    intervalMs: options.intervalMs,
    timeoutMs: options.healthCheckTimeoutMs,
    historyMs: Math.max(10 * maxReplicaLagMs, 60_000),
    migrationTable,
  })
  const live = topology
  live.start()

  const allNodes = [...new Set(candidates.flatMap((c) => [c.write, c.read, c.monitor]))].concat(
    ...replicas.map((r) => (r.monitor === r.node ? [r.node] : [r.node, r.monitor])),
  )
  let destroyed: Promise<void> | undefined
  const destroyAll = () =>
    (destroyed ??= (async () => {
      await live.stop()
      await Promise.all(allNodes.map((node) => node.destroy()))
    })())

  const group = config.detectTransactionEscapes === false ? undefined : newGroup()
  // Read backends offer their reads to the replicas' lanes, where pg can pipeline (PgReadLane).
  const lanes = replicas.some((replica) => replica.node.laneSlot !== undefined)
  const guard = new ReadGuard(support.isReadOnlyRefusal, config.dialect)
  const isConnectionError = support.isConnectionError
  const plugins = config.plugins ?? []
  const observer = {
    observer: new QueryObserver(options.log, options.tracing),
    system: config.dialect === 'postgres' ? 'postgresql' : 'mysql',
  } as const
  // One compiler per role and one adapter for the whole group, as one Kysely shares its own across its
  // transactions (compiling is synchronous): a session is made per request, and two compilers of its own,
  // each binding a hundred visitor functions, were most of what making one cost.
  const { dialect } = first.write
  const shared: SharedParts = {
    dialect,
    adapter: dialect.createAdapter(),
    writeCompiler: dialect.createQueryCompiler(),
    readCompiler: withQuietVerdicts(dialect.createQueryCompiler(), guard.lexing),
    plugins,
    group,
  }
  const backend = (driverOptions: Omit<BackendDriverOptions, 'isConnectionError' | 'telemetry' | 'destroyAll'>) =>
    kyselyOn(new BackendDriver({ ...driverOptions, isConnectionError, telemetry, destroyAll, observer, lanes }), shared)
  // A primary reports positions where its next record goes; a replica, where its last replayed one ends.
  const targetOf = (text: string | null | undefined) => {
    const position = parsePosition(text)
    return position && replayedForm(position, live.walLayout)
  }
  const floor = new SchemaFloor(targetOf)
  const replicaRouter = pool.router(isConnectionError)
  const monitors = new Map(replicas.map((replica) => [replica.node, replica.monitor]))
  const waits = new ReplayWaits(pool, support, telemetry, (node) => monitors.get(node) ?? node)
  const fallbackBudget =
    replicas.length > 0 ? { isFallback: (node: Node) => pool.isPrimary(node), budget: pool.budget } : undefined
  const readOptions = (state: SessionState, session: boolean) =>
    ({
      role: 'read',
      router: positionalRouter(state, floor, pool, waits, maxWaitMs, replicaRouter, () =>
        writtenPosition((live.primary ?? first).write, support).then(targetOf),
      ),
      guard,
      session,
      fallbackBudget,
    }) as const
  const writeOptions = {
    role: 'write',
    router: primaryRouter(live, candidates, isConnectionError),
    floor,
    replication: support.replication,
  } as const
  // Per primary node: a read on one server says nothing of commits on another.
  const commitPositions = new Map<Node, CommitPositionReads>()
  const commitPositionsOf = (node: Node) => {
    const known = commitPositions.get(node)
    if (known) return known
    // Within a session's wait budget: a read that cannot have a connection by then sends the session's reads
    // to the primary rather than holding them up.
    const reads = new CommitPositionReads(support.replication, (run) => node.withConnection(run, maxWaitMs))
    commitPositions.set(node, reads)
    return reads
  }

  const write = backend(writeOptions) as unknown as WriteBackend<DB>
  return {
    write,
    kysely: write as unknown as Kysely<DB>,
    read: backend(readOptions({ position: undefined, foreign: false }, false)) as unknown as ReadBackend<DB>,
    session(token?: string): Session<DB> {
      const state = sessionState(token, live, options.tokenSecret)
      const writes = new SessionWrites(state, commitPositionsOf, targetOf)
      return {
        write: backend({
          ...writeOptions,
          session: true,
          recorder: {
            record(text) {
              const position = targetOf(text)
              if (position) state.position = laterOf(state.position, position)
            },
            started: () => writes.started(),
            ended: () => writes.ended(),
            acknowledged: (node) => writes.acknowledged(node),
          },
        }) as unknown as WriteBackend<DB>,
        read: backend(readOptions(state, true)) as unknown as ReadBackend<DB>,
        token: () => {
          // The token is made now; the position, if owed, is at least on its way for the session's reads.
          writes.flush()
          return encodeToken(
            { cluster: live.cluster ?? '', position: state.position, unsettled: isUnsettled(state) },
            options.tokenSecret,
          )
        },
      }
    },
    replicas: () => pool.status(),
    migrator: (props) =>
      new BackendMigrator(write, floor, () => primaryPosition((live.primary ?? first).write, support), {
        ...props,
        migrationTableName: props.migrationTableName ?? migrationTable,
      }),
    stats: () => telemetry.snapshot(),
    destroy: destroyAll,
    [Symbol.asyncDispose]: destroyAll,
  }
}

function sessionState(
  token: string | undefined,
  topology: Topology,
  secret: string | Uint8Array | undefined,
): SessionState {
  if (token === undefined) return { position: undefined, foreign: false }
  if (typeof token !== 'string') throw new InvalidSessionTokenError(token)
  const decoded = decodeToken(token, secret)
  if (!decoded) return { position: undefined, foreign: true }
  const unknown = decoded.unsettled === true
  if (!decoded.position && !unknown) return { position: undefined, foreign: false }
  // A position from another cluster or history can only be honoured on the primary; a cluster not
  // known yet (before the first health check) is not guessed to be this one.
  const foreign = decoded.cluster === '' || decoded.cluster !== topology.cluster
  return { position: decoded.position, foreign, unknown }
}

/** A position past every commit the primary acknowledged: for a session whose last write's position is unknown. */
function writtenPosition(primary: Node, support: DialectSupport): Promise<string | undefined> {
  return primary.withConnection((connection) => readPosition(connection, support.replication, 'writtenPosition'))
}

function primaryPosition(primary: Node, support: DialectSupport): Promise<string | undefined> {
  return primary.withConnection((connection) => readPosition(connection, support.replication, 'primaryPosition'))
}

/** What every backend of a group shares: Kysely instances of one group differ only in their drivers. */
interface SharedParts {
  readonly dialect: Dialect
  readonly adapter: DialectAdapter
  readonly writeCompiler: QueryCompiler
  /** Reaches the guard's quiet verdicts as it compiles (read backends). */
  readonly readCompiler: QueryCompiler
  readonly plugins: KyselyPlugin[]
  readonly group: Group | undefined
}

function kyselyOn(driver: BackendDriver, shared: SharedParts): Kysely<unknown> {
  const { dialect, plugins } = shared
  const compiler = driver.guard ? shared.readCompiler : shared.writeCompiler
  const provider = new ScopedConnectionProvider(driver, shared.group, driver.role === 'write')
  const executor = driver.lanes
    ? new LaneExecutor(compiler, shared.adapter, provider, plugins, driver)
    : new DefaultQueryExecutor(compiler, shared.adapter, provider, plugins)
  return new Kysely({ config: { dialect, plugins }, driver, dialect, executor })
}

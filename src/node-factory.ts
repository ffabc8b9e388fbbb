import { type Dialect, MysqlDialect, PostgresDialect } from 'kysely'
import type { ResolvedOptions } from './config.js'
import { type DialectSupport, isDialect, type NodeTarget } from './dialects/dialect.js'
import type { LaneSlot } from './dialects/pg-read-lane.js'
import { SocketRegistry } from './dialects/sockets.js'
import { Node, type NodeDeadlines, type ReadOnlyEnforcement, type ReadOnlySession } from './driver/node.js'
import { SESSION_END } from './guard/session-rules.js'
import type { Candidate, MonitoredReplica } from './topology/topology.js'

// Idle connections of kysely-rw's pools send TCP keepalives after this; a dead peer is noticed then.
const KEEPALIVE_DELAY_MS = 10_000

/** Builds the nodes of one `createBackends` call from the user's node configs. */
export class NodeFactory {
  readonly #deadlines: NodeDeadlines

  constructor(
    private readonly support: DialectSupport,
    private readonly options: ResolvedOptions,
    /** The server of a pool handed in (wrapped in a dialect): host, port and database, where the pool says. */
    private readonly serverOfDialect: (dialect: Dialect) => string | undefined = () => undefined,
  ) {
    this.#deadlines = { acquireTimeoutMs: options.acquireTimeoutMs, destroyTimeoutMs: options.destroyTimeoutMs }
  }

  /** A server that may be the primary: its write pool, its read-only view, and where its checks run. */
  candidate(config: NodeTarget, role: string): Candidate {
    const write = this.#node(config, role, undefined)
    const read = this.#primaryForReads(config, write, `${role} (read-only)`)
    return {
      server: this.#server(config),
      write,
      read,
      monitor: isDialect(config) ? read : this.#node(config, role, this.#readOnly(config, this.options.enforcement), 1),
    }
  }

  replica(config: NodeTarget, role: string): MonitoredReplica {
    const session = this.#readOnly(config, this.options.enforcement, true)
    // Only where a read is one statement on its session: in 'transaction' mode it is wrapped in BEGIN and
    // ROLLBACK, and a pooler may run a statement outside a transaction on another server connection.
    const checkReplay = this.support.checksReplayInline && session.enforcement === 'connection'
    const node = this.#node(config, role, session, undefined, checkReplay)
    return {
      server: this.#server(config),
      node,
      // Checks on a pool of their own never queue behind the reads of a saturated pool. They connect as
      // the reads do: behind a pooler that refuses the read-only startup parameter ('transaction' mode),
      // a monitor that sent it would find the replica down.
      monitor: isDialect(config) ? node : this.#node(config, role, session, 1),
    }
  }

  #node(
    config: NodeTarget,
    role: string,
    readOnly: ReadOnlySession | undefined,
    poolSize?: number,
    checkReplay = false,
  ): Node {
    if (isDialect(config)) return new Node(this.#name(config, role), config, readOnly, this.#deadlines)
    const sockets = new SocketRegistry()
    // Replica pools whose reads are one statement on a read-only session: where pg can, reads pipeline there.
    const lane: LaneSlot | undefined = checkReplay && this.options.pipelineReads ? { lane: undefined } : undefined
    const dialect = this.support.createDialect(config, {
      readOnly: readOnly?.enforcement === 'connection',
      trackPositions: readOnly === undefined,
      checkReplay,
      sockets,
      deadlines: { connectTimeoutMs: this.options.connectTimeoutMs, keepAliveDelayMs: KEEPALIVE_DELAY_MS },
      poolSize,
      cursor: this.options.cursor,
      lane,
    })
    return new Node(this.#name(config, role), dialect, readOnly, this.#deadlines, sockets, undefined, checkReplay, lane)
  }

  /** Host, port and database; undefined for a ready-made dialect, which does not say. */
  #server(config: NodeTarget): string | undefined {
    return isDialect(config) ? this.serverOfDialect(config) : this.support.describe(config)
  }

  #name(config: NodeTarget, role: string): string {
    const server = this.#server(config)
    return server === undefined ? role : `${role} ${server}`
  }

  #readOnly(config: NodeTarget, enforcement: ReadOnlyEnforcement, replica = false): ReadOnlySession {
    const own = !isDialect(config)
    // MySQL pools kysely-rw creates answer its session reset; after one, the session is made read-only again.
    const reset =
      own && SESSION_END[this.options.dialect] === 'reset'
        ? { restoreSql: enforcement === 'connection' ? this.support.readOnlySessionSql : undefined }
        : undefined
    if (enforcement === 'transaction') {
      // Kysely's own drivers start the transaction read-only; only others (PGlite) need the statement after BEGIN.
      const appliesAccessMode = own || config instanceof PostgresDialect || config instanceof MysqlDialect
      const transactionSql = appliesAccessMode ? undefined : this.support.readOnlyTransactionSql
      return { enforcement, replica, reset, transactionSql }
    }
    // A pool kysely-rw creates starts its sessions read-only; a ready-made dialect's are made so by statement.
    return own ? { enforcement, replica, reset } : { enforcement, replica, sessionSql: this.support.readOnlySessionSql }
  }

  // With no replica, reads go to the primary, still in read-only sessions, so that a misrouted write
  // fails in development exactly as it would on a replica.
  #primaryForReads(config: NodeTarget, primary: Node, role: string): Node {
    if (isDialect(config)) {
      // One ready-made dialect may be a single connection (PGlite): share its driver, and never change
      // the session the write backend also uses.
      const name = this.#name(config, role)
      return new Node(name, config, this.#readOnly(config, 'transaction'), this.#deadlines, undefined, primary)
    }
    return this.#node(config, role, this.#readOnly(config, this.options.enforcement))
  }
}

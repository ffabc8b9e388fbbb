import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { capturePositions, type PositionSink } from '../consistency/capture.js'
import type { SchemaFloor } from '../consistency/schema-floor.js'
import { type ReplicationStatements, readPosition } from '../dialects/dialect.js'
import type { LaneResult, LaneVerifier, PgReadLane } from '../dialects/pg-read-lane.js'
import { PrimaryUnavailableError, readLostError, redactDriverError, WriteOutcomeUnknownError } from '../errors.js'
import type { Telemetry } from '../events.js'
import { classify, isSchemaChange } from '../guard/classify.js'
import { oneStatementQuery } from '../guard/one-statement.js'
import type { GuardedQuery, ReadGuard } from '../guard/read-guard.js'
import { verifySession } from '../guard/session-rules.js'
import { enterWriteTransaction, leaveWriteTransaction } from '../guard/transaction-scope.js'
import type { QueryObserver } from '../observability/query-observer.js'
import type { FallbackBudget } from '../routing/fallback-budget.js'
import { BackendConnection, innerOf, RESET_QUERY } from './backend-connection.js'
import type { Node } from './node.js'
import { ObservedConnection } from './observed-connection.js'
import { type Route, type Router, type RouteTrace, Unconfirmed } from './router.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

const NO_NODES: ReadonlySet<Node> = new Set()

/** How verifySession sends its statements. */
type SessionSend = Parameters<typeof verifySession>[0]
const OBSERVED = Symbol('observed')

/** A lane read's result, as Kysely's PostgresConnection hands a query's back. */
function laneResult<R>(result: LaneResult): QueryResult<R> {
  const { command, rowCount, rows } = result
  if (command === 'ROLLBACK' || command === 'COMMIT') return { rows: [{ command }] as R[] }
  const counted = command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE'
  return { numAffectedRows: counted ? BigInt(rowCount ?? 0) : undefined, rows: (rows ?? []) as R[] }
}

/** A node handed in ready-made whose connections are made read-only by a statement, once each. */
const needsSessionSql = (node: Node) => node.readOnly?.enforcement === 'connection' && !!node.readOnly.sessionSql

/** Receives the position of each commit of a session's write backend. */
export interface PositionRecorder {
  /** A commit's position, known as its result is handed back. */
  record(position: string): void
  /** An autocommit write is being sent; true when its position is worth reading in its own round trip. */
  started(): boolean
  /** That write failed, or its position was recorded. */
  ended(): void
  /** That write was acknowledged on `node` without its position, which is read later. */
  acknowledged(node: Node): void
}

export interface BackendDriverOptions {
  readonly role: 'read' | 'write'
  readonly router: Router
  /** Present on read backends: refuses writes before they are sent. */
  readonly guard?: ReadGuard
  readonly telemetry?: Telemetry
  /** True on a session's backends: reported in `route` events. */
  readonly session?: boolean
  /** Present on a session's write backend. */
  readonly recorder?: PositionRecorder
  /** Present on write backends: raised after each schema change. */
  readonly floor?: SchemaFloor
  /** How to read the position of a connection's last commit, where the driver did not report it. */
  readonly replication?: (connection: DatabaseConnection) => Promise<ReplicationStatements>
  /** Tells a lost connection from an SQL error, to report an unreachable primary as such. */
  readonly isConnectionError: (error: unknown) => boolean
  /** On read backends: bounds the reads that fall back to the primary (nodes for which `isFallback`). */
  readonly fallbackBudget?: { readonly isFallback: (node: Node) => boolean; readonly budget: FallbackBudget }
  /** Ends every node of the backends group: what `destroy()` on any of its Kysely instances does. */
  readonly destroyAll?: () => Promise<void>
  /** The query log and tracing; connections are observed only while it is active. */
  readonly observer?: { readonly observer: QueryObserver; readonly system: 'postgresql' | 'mysql' }
  /** On read backends: some replica's pool may pipeline reads (PgReadLane). */
  readonly lanes?: boolean
}

/**
 * The Kysely driver behind one backend. The write backend routes to the primary; read backends route
 * through the replica pool (or a session's rules) and guard every query.
 */
export class BackendDriver implements Driver {
  // Read connections set up and verified (one statement per query, read-only, a safe user).
  static readonly #verified = new WeakSet<DatabaseConnection>()

  readonly role: 'read' | 'write'
  readonly router: Router
  readonly guard: ReadGuard | undefined
  readonly telemetry: Telemetry | undefined
  readonly #recorder: PositionRecorder | undefined
  readonly #session: boolean
  readonly #floor: SchemaFloor | undefined
  readonly #replication: ((connection: DatabaseConnection) => Promise<ReplicationStatements>) | undefined
  readonly #isConnectionError: (error: unknown) => boolean
  readonly #fallbackBudget: BackendDriverOptions['fallbackBudget']
  readonly #observer: BackendDriverOptions['observer']
  readonly #destroyAll: (() => Promise<void>) | undefined
  /** Some replica's pool may pipeline reads: the backend's executor offers each read to readOnLane. */
  readonly lanes: boolean
  /** The route readOnLane chose for a read it did not send, for the acquireConnection that follows it. */
  #chosen: Route | Promise<Route> | undefined

  constructor(options: BackendDriverOptions) {
    this.lanes = options.lanes === true && options.guard !== undefined
    this.#isConnectionError = options.isConnectionError
    this.#fallbackBudget = options.fallbackBudget
    this.#observer = options.observer
    this.#destroyAll = options.destroyAll
    this.#floor = options.floor
    this.#replication = options.replication
    this.#session = options.session ?? false
    this.role = options.role
    this.router = options.router
    this.guard = options.guard
    this.telemetry = options.telemetry
    this.#recorder = options.recorder
  }

  async init(): Promise<void> {
    // Each node starts its own driver on first use, so that an unused replica costs nothing.
  }

  acquireConnection(): Promise<DatabaseConnection> {
    const chosen = this.#chosen ?? this.#choose()
    this.#chosen = undefined
    if (chosen === OBSERVED) return this.#acquire(new Set())
    if (chosen instanceof Unconfirmed) return this.#acquireUnconfirmed(chosen, new Set())
    if (!(chosen instanceof Promise) && !this.#fallbackBudget?.isFallback(chosen)) {
      return chosen.acquireAs<BackendConnection>(
        (inner) =>
          needsSessionSql(chosen) && !BackendDriver.#readOnlySessions.has(inner)
            ? this.#prepareThenHandOut(chosen, inner)
            : this.#handOut(inner, chosen, false),
        undefined,
        (error) => this.#acquireFailed(chosen, error, new Set()),
      )
    }
    return this.#acquire(new Set(), chosen)
  }

  #choose(): Route | Promise<Route> | typeof OBSERVED {
    // An observed query's routing is traced from the start (fallback reason, wait).
    if (this.#observer?.observer.active === true) return OBSERVED
    // Most acquisitions: a node chosen at once, no fallback turn to take, no session statement to run,
    // nothing observed. They take the driver's connection with no await of kysely-rw's own.
    return this.router.choose(NO_NODES)
  }

  /**
   * Sends a read on the lane of the replica routing chooses (PgReadLane), when the read is one statement
   * that leaves nothing in the session and the lane has a connection that can take it. Undefined otherwise,
   * and while reads are observed: the read then takes a connection of its own, as every read did before.
   */
  readOnLane<R>(query: CompiledQuery): Promise<QueryResult<R>> | undefined {
    if (this.#observer?.observer.active === true) return undefined
    // Throws the guard's refusal, as a connection's executeQuery would reject with it.
    const guarded = (this.guard as ReadGuard).check(query)
    if (guarded.leavesState) return undefined
    // Choosing has effects (a replica's turn, a fallback counted, a wait started): a read that does not take
    // the lane takes a connection on the route chosen here, in the acquireConnection that follows at once.
    const chosen = this.router.choose(NO_NODES)
    // A session's first read on a replica not known to have replayed its write takes a connection of its own:
    // pipelined, it reached the replica sooner, found it behind more often and waited (measured: no cheaper).
    const lane = chosen instanceof Promise || chosen instanceof Unconfirmed ? undefined : chosen.lane
    const sent = lane && this.#sendOnLane(lane, chosen as Node, guarded)
    if (!sent) {
      this.#chosen = chosen
      return undefined
    }
    const node = chosen as Node
    this.routed(node)
    this.telemetry?.read(node)
    if ((lane as PgReadLane).behind) this.telemetry?.pipelined()
    return sent.then(laneResult<R>, (error: unknown) => {
      if (this.router.failed(node, error)) return this.readElsewhere<R>(guarded, node, undefined)
      throw this.readFailure(node, error, 'read')
    })
  }

  #sendOnLane(lane: PgReadLane, node: Node, guarded: GuardedQuery): Promise<LaneResult> | undefined {
    if (this.#fallbackBudget?.isFallback(node)) return undefined
    if (!lane.verifier) lane.verifier = this.#laneVerifier(node)
    const wire = oneStatementQuery(guarded.query, node.driver)
    return lane.send(wire.sql, wire.parameters)
  }

  /** The checks a new read connection passes (verify), for a connection the lane takes from the pool. */
  #laneVerifier(node: Node): LaneVerifier {
    return (run) =>
      this.#checkSession(node, <R>(query: CompiledQuery) => run(query.sql, query.parameters).then(laneResult<R>))
  }

  /** The checks of verify, on `node`, sending each statement (one per query at the protocol level) with `send`. */
  #checkSession(node: Node, send: SessionSend): Promise<void> {
    const { readOnly } = node
    return verifySession((query) => send(oneStatementQuery(query, node.driver)), (this.guard as ReadGuard).lexing, {
      readOnly: readOnly?.enforcement === 'connection',
      replica: readOnly?.replica === true,
    })
  }

  /**
   * A connection to a replica whose first read checks its replay position (Unconfirmed). Observed, its
   * log entry and span name the replica until the read is routed again (ObservedConnection.attach).
   */
  #acquireUnconfirmed(route: Unconfirmed, exclude: Set<Node>, observedSince?: number): Promise<BackendConnection> {
    const { node } = route
    return node.acquireAs<BackendConnection>(
      (inner) => {
        // Told once the replica is confirmed, or by the acquisition that routes the read again.
        const connection =
          observedSince === undefined
            ? this.#handOut(inner, node, false, false)
            : this.#observed(inner, node, observedSince, undefined)
        connection.unconfirmed = route
        return connection
      },
      undefined,
      (error) => this.#acquireFailed(node, error, exclude),
    )
  }

  /**
   * The replica an Unconfirmed read went to had not replayed its target (or the read could not check):
   * the connection goes back to its pool before the read is routed again, so that no replica connection is
   * held while the read waits, and the read continues on the connection routing gives it.
   */
  async reroute(conn: BackendConnection, route: Unconfirmed, exclude: Set<Node>): Promise<void> {
    const { node } = conn
    await node.releaseConnection(conn.detach())
    // Observed, the read's log entry and span say where it went instead, and how long it waited there.
    const trace: RouteTrace | undefined = this.#observer?.observer.active === true ? {} : undefined
    conn.attach(await this.#acquire(exclude, route.otherwise(exclude, trace), trace))
  }

  async #prepareThenHandOut(node: Node, inner: DatabaseConnection): Promise<BackendConnection> {
    try {
      await this.#prepareSession(node, inner)
    } catch (error) {
      // A connection that could not be made read-only goes back to its pool, never to a caller.
      await node.releaseConnection(inner).catch(() => {})
      return this.#acquireFailed(node, error, new Set())
    }
    return this.#handOut(inner, node, false)
  }

  #handOut(inner: DatabaseConnection, node: Node, budgeted: boolean, announce = true): BackendConnection {
    if (announce) this.routed(node)
    const connection = new BackendConnection(inner, node, this)
    connection.budgeted = budgeted
    return connection
  }

  /** The `route` event of a connection taken on `node`: once per query or transaction, on the node that serves it. */
  routed(node: Node): void {
    if (this.telemetry?.listening) this.telemetry.emit({ type: 'route', node: node.name, session: this.#session })
  }

  /** A node failed to give a connection: another one is tried where the router allows it. */
  #acquireFailed(node: Node, error: unknown, exclude: Set<Node>): Promise<BackendConnection> {
    if (this.router.failed(node, error)) {
      exclude.add(node)
      return this.#acquire(exclude)
    }
    if (!this.#isConnectionError(error)) throw redactDriverError(error)
    if (this.role === 'write') throw new PrimaryUnavailableError(node.name, { cause: error })
    // A read with nowhere else to go: only the primary is never left for another node.
    throw new PrimaryUnavailableError(node.name, {
      cause: redactDriverError(error),
      advice: 'This read had nowhere else to go (no replica could serve it); it changed nothing: retry it later.',
    })
  }

  /** `first`: the router's choice already made for this acquisition, if any, traced in `firstTrace`. */
  async #acquire(
    exclude: Set<Node>,
    first?: Route | Promise<Route>,
    firstTrace?: RouteTrace,
  ): Promise<BackendConnection> {
    const observing = this.#observer?.observer.active === true
    const started = observing ? performance.now() : 0
    const trace: RouteTrace | undefined = first ? firstTrace : observing ? {} : undefined
    const chosen = first ?? this.router.choose(exclude, trace)
    const route = chosen instanceof Promise ? await chosen : chosen
    if (route instanceof Unconfirmed) return this.#acquireUnconfirmed(route, exclude, observing ? started : undefined)
    const node = route
    // No await where there is nothing to wait for: each one costs every query a turn of the microtask queue.
    const budgeted = this.#fallbackBudget?.isFallback(node) ? await this.#enterBudget(node) : false
    let inner: DatabaseConnection | undefined
    try {
      inner = await node.acquireConnection()
      if (needsSessionSql(node)) await this.#prepareSession(node, inner)
    } catch (error) {
      if (budgeted) this.#fallbackBudget?.budget.leave()
      // A connection that could not be made read-only goes back to its pool, never to a caller.
      if (inner) await node.releaseConnection(inner).catch(() => {})
      return this.#acquireFailed(node, error, exclude)
    }
    if (!observing) return this.#handOut(inner, node, budgeted)
    this.routed(node)
    const connection = this.#observed(inner, node, started, trace)
    connection.budgeted = budgeted
    return connection
  }

  #observed(inner: DatabaseConnection, node: Node, started: number, trace: RouteTrace | undefined): BackendConnection {
    const { observer, system } = this.#observer as NonNullable<BackendDriverOptions['observer']>
    return new ObservedConnection(inner, node, this, {
      observer,
      system,
      role: this.role,
      session: this.#session,
      fallback: this.role === 'read' && this.#fallbackBudget?.isFallback(node) === true,
      fallbackReason: trace?.fallbackReason,
      waitMs: trace?.waitMs,
      acquireMs: performance.now() - started,
    })
  }

  /** A turn in the primary's fallback budget, for a read that falls back to it; true when one was taken. */
  async #enterBudget(node: Node): Promise<boolean> {
    const fallback = this.#fallbackBudget
    if (!fallback?.isFallback(node)) return false
    const turn = fallback.budget.enter()
    if (turn) {
      try {
        await turn
      } catch (error) {
        this.telemetry?.fallbackRefused()
        throw error
      }
    }
    return true
  }

  // Connections whose session was made read-only by statement (drivers handed in ready-made).
  static readonly #readOnlySessions = new WeakSet<DatabaseConnection>()

  async #prepareSession(node: Node, inner: DatabaseConnection): Promise<void> {
    const sessionSql = node.readOnly?.enforcement === 'connection' ? node.readOnly.sessionSql : undefined
    if (sessionSql && !BackendDriver.#readOnlySessions.has(inner)) {
      await inner.executeQuery(CompiledQuery.raw(sessionSql))
      BackendDriver.#readOnlySessions.add(inner)
    }
  }

  /**
   * Once per read connection, before its first read (and before a read transaction's BEGIN): it runs one
   * statement per query, it is read-only when it should be, its user cannot bypass `read_only`. A
   * connection that fails serves nothing: every read on it throws the ConfigurationError.
   */
  /** True when `conn` needs no verification before its next read. */
  isVerified(conn: BackendConnection): boolean {
    return !conn.node.readOnly || !this.guard || BackendDriver.#verified.has(innerOf(conn))
  }

  async verify(conn: BackendConnection): Promise<void> {
    const inner = innerOf(conn)
    const { node } = conn
    const { readOnly } = node
    if (!readOnly || !this.guard || BackendDriver.#verified.has(inner)) return
    await this.#checkSession(node, (query) => inner.executeQuery(query))
    BackendDriver.#verified.add(inner)
  }

  /**
   * Resets a read connection whose read may have changed its session (MySQL), then makes it read-only
   * again and verifies it, as a new connection is.
   */
  async resetSession(conn: BackendConnection): Promise<void> {
    const inner = innerOf(conn)
    BackendDriver.#verified.delete(inner)
    await inner.executeQuery(RESET_QUERY)
    const restore = conn.node.readOnly?.reset?.restoreSql
    if (restore) await inner.executeQuery(CompiledQuery.raw(restore))
    await this.verify(conn)
  }

  /** Runs a read once more on another node after its connection failed. */
  readElsewhere<R>(query: GuardedQuery, failed: Node, options: ExecuteOptions): Promise<QueryResult<R>> {
    return this.#readOn<R>(query, new Set([failed]), options)
  }

  /** Runs a read on a connection routed away from `exclude`. */
  async #readOn<R>(query: GuardedQuery, exclude: Set<Node>, options: ExecuteOptions): Promise<QueryResult<R>> {
    const connection = await this.#acquire(exclude)
    try {
      this.telemetry?.read(connection.node)
      return await connection.executeRead<R>(query, options)
    } catch (error) {
      // A node that loses the read again is left as the first was: a read changes nothing, and the node it
      // was run again on may hang too (every replica frozen at once), found out only now.
      if (!this.router.failed(connection.node, error)) throw this.readFailure(connection.node, error, 'read')
    } finally {
      await this.releaseConnection(connection)
    }
    exclude.add(connection.node)
    return this.#readOn<R>(query, exclude, options)
  }

  /**
   * The error a read on `node` that is not run again elsewhere fails with. A lost connection, whose driver
   * error names no node and says nothing of what to do (pg: "Client has encountered a connection error and is
   * not queryable"), becomes kysely-rw's, naming the node, with the driver's error as its cause; the node is
   * reported failed, so that the read run again goes elsewhere.
   */
  readFailure(node: Node, error: unknown, what: 'read' | 'read transaction' | 'stream'): unknown {
    const translated = this.guard ? this.guard.translate(error) : error
    if (translated !== error || !this.#isConnectionError(error)) return redactDriverError(translated)
    this.router.failed(node, error)
    // With no replica, every read runs on the primary.
    const onPrimary = this.#fallbackBudget ? this.#fallbackBudget.isFallback(node) : true
    return readLostError(node.name, onPrimary, what, redactDriverError(error))
  }

  /**
   * A query on the write backend. A schema change raises the schema floor (at COMMIT when in a
   * transaction); on a session's backend an autocommit write also records the session's position.
   */
  executeWrite<R>(conn: BackendConnection, query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    this.telemetry?.write()
    // Most writes: no schema change, and no session position to record (or inside a transaction, whose
    // COMMIT records it). They are sent with no await of kysely-rw's own.
    if (
      (conn.inTransaction || !this.#recorder) &&
      !(this.#floor !== undefined && isSchemaChange(query.query, query.sql))
    ) {
      const lost = (error: unknown) => this.#lostWrite(conn, error, conn.inTransaction || classify(query.query).write)
      try {
        return innerOf(conn)
          .executeQuery<R>(query, options)
          .catch((error: unknown) => {
            throw lost(error)
          })
      } catch (error) {
        return Promise.reject(lost(error))
      }
    }
    return this.#executeTrackedWrite(conn, query, options)
  }

  async #executeTrackedWrite<R>(
    conn: BackendConnection,
    query: CompiledQuery,
    options: ExecuteOptions,
  ): Promise<QueryResult<R>> {
    try {
      const schemaChange = this.#floor !== undefined && isSchemaChange(query.query, query.sql)
      if (conn.inTransaction) {
        if (schemaChange) conn.schemaChanged = true
        return await innerOf(conn).executeQuery<R>(query, options)
      }
      const recorder = this.#recorder !== undefined && classify(query.query).write ? this.#recorder : undefined
      if (!schemaChange && !recorder) return await innerOf(conn).executeQuery<R>(query, options)
      const sink: PositionSink = { position: undefined, inline: recorder ? recorder.started() : true }
      let result: QueryResult<R>
      try {
        result = await capturePositions(sink, () => innerOf(conn).executeQuery<R>(query, options))
      } catch (error) {
        recorder?.ended()
        throw error
      }
      if (sink.position !== undefined || !this.#replication || !recorder || schemaChange) {
        recorder?.ended()
        // The floor holds every read of the process, and DDL is rare: its position is read in line.
        this.#committed(sink.position ?? (await this.#positionOf(conn)), schemaChange)
      } else {
        // A session's autocommit write whose driver did not report the position (PostgreSQL's extended
        // protocol cannot carry a second statement): the result goes back now; the session reads the
        // position later, once for a run of writes, and its next read waits for it (SessionWrites).
        recorder.acknowledged(conn.node)
      }
      return result
    } catch (error) {
      throw this.#lostWrite(conn, error, conn.inTransaction || classify(query.query).write)
    }
  }

  /**
   * The error a query on the primary fails with. A lost connection while a write (or anything inside a
   * transaction) was in flight leaves its outcome unknown; kysely-rw never retries it.
   */
  #lostWrite(conn: BackendConnection, error: unknown, mayHaveWritten: boolean): unknown {
    // A session the user's abort killed says nothing about the primary.
    if (conn.killed || !this.#isConnectionError(error)) return error
    this.router.failed(conn.node, error)
    return mayHaveWritten
      ? new WriteOutcomeUnknownError(conn.node.name, { cause: error })
      : new PrimaryUnavailableError(conn.node.name, { cause: error })
  }

  async #positionOf(conn: BackendConnection): Promise<string | undefined> {
    if (!this.#replication) return undefined
    return readPosition(innerOf(conn), this.#replication, 'sessionPosition')
  }

  #committed(position: string | undefined, schemaChange: boolean): void {
    if (!position) return
    if (schemaChange) this.#floor?.raise(position)
    this.#recorder?.record(position)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const conn = connection as BackendConnection
    if (this.role === 'read') {
      await conn.confirmElsewhere()
      // A read transaction is a consistent snapshot: repeatable read unless asked for another level.
      await conn.beginReadOnly(settings.isolationLevel ?? 'repeatable read').catch((error: unknown) => {
        throw conn.killed ? error : this.readFailure(conn.node, error, 'read transaction')
      })
    } else {
      // Before the first await: the scope must be entered while Kysely's consumer runs synchronously.
      enterWriteTransaction(conn)
      try {
        await conn.node.driver.beginTransaction(innerOf(conn), settings)
      } catch (error) {
        leaveWriteTransaction(conn)
        throw error
      }
    }
    conn.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    if (this.role === 'read') return this.#endRead(conn)
    try {
      if (!this.#recorder && !conn.schemaChanged) {
        await conn.node.driver.commitTransaction(innerOf(conn))
        return
      }
      const sink: PositionSink = { position: undefined, inline: true }
      await capturePositions(sink, () => conn.node.driver.commitTransaction(innerOf(conn)))
      this.#committed(sink.position ?? (await this.#positionOf(conn)), conn.schemaChanged)
    } catch (error) {
      throw this.role === 'write' ? this.#lostWrite(conn, error, true) : error
    } finally {
      this.#ended(conn)
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    if (this.role === 'read') return this.#endRead(conn)
    try {
      await conn.node.driver.rollbackTransaction(innerOf(conn))
    } catch (error) {
      // A lost connection took the transaction with it (the server rolls it back); the error worth
      // reporting is the one that ended the transaction, which Kysely rethrows unless this throws.
      if (!conn.killed && !this.#isConnectionError(error)) throw error
    } finally {
      this.#ended(conn)
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.savepoint?.(innerOf(conn), name, compile)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.rollbackToSavepoint?.(innerOf(conn), name, compile)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.releaseSavepoint?.(innerOf(conn), name, compile)
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    if (conn.budgeted) {
      conn.budgeted = false
      this.#fallbackBudget?.budget.leave()
    }
    // Given back when its read was routed again, which then failed: nothing is left to release or discard.
    if (conn.detached) return Promise.resolve()
    if (conn.killed) return this.#discard(conn)
    return conn.node.releaseConnection(innerOf(conn))
  }

  /**
   * A connection whose session an abort killed. The driver may not have seen its socket close yet, and a
   * pool would hand it to the next query, which then fails as if the server were lost. A statement on it
   * fails now instead, which makes the driver discard it (Kysely's pg driver marks a connection whose
   * ROLLBACK fails; pg and mysql2 pools drop a client whose connection failed).
   */
  async #discard(conn: BackendConnection): Promise<void> {
    const inner = innerOf(conn)
    await conn.node.driver.rollbackTransaction(inner).catch(() => {})
    await conn.node.releaseConnection(inner)
  }

  async destroy(): Promise<void> {
    // Nodes belong to the backends group: tools that call destroy() on the Kysely instance they were
    // given (kysely-ctl, test fixtures) end the whole group, as with plain Kysely.
    await this.#destroyAll?.()
  }

  // A read transaction has nothing to commit; ending it with ROLLBACK undoes what it did to the session.
  async #endRead(conn: BackendConnection): Promise<void> {
    try {
      await conn.endReadOnly()
    } catch (error) {
      // A session an abort killed, or a connection lost, took its read-only transaction with it: nothing was
      // left to undo, and the error worth reporting (if any) is the one that ended it.
      if (!conn.killed && !this.#isConnectionError(error)) throw error
    } finally {
      this.#ended(conn)
    }
  }

  #ended(conn: BackendConnection): void {
    conn.inTransaction = false
    conn.schemaChanged = false
    if (this.role === 'write') leaveWriteTransaction(conn)
  }
}

import {
  CompiledQuery,
  type ControlConnectionProvider,
  type DatabaseConnection,
  type IsolationLevel,
  type QueryResult,
} from 'kysely'
import { checkingReplay, type ReplayCheck } from '../consistency/replay-check.js'
import { redactDriverError, WriteOnReadBackendError } from '../errors.js'
import { oneStatementQuery } from '../guard/one-statement.js'
import type { GuardedQuery } from '../guard/read-guard.js'
import { SESSION_END, SESSION_RESET } from '../guard/session-rules.js'
import type { BackendDriver } from './backend-driver.js'
import type { Node } from './node.js'
import type { Unconfirmed } from './router.js'
import { untilCut } from './until-cut.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/** The driver's own connection behind `connection`; for this package's drivers only. */
export function innerOf(connection: BackendConnection): DatabaseConnection {
  return BackendConnection.innerOf(connection)
}

export class BackendConnection implements DatabaseConnection {
  /** Set by the backend driver between BEGIN and COMMIT/ROLLBACK. */
  inTransaction = false
  /** Set when the open transaction changed the schema: its COMMIT raises the schema floor. */
  schemaChanged = false
  /** Set when a read of the open read transaction may have changed the session. */
  sessionTouched = false
  /** Set while the connection holds a turn of the primary's fallback budget. */
  budgeted = false
  /** Set until the first read on a replica not known to have replayed that read's target (Unconfirmed). */
  unconfirmed: Unconfirmed | undefined = undefined
  /** Set once the connection was given back to route its read again, until another one is attached. */
  detached = false

  /** Set once the user aborted the query in flight: its failure then says nothing about the node. */
  #aborted = false
  /** Set once the user's abort ended this connection's session: it must never serve again. */
  killed = false
  /** The escape watch's scope of the write transaction open on this connection (transaction-scope.ts). */
  writeScope: object | undefined = undefined

  // The unguarded connection: a private field, so that no caller holding a read backend's connection
  // can reach past the guard. It and `node` change only when an Unconfirmed read is routed again.
  #inner: DatabaseConnection

  constructor(
    inner: DatabaseConnection,
    public node: Node,
    private readonly driver: BackendDriver,
  ) {
    this.#inner = inner
  }

  /** Gives up the driver's connection, to be released by the caller; queries fail until one is attached. */
  detach(): DatabaseConnection {
    const inner = this.#inner
    this.detached = true
    this.#inner = DETACHED
    return inner
  }

  /** Continues on the connection `fresh` was handed out with (to another node, maybe), after `detach()`. */
  attach(fresh: BackendConnection): void {
    this.#inner = fresh.#inner
    this.node = fresh.node
    this.budgeted = fresh.budgeted
    this.detached = false
  }

  /** An Unconfirmed connection about to be used other than for one read that can check: routed again now. */
  async confirmElsewhere(): Promise<void> {
    const route = this.unconfirmed
    if (!route) return
    this.unconfirmed = undefined
    await this.driver.reroute(this, route, new Set())
  }

  /** The driver's own connection behind `connection`; for this package's drivers only. */
  static innerOf(connection: BackendConnection): DatabaseConnection {
    return connection.#inner
  }

  // Most reads take the first branch: a verified connection, no transaction to open, nothing to
  // reset; they are sent with no await of kysely-rw's own in between, each of which would cost every
  // query a turn of the microtask queue.
  executeQuery<R>(query: CompiledQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    // Only a query that can be aborted can have its session killed under it.
    if (options?.signal) return this.#untilKilled(this.#execute<R>(query, options))
    return this.#execute<R>(query, options)
  }

  #execute<R>(query: CompiledQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    const { guard } = this.driver
    if (!guard) return this.driver.executeWrite<R>(this, query, options)
    let guarded: GuardedQuery
    try {
      guarded = guard.check(query)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.unconfirmed ? this.#checkedRead<R>(guarded, options) : this.#read<R>(guarded, options)
  }

  #read<R>(guarded: GuardedQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    this.driver.telemetry?.read(this.node)
    const sending = this.#sendsAtOnce(guarded)
      ? this.#inner.executeQuery<R>(oneStatementQuery(guarded.query, this.node.driver), options)
      : this.executeRead<R>(guarded, options)
    return sending.catch((error: unknown) => this.#readFailed<R>(error, guarded, options))
  }

  /** A read that is one statement on a verified session, with nothing to do before or after it. */
  #sendsAtOnce(guarded: GuardedQuery): boolean {
    return !guarded.leavesState && !this.#needsTransaction(guarded) && this.driver.isVerified(this)
  }

  /**
   * The first read on an Unconfirmed replica: sent with a check of the replica's replay position in front
   * of it, in the same round trip, and trusted only when the check confirms the replica replayed the
   * read's target. Otherwise, whatever the read returned or failed with (a column a lagging replica lacks),
   * it is routed again and sent where routing says.
   */
  async #checkedRead<R>(guarded: GuardedQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    const route = this.unconfirmed as Unconfirmed
    this.unconfirmed = undefined
    const exclude = new Set<Node>()
    // A read that needs its session verified or wrapped first would take the check out of its round trip.
    if (this.#sendsAtOnce(guarded)) {
      const check: ReplayCheck = { replayed: undefined }
      const wire = oneStatementQuery(guarded.query, this.node.driver)
      const [read] = await Promise.allSettled([checkingReplay(check, () => this.#inner.executeQuery<R>(wire, options))])
      const confirmed = route.confirmed(check.replayed)
      this.driver.telemetry?.replayChecked(confirmed)
      if (confirmed || (this.#aborted && read.status === 'rejected')) {
        this.driver.routed(this.node)
        this.driver.telemetry?.read(this.node)
        return read.status === 'fulfilled' ? read.value : this.#readFailed<R>(read.reason, guarded, options)
      }
      if (read.status === 'rejected' && this.driver.router.failed(this.node, read.reason)) exclude.add(this.node)
    }
    await this.driver.reroute(this, route, exclude)
    return this.#read<R>(guarded, options)
  }

  #readFailed<R>(error: unknown, guarded: GuardedQuery, options: ExecuteOptions): Promise<QueryResult<R>> {
    if (this.#aborted) throw redactDriverError(error)
    if (!this.inTransaction && this.driver.router.failed(this.node, error)) {
      // The query may have run, but a read has no effect: run it once more elsewhere.
      return this.driver.readElsewhere<R>(guarded, this.node, options)
    }
    // A read transaction stays on its connection: a lost one ends it.
    throw this.driver.readFailure(this.node, error, 'read transaction')
  }

  /** Sends a read the guard approved, in a read-only transaction where the node or the read needs one. */
  async executeRead<R>(guarded: GuardedQuery, options?: ExecuteOptions): Promise<QueryResult<R>> {
    const inner = this.#inner
    await this.driver.verify(this)
    const wire = oneStatementQuery(guarded.query, this.node.driver)
    return this.#asRead(guarded, () => inner.executeQuery<R>(wire, options))
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize: number,
    options?: ExecuteOptions,
  ): AsyncIterableIterator<QueryResult<R>> {
    const { guard } = this.driver
    if (!guard) {
      yield* innerOf(this).streamQuery<R>(query, chunkSize, options)
      return
    }
    // The same path as executeQuery: guard, read-only transaction, stats. Streams are not retried.
    const guarded = guard.check(query)
    await this.confirmElsewhere()
    const inner = innerOf(this)
    this.driver.telemetry?.read(this.node)
    this.#refuseUnresettable(guarded)
    const wrapped = this.#needsTransaction(guarded)
    await this.driver.verify(this)
    let failed = false
    try {
      if (wrapped) await this.beginReadOnly(undefined)
      yield* untilCut(inner.streamQuery<R>(guarded.query, chunkSize, options), this.node)
    } catch (error) {
      failed = true
      throw this.#aborted ? redactDriverError(error) : this.driver.readFailure(this.node, error, 'stream')
    } finally {
      const ending = wrapped
        ? this.#endRead(guarded)
        : this.#resetsAfter(guarded)
          ? this.driver.resetSession(this)
          : undefined
      // After a failure, the connection may be gone: ending it would fail too, and hide why.
      if (failed) await ending?.catch(() => {})
      else await ending
    }
  }

  /**
   * Kysely's `inflightQueryAbortStrategy: 'cancel query'`: cancels the query in flight on this
   * connection's server. Absent when the node's dialect cannot cancel, so that Kysely says so before
   * running the query.
   */
  get cancelQuery(): ((provider: ControlConnectionProvider) => Promise<void>) | undefined {
    return innerOf(this).cancelQuery ? this.#cancelQuery : undefined
  }

  /**
   * Kysely's `inflightQueryAbortStrategy: 'kill session'`: ends the session the query runs in, and with
   * it the connection, which the pool replaces. Absent when the node's dialect cannot.
   */
  get killSession(): ((provider: ControlConnectionProvider) => Promise<void>) | undefined {
    return innerOf(this).killSession ? this.#killSession : undefined
  }

  /** Lets the inner connection learn its server-side session id before a cancellable query starts. */
  get collectSessionInfo(): (() => Promise<void>) | undefined {
    return innerOf(this).collectSessionInfo ? this.#collectSessionInfo : undefined
  }

  // Kysely's control connections come from the backend's own provider, which would route the cancel
  // through the guard and the replica pool to any node (a KILL on the wrong replica could end another
  // client's session); the cancel must reach the server that runs the query.
  #control(): ControlConnectionProvider {
    return (consumer) => this.node.withConnection(consumer)
  }

  async #cancelQuery(): Promise<void> {
    this.#aborted = true
    await innerOf(this).cancelQuery?.(this.#control())
  }

  async #killSession(): Promise<void> {
    this.#aborted = true
    this.killed = true
    try {
      await innerOf(this).killSession?.(this.#control())
    } finally {
      this.#onKilled?.()
    }
  }

  /** Set while a query that can be aborted runs: ends it once its session was killed. */
  #onKilled: (() => void) | undefined

  /**
   * `running`, or a rejection once an abort killed the session under it: mysql2 never settles a query
   * whose connection was destroyed, and Kysely releases the connection (and with it the fallback budget's
   * turn, the log entry, the span) only once the query settles.
   */
  #untilKilled<T>(running: Promise<T>): Promise<T> {
    const killed = new Promise<never>((_, reject) => {
      this.#onKilled = () =>
        reject(Object.assign(new Error('The session of this query was killed on abort'), { code: 'ECONNRESET' }))
    })
    return Promise.race([running, killed]).finally(() => {
      this.#onKilled = undefined
    })
  }

  async #collectSessionInfo(): Promise<void> {
    // The session whose id is collected must be the one the query runs on.
    await this.confirmElsewhere()
    await innerOf(this).collectSessionInfo?.()
  }

  /** Begins a read-only transaction on the node, applying the session rules of its database. */
  async beginReadOnly(isolationLevel: IsolationLevel | undefined): Promise<void> {
    const inner = innerOf(this)
    await this.driver.verify(this)
    await this.node.driver.beginTransaction(inner, { accessMode: 'read only', isolationLevel })
    const sql = this.node.readOnly?.transactionSql
    if (sql) await inner.executeQuery(CompiledQuery.raw(sql))
  }

  /**
   * Ends a read transaction. A read-only transaction has nothing to commit, and ROLLBACK undoes what
   * its reads may have changed in the session (PostgreSQL); MySQL keeps session changes across it, so a
   * read there that may have changed the session resets the connection.
   */
  async endReadOnly(): Promise<void> {
    const inner = innerOf(this)
    const touched = this.sessionTouched
    this.sessionTouched = false
    await this.node.driver.rollbackTransaction(inner)
    if (touched && SESSION_END[this.#lexing] === 'reset') await this.driver.resetSession(this)
  }

  get #lexing() {
    return this.driver.guard?.lexing ?? 'postgres'
  }

  // A MySQL pool handed in ready-made cannot be reset by kysely-rw: a read that may change the session
  // would leave the change on a pooled connection, so it is refused rather than sent.
  #refuseUnresettable(guarded: GuardedQuery): void {
    if (guarded.leavesState && SESSION_END[this.#lexing] === 'reset' && !this.node.readOnly?.reset) {
      const detail = 'A call of a function that may change the session (not a known built-in)'
      throw new WriteOnReadBackendError('side-effect function', detail, {
        message:
          `${detail}, on a MySQL read pool that kysely-rw did not create and so cannot reset afterwards ` +
          '(a MysqlDialect or mysql2 pool handed in, or a Kysely instance given to fromKysely). Run the query ' +
          'on db.write, or give createBackends a connection string or mysql2 pool options for the node, so ' +
          'that kysely-rw creates its pool.',
      })
    }
  }

  /** A read outside a transaction that may have changed a MySQL session: the connection is reset after it. */
  #resetsAfter(guarded: GuardedQuery): boolean {
    return guarded.leavesState && !this.inTransaction && SESSION_END[this.#lexing] === 'reset'
  }

  #needsTransaction(guarded: GuardedQuery): boolean {
    if (this.inTransaction) return false
    return (
      this.node.readOnly?.enforcement === 'transaction' ||
      (guarded.leavesState && SESSION_END[this.#lexing] === 'rollback')
    )
  }

  async #asRead<T>(guarded: GuardedQuery, run: () => Promise<T>): Promise<T> {
    this.#refuseUnresettable(guarded)
    if (guarded.leavesState && this.inTransaction) this.sessionTouched = true
    if (!this.#needsTransaction(guarded)) {
      try {
        return await run()
      } finally {
        if (this.#resetsAfter(guarded)) await this.driver.resetSession(this)
      }
    }
    await this.beginReadOnly(undefined)
    let result: T
    try {
      result = await run()
    } catch (error) {
      await this.#endRead(guarded).catch(() => {})
      throw error
    }
    await this.#endRead(guarded)
    return result
  }

  async #endRead(guarded: GuardedQuery): Promise<void> {
    if (guarded.leavesState) this.sessionTouched = true
    await this.endReadOnly()
  }
}

const detachedError = () =>
  new Error('This connection was given back to route its read again, and no other connection was attached')

// Stands in for the driver's connection while none is attached: it fails every use.
const DETACHED: DatabaseConnection = {
  executeQuery: () => Promise.reject(detachedError()),
  streamQuery: () => {
    throw detachedError()
  },
}

/** The unreachable-by-name reset query, for the backend driver. */
export const RESET_QUERY: CompiledQuery = CompiledQuery.raw(SESSION_RESET)

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
import type { ReplicationStatements } from '../dialects/dialect.js'
import { PrimaryUnavailableError, WriteOutcomeUnknownError } from '../errors.js'
import type { Telemetry } from '../events.js'
import { classify, isSchemaChange } from '../guard/classify.js'
import type { ReadGuard } from '../guard/read-guard.js'
import { markWriteTransaction } from '../guard/transaction-scope.js'
import type { QueryObserver } from '../observability/query-observer.js'
import type { FallbackBudget } from '../routing/fallback-budget.js'
import { BackendConnection } from './backend-connection.js'
import type { Node } from './node.js'
import { ObservedConnection } from './observed-connection.js'
import type { Router } from './router.js'

type ExecuteOptions = Parameters<DatabaseConnection['executeQuery']>[1]

/** Receives the position of each commit of a session's write backend. */
export type PositionRecorder = (position: string) => void

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
}

/**
 * The Kysely driver behind one backend. The write backend routes to the primary; read backends route
 * through the replica pool (or a session's rules) and guard every query.
 */
export class BackendDriver implements Driver {
  // Connections whose session was made read-only by statement (drivers handed in ready-made).
  static readonly #readOnlySessions = new WeakSet<DatabaseConnection>()

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

  constructor(options: BackendDriverOptions) {
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

  async acquireConnection(): Promise<DatabaseConnection> {
    return this.#acquire(new Set())
  }

  async #acquire(exclude: Set<Node>): Promise<BackendConnection> {
    const observing = this.#observer?.observer.active === true
    const started = observing ? performance.now() : 0
    for (;;) {
      const chosen = this.router.choose(exclude)
      const node = chosen instanceof Promise ? await chosen : chosen
      const budgeted = await this.#enterBudget(node)
      let inner: DatabaseConnection | undefined
      try {
        inner = await node.acquireConnection()
        await this.#prepareSession(node, inner)
      } catch (error) {
        if (budgeted) this.#fallbackBudget?.budget.leave()
        // A connection that could not be made read-only goes back to its pool, never to a caller.
        if (inner) await node.releaseConnection(inner).catch(() => {})
        if (this.router.failed(node, error)) {
          exclude.add(node)
          continue
        }
        throw this.role === 'write' && this.#isConnectionError(error)
          ? new PrimaryUnavailableError(node.name, { cause: error })
          : error
      }
      if (this.telemetry?.listening) this.telemetry.emit({ type: 'route', node: node.name, session: this.#session })
      const connection = observing ? this.#observed(inner, node, started) : new BackendConnection(inner, node, this)
      connection.budgeted = budgeted
      return connection
    }
  }

  #observed(inner: DatabaseConnection, node: Node, started: number): BackendConnection {
    const { observer, system } = this.#observer as NonNullable<BackendDriverOptions['observer']>
    return new ObservedConnection(inner, node, this, {
      observer,
      system,
      role: this.role,
      session: this.#session,
      fallback: this.role === 'read' && this.#fallbackBudget?.isFallback(node) === true,
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

  async #prepareSession(node: Node, inner: DatabaseConnection): Promise<void> {
    const sessionSql = node.readOnly?.enforcement === 'connection' ? node.readOnly.sessionSql : undefined
    if (sessionSql && !BackendDriver.#readOnlySessions.has(inner)) {
      await inner.executeQuery(CompiledQuery.raw(sessionSql))
      BackendDriver.#readOnlySessions.add(inner)
    }
  }

  /** Runs a read once more on another node after its connection failed. */
  async readElsewhere<R>(query: CompiledQuery, failed: Node, options: ExecuteOptions): Promise<QueryResult<R>> {
    const connection = await this.#acquire(new Set([failed]))
    try {
      this.telemetry?.read(connection.node.name)
      return await connection.executeRead<R>(query, options)
    } catch (error) {
      throw this.guard ? this.guard.translate(error) : error
    } finally {
      await this.releaseConnection(connection)
    }
  }

  /**
   * A query on the write backend. A schema change raises the schema floor (at COMMIT when in a
   * transaction); on a session's backend an autocommit write also records the session's position.
   */
  async executeWrite<R>(
    conn: BackendConnection,
    query: CompiledQuery,
    options: ExecuteOptions,
  ): Promise<QueryResult<R>> {
    this.telemetry?.write()
    try {
      const schemaChange = this.#floor !== undefined && isSchemaChange(query.query, query.sql)
      if (conn.inTransaction) {
        if (schemaChange) conn.schemaChanged = true
        return await conn.inner.executeQuery<R>(query, options)
      }
      const forSession = this.#recorder !== undefined && classify(query.query).write
      if (!schemaChange && !forSession) return await conn.inner.executeQuery<R>(query, options)
      const sink: PositionSink = { position: undefined }
      const result = await capturePositions(sink, () => conn.inner.executeQuery<R>(query, options))
      this.#committed(await this.#positionOf(conn, sink), schemaChange)
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
    if (!this.#isConnectionError(error)) return error
    this.router.failed(conn.node, error)
    return mayHaveWritten
      ? new WriteOutcomeUnknownError(conn.node.name, { cause: error })
      : new PrimaryUnavailableError(conn.node.name, { cause: error })
  }

  async #positionOf(conn: BackendConnection, sink: PositionSink): Promise<string | undefined> {
    if (sink.position !== undefined || !this.#replication) return sink.position
    const { sessionPosition } = await this.#replication(conn.inner)
    const { rows } = await conn.inner.executeQuery<{ pos: string | null }>(CompiledQuery.raw(sessionPosition))
    return rows[0]?.pos ?? undefined
  }

  #committed(position: string | undefined, schemaChange: boolean): void {
    if (!position) return
    if (schemaChange) this.#floor?.raise(position)
    this.#recorder?.(position)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const conn = connection as BackendConnection
    if (this.role === 'read') {
      // A read transaction is a consistent snapshot: repeatable read unless asked for another level.
      await conn.beginReadOnly(settings.isolationLevel ?? 'repeatable read')
    } else {
      await conn.node.driver.beginTransaction(conn.inner, settings)
      markWriteTransaction(connection, true)
    }
    conn.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    try {
      if (!this.#recorder && !conn.schemaChanged) {
        await conn.node.driver.commitTransaction(conn.inner)
        return
      }
      const sink: PositionSink = { position: undefined }
      await capturePositions(sink, () => conn.node.driver.commitTransaction(conn.inner))
      this.#committed(await this.#positionOf(conn, sink), conn.schemaChanged)
    } catch (error) {
      throw this.role === 'write' ? this.#lostWrite(conn, error, true) : error
    } finally {
      this.#ended(conn)
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    try {
      await conn.node.driver.rollbackTransaction(conn.inner)
    } catch (error) {
      // A lost connection took the transaction with it (the server rolls it back); the error worth
      // reporting is the one that ended the transaction, which Kysely rethrows unless this throws.
      if (!this.#isConnectionError(error)) throw error
    } finally {
      this.#ended(conn)
    }
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.savepoint?.(conn.inner, name, compile)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.rollbackToSavepoint?.(conn.inner, name, compile)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    const conn = connection as BackendConnection
    await conn.node.driver.releaseSavepoint?.(conn.inner, name, compile)
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const conn = connection as BackendConnection
    if (conn.budgeted) {
      conn.budgeted = false
      this.#fallbackBudget?.budget.leave()
    }
    await conn.node.releaseConnection(conn.inner)
  }

  async destroy(): Promise<void> {
    // Nodes belong to the backends group: tools that call destroy() on the Kysely instance they were
    // given (kysely-ctl, test fixtures) end the whole group, as with plain Kysely.
    await this.#destroyAll?.()
  }

  #ended(conn: BackendConnection): void {
    conn.inTransaction = false
    conn.schemaChanged = false
    if (this.role === 'write') markWriteTransaction(conn, false)
  }
}

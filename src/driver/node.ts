import { type DatabaseConnection, type Dialect, type Driver, MysqlDialect, PostgresDialect } from 'kysely'
import type { LaneSlot, PgReadLane } from '../dialects/pg-read-lane.js'
import type { SocketRegistry } from '../dialects/sockets.js'
import { BackendsDestroyedError } from '../errors.js'
import { type PendingAcquire, PendingAcquisitions } from './pending-acquisitions.js'

/**
 * How a read node's sessions are made read-only in the database:
 * - `'connection'`: once per connection (a startup parameter, or a statement when the connection is
 *   first seen); no cost per query.
 * - `'transaction'`: every read outside a transaction runs in its own read-only transaction; for
 *   poolers in transaction mode (PgBouncer) and for a driver shared with the write backend.
 */
export type ReadOnlyEnforcement = 'connection' | 'transaction'

/** How a node makes its sessions read-only; absent on the write node. */
export interface ReadOnlySession {
  readonly enforcement: ReadOnlyEnforcement
  /** Run once on each connection first seen, where the connection did not start read-only. */
  readonly sessionSql?: string
  /** Run after BEGIN on drivers that ignore Kysely's access mode setting (PGlite). */
  readonly transactionSql?: string
  /** A replica: its user is checked not to bypass the server's read_only. */
  readonly replica?: boolean
  /**
   * Present when the pool answers kysely-rw's session reset (MySQL pools kysely-rw creates); the
   * statement that makes the session read-only again afterwards, in 'connection' mode.
   */
  readonly reset?: { readonly restoreSql?: string }
}

/** How long a node's operations may take before they give up. */
export interface NodeDeadlines {
  /** Waiting for a pool connection (including connecting). */
  readonly acquireTimeoutMs: number
  /** Ending the pool in `destroy()`; past it, its sockets are cut. */
  readonly destroyTimeoutMs: number
}

const identity = <T>(value: T): T => value

// How often expired acquisitions are failed: their deadline is kept to within this.
const SWEEP_MS = 50

/** Whether a shared driver's connection is handed out now, and who waits for it. */
interface ConnectionUse {
  busy: boolean
  waiters: Array<() => void> | undefined
}

/** A connection could not be had from a node's pool in time: the node may be healthy but saturated. */
export class AcquireTimeoutError extends Error {
  override readonly name = 'AcquireTimeoutError'
  readonly code = 'ETIMEDOUT'
  constructor(node: string, ms: number) {
    super(`No connection to ${node} within ${ms} ms`)
  }
}

/**
 * One database server as seen by one backend: its driver, started on first use, ended once. A
 * connection is handed to one user at a time, also when the driver hands the same one out again
 * (PGlite's single connection, shared by the write backend and the primary's read view).
 *
 * A node declared down is cut off: connections being acquired give up, and (for pools kysely-rw
 * created) every socket is destroyed, so that nothing waits on a server that hangs.
 */
export class Node {
  readonly #driver: Driver
  readonly #owner: Node | undefined
  /** Connections of a shared driver handed to a user now, and who waits for each. */
  // One record per connection, made once: a Set that each use adds to and deletes from would cost every
  // query on a shared driver about 0.1 µs of hash-table churn.
  readonly #uses = new WeakMap<DatabaseConnection, ConnectionUse>()
  /**
   * Set once another node borrows this one's driver, unless it is a pool's: only then can a connection be
   * handed out twice.
   */
  #shared = false
  #init: Promise<void> | undefined
  #started = false
  #destroyed: Promise<void> | undefined
  /** Acquisitions under way, each with its deadline: a cut or destroy fails them all at once. */
  readonly #pending = new PendingAcquisitions()
  /** Sweeps expired acquisitions while any is pending: one timer per node, not one per acquisition. */
  #sweeper: NodeJS.Timeout | undefined
  #sweptAt = 0
  /** Reads run on this node, for `stats().readsByNode` (events.ts counts them here). */
  reads = 0
  /** Told of the node's next cut: work that holds a connection and would not otherwise see it go (streams). */
  readonly #cutListeners = new Set<(reason: Error) => void>()

  constructor(
    /** Host, port and database, or a role name; never credentials. */
    readonly name: string,
    readonly dialect: Dialect,
    readonly readOnly: ReadOnlySession | undefined,
    readonly deadlines: NodeDeadlines,
    /** The sockets of a pool kysely-rw created; absent for a ready-made dialect. */
    readonly sockets?: SocketRegistry,
    /** A node whose driver this one borrows (a read view of the primary on a shared driver). */
    owner?: Node,
    /** A replica whose reads can check its replay position in their own round trip (ReplayCheck). */
    readonly checksReplay = false,
    /** A replica pool's lane for pipelined reads, set once the pool exists (pg 8.23+). */
    readonly laneSlot?: LaneSlot,
  ) {
    this.#owner = owner
    this.#driver = owner ? owner.driver : dialect.createDriver()
    // Kysely's pool dialects never hand one connection to two users at once; others may (PGlite has one).
    if (owner && !(dialect instanceof PostgresDialect || dialect instanceof MysqlDialect)) owner.#shared = true
  }

  get driver(): Driver {
    return this.#driver
  }

  /** The lane that pipelines reads while the pool is exhausted; undefined until the pool exists, or where none. */
  get lane(): PgReadLane | undefined {
    return this.#destroyed ? undefined : this.laneSlot?.lane
  }

  /** True when queries on this node can be abandoned by cutting sockets (a pool kysely-rw created). */
  get cuttable(): boolean {
    return (this.#owner ?? this).sockets !== undefined
  }

  /**
   * A connection, within `timeoutMs` (default: the node's acquire deadline) and before the node is cut
   * off; a connection that arrives after either is released at once.
   */
  acquireConnection(timeoutMs = this.deadlines.acquireTimeoutMs): Promise<DatabaseConnection> {
    return this.acquireAs(identity, timeoutMs)
  }

  /**
   * {@link acquireConnection}, handing the connection to `handOut` as it arrives in time, or the
   * failure (the pool's, the deadline's, a cut's) to `recover`: one promise for all of it, where a
   * `.then` on the result would cost every query another.
   */
  acquireAs<T>(
    handOut: (connection: DatabaseConnection) => T | Promise<T>,
    timeoutMs?: number,
    recover?: (error: unknown) => T | Promise<T>,
  ): Promise<T> {
    const ms = timeoutMs ?? this.deadlines.acquireTimeoutMs
    if (this.#owner) return this.#owner.acquireAs(handOut, ms, recover)
    if (this.#destroyed) {
      const destroyed = new BackendsDestroyedError(this.name)
      return recover ? Promise.resolve().then(() => recover(destroyed)) : Promise.reject(destroyed)
    }
    // Started: no await on the settled init, which would cost every acquisition a microtask turn.
    if (this.#started) return this.#bounded(this.#acquire(), ms, handOut, recover)
    this.#init ??= this.#driver.init().then(() => {
      this.#started = true
    })
    return this.#init.then(
      () => this.#bounded(this.#acquire(), ms, handOut, recover),
      (error: unknown) => {
        if (!recover) throw error
        return recover(error)
      },
    )
  }

  #bounded<T>(
    acquiring: Promise<DatabaseConnection>,
    timeoutMs: number,
    handOut: (connection: DatabaseConnection) => T | Promise<T>,
    recover: ((error: unknown) => T | Promise<T>) | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = recover
        ? (error: unknown) => {
            try {
              resolve(recover(error))
            } catch (thrown) {
              reject(thrown)
            }
          }
        : reject
      // While the sweeper runs, its last reading of the clock (at most SWEEP_MS old) dates the
      // acquisition: most acquisitions then never read the clock themselves.
      const now = this.#sweeper ? this.#sweptAt : Date.now()
      const entry: PendingAcquire = {
        deadline: now + timeoutMs,
        timeoutMs,
        reject: fail,
        prev: undefined,
        next: undefined,
        listed: false,
      }
      this.#pending.add(entry)
      this.#sweep()
      acquiring.then(
        (connection) => {
          // Too late: the caller gave up, but the pool handed the connection out; give it back.
          if (!this.#pending.delete(entry)) return void this.releaseConnection(connection).catch(() => {})
          try {
            resolve(handOut(connection))
          } catch (error) {
            void this.releaseConnection(connection).catch(() => {})
            reject(error)
          }
        },
        (error: unknown) => {
          if (this.#pending.delete(entry)) fail(error)
        },
      )
    })
  }

  #sweep(): void {
    if (this.#sweeper || this.#pending.size === 0) return
    this.#sweptAt = Date.now()
    this.#sweeper = setInterval(() => {
      const now = Date.now()
      this.#sweptAt = now
      for (const entry of this.#pending.expired(now)) {
        entry.reject(new AcquireTimeoutError(this.name, entry.timeoutMs))
      }
      if (this.#pending.size === 0) {
        clearInterval(this.#sweeper)
        this.#sweeper = undefined
      }
    }, SWEEP_MS)
    // A waiting acquisition keeps the process alive through its own promise chain, not this timer.
    this.#sweeper.unref()
  }

  /** Fails every acquisition under way with `reason`. */
  #failPending(reason: Error): void {
    for (const entry of this.#pending.drain()) entry.reject(reason)
  }

  #acquire(): Promise<DatabaseConnection> {
    return this.#shared ? this.#acquireShared() : this.#driver.acquireConnection()
  }

  #acquireShared(): Promise<DatabaseConnection> {
    return this.#driver.acquireConnection().then((connection) => {
      let use = this.#uses.get(connection)
      if (!use) {
        use = { busy: false, waiters: undefined }
        this.#uses.set(connection, use)
      }
      if (!use.busy) {
        use.busy = true
        return connection
      }
      // Handed out again while in use (one connection behind both backends): wait for its release.
      const { waiters } = use
      return new Promise<void>((resolve) => {
        if (waiters) waiters.push(resolve)
        else use.waiters = [resolve]
      }).then(() => this.#acquireShared())
    })
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (this.#owner) return this.#owner.releaseConnection(connection)
    return this.#shared ? this.#releaseShared(connection) : this.#driver.releaseConnection(connection)
  }

  #releaseShared(connection: DatabaseConnection): Promise<void> {
    const use = this.#uses.get(connection)
    const released = this.#driver.releaseConnection(connection)
    if (!use) return released
    use.busy = false
    const { waiters } = use
    if (!waiters) return released
    use.waiters = undefined
    return released.finally(() => {
      for (const wake of waiters) wake()
    })
  }

  /** Runs `run` on a connection of this node, outside any backend (health checks, positions). */
  async withConnection<T>(run: (connection: DatabaseConnection) => Promise<T>, timeoutMs?: number): Promise<T> {
    const connection = await this.acquireConnection(timeoutMs)
    try {
      return await run(connection)
    } finally {
      await this.releaseConnection(connection)
    }
  }

  /**
   * Cuts the node off: acquisitions under way fail, and every socket of its pool is destroyed so that
   * queries in flight fail with a connection error. Returns how many sockets were cut.
   */
  cut(reason: Error): number {
    const owner = this.#owner ?? this
    owner.#failPending(reason)
    const cut = owner.sockets?.cutAll() ?? 0
    for (const listener of [...owner.#cutListeners]) listener(reason)
    return cut
  }

  /**
   * Calls `listener` with the reason when the node is cut off; returns what stops that. A driver may leave a
   * read waiting on a cut socket forever (mysql2's row stream, pg-cursor's close): its holder ends it then.
   */
  onCut(listener: (reason: Error) => void): () => void {
    const owner = this.#owner ?? this
    owner.#cutListeners.add(listener)
    return () => owner.#cutListeners.delete(listener)
  }

  /**
   * Ends the pool within the destroy deadline. Acquisitions still waiting fail at once; queries in
   * flight may finish until the deadline, then their sockets are cut (a server that hangs would
   * otherwise keep `destroy()` from ever returning).
   */
  destroy(): Promise<void> {
    if (this.#owner) return this.#owner.destroy()
    if (this.#destroyed) return this.#destroyed
    this.#failPending(new BackendsDestroyedError(this.name))
    this.laneSlot?.lane?.close()
    if (!this.#init) {
      this.#destroyed = Promise.resolve()
      return this.#destroyed
    }
    const ending = this.#init.then(
      () => this.#driver.destroy(),
      () => {},
    )
    this.#destroyed = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.sockets?.cutAll()
        resolve()
      }, this.deadlines.destroyTimeoutMs)
      timer.unref()
      ending.then(
        () => {
          clearTimeout(timer)
          resolve()
        },
        () => {
          clearTimeout(timer)
          resolve()
        },
      )
    })
    return this.#destroyed
  }
}

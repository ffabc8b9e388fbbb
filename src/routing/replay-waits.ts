import { hasReached, type Position, parsePosition } from '../consistency/position.js'
import { type DialectSupport, readPosition } from '../dialects/dialect.js'
import type { Node } from '../driver/node.js'
import type { Telemetry } from '../events.js'
import type { ReplicaPool } from './replica-pool.js'

/** One session read waiting for a replica to replay its target. */
interface Waiter {
  readonly target: Position
  /** Date.now() when the wait began. */
  readonly started: number
  /** Ends the wait once; false when it had ended. */
  settle(reached: boolean): boolean
}

/** The reads waiting on one replica, and the poll of its position that serves them all. */
interface Watch {
  readonly node: Node
  waiters: Waiter[]
  /** A read of the replica's position is in flight. */
  polling: boolean
  /** Waiters arrived after the poll in flight was sent: their targets may be covered already. */
  joined: boolean
  /** When the last poll was sent (Date.now()). */
  sentAt: number
  /** The next poll, and when it is due. */
  timer: NodeJS.Timeout | undefined
  dueAt: number
  /** The pause before the next poll while no waiter arrives: doubles from poll to poll. */
  backoffMs: number
  /** What the last poll answered. */
  polled: Position | undefined
}

// Between polls that found the waiters' targets not replayed: doubling, as replay that is not done within a
// millisecond or two is lag, which a health check would see as well.
const FIRST_DELAY_MS = 1
const MAX_DELAY_MS = 16
// Polls for waiters that arrived meanwhile are at least this far apart: under load, one poll per interval
// serves every session that wrote in it, where one per arrival would add a query per session write.
const MIN_GAP_MS = 1
// A replica that keeps up replays a write within a few milliseconds (MariaDB under load: 4 ms on average, here),
// so every wait on it ends within a poll or a few. When its oldest wait is older than this, it is lagging or its
// replay is stopped: later reads go to the primary at once instead of each waiting out its budget (and a replica
// whose waits time out is skipped until a check or a poll shows it replayed further).
const JOIN_WINDOW_MS = 25

/**
 * Session reads waiting for a replica to replay their target position.
 *
 * All reads waiting on one replica share one poll of its replayed position at a time, run on the
 * replica's monitor connection, which never queues behind the reads of a saturated pool; each answer
 * ends every wait it covers and tells the replica pool how far the replica is, so that later reads up
 * to there need no wait at all. Polls repeat, further apart each time, while any wait is left. Every wait
 * ends within its own deadline, also when the replica hangs and its poll never answers.
 */
export class ReplayWaits {
  readonly #watches = new Map<Node, Watch>()

  constructor(
    private readonly pool: ReplicaPool,
    private readonly support: DialectSupport,
    private readonly telemetry: Telemetry,
    /** The connection a replica's position is read on (its monitor's, where kysely-rw made the pool). */
    private readonly monitorOf: (node: Node) => Node,
  ) {}

  /** True when a wait on `node` has gone on past a replay's usual time: it lags, or its replay stopped. */
  lagging(node: Node): boolean {
    const oldest = this.#watches.get(node)?.waiters[0]
    return oldest !== undefined && Date.now() - oldest.started > JOIN_WINDOW_MS
  }

  /** True when `node` replayed `target` within `timeoutMs`. */
  waitFor(node: Node, target: Position, timeoutMs: number): Promise<boolean> {
    let watch = this.#watches.get(node)
    if (!watch) {
      watch = {
        node,
        waiters: [],
        polling: false,
        joined: false,
        sentAt: 0,
        timer: undefined,
        dueAt: 0,
        backoffMs: 0,
        polled: undefined,
      }
      this.#watches.set(node, watch)
    }
    const started = Date.now()
    if (this.lagging(node)) return Promise.resolve(false)
    const { telemetry, pool } = this
    const current = watch
    const promise = new Promise<boolean>((resolve) => {
      let ended = false
      const timer = setTimeout(() => {
        if (waiter.settle(false)) current.waiters.splice(current.waiters.indexOf(waiter), 1)
      }, timeoutMs)
      const waiter: Waiter = {
        target,
        started,
        settle(reached) {
          if (ended) return false
          ended = true
          clearTimeout(timer)
          telemetry.waited(node.name, Date.now() - started, reached)
          if (!reached) pool.waitTimedOut(node, current.polled)
          resolve(reached)
          return true
        },
      }
      current.waiters.push(waiter)
    })
    if (current.polling) current.joined = true
    else this.#pollBy(current, current.sentAt + MIN_GAP_MS, started)
    return promise
  }

  /** Polls at `due` (Date.now() time) or at once if that has passed; an earlier poll due stays. */
  #pollBy(watch: Watch, due: number, now: number): void {
    if (watch.timer) {
      if (watch.dueAt <= due) return
      clearTimeout(watch.timer)
      watch.timer = undefined
    }
    if (due <= now) {
      this.#poll(watch)
      return
    }
    watch.dueAt = due
    watch.timer = setTimeout(() => {
      watch.timer = undefined
      this.#poll(watch)
    }, due - now)
  }

  /** Drops a watch no read waits on; a later wait starts a new one. */
  #forget(watch: Watch): void {
    if (this.#watches.get(watch.node) === watch) this.#watches.delete(watch.node)
  }

  #poll(watch: Watch): void {
    const { node } = watch
    if (watch.waiters.length === 0) {
      this.#forget(watch)
      return
    }
    watch.polling = true
    watch.joined = false
    watch.sentAt = Date.now()
    this.monitorOf(node)
      .withConnection((connection) => readPosition(connection, this.support.replication, 'replicaPosition'))
      .then(parsePosition, () => undefined)
      .then((position) => {
        watch.polling = false
        if (position) {
          watch.polled = position
          this.pool.observed(node, position)
          watch.waiters = watch.waiters.filter(
            (waiter) => !(hasReached(position, waiter.target) && waiter.settle(true)),
          )
        }
        if (watch.waiters.length === 0) {
          this.#forget(watch)
          return
        }
        const now = Date.now()
        if (watch.joined) {
          watch.backoffMs = 0
          this.#pollBy(watch, watch.sentAt + MIN_GAP_MS, now)
        } else {
          watch.backoffMs = Math.min(Math.max(watch.backoffMs * 2, FIRST_DELAY_MS), MAX_DELAY_MS)
          this.#pollBy(watch, now + watch.backoffMs, now)
        }
      })
  }
}

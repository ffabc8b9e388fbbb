import { hasReached, laterOf, type Position, parsePosition } from '../consistency/position.js'
import type { SchemaFloor } from '../consistency/schema-floor.js'
import { isCutError } from '../dialects/sockets.js'
import type { Node } from '../driver/node.js'
import { type Route, type Router, type RouteTrace, Unconfirmed } from '../driver/router.js'
import { messageOf, PrimaryUnavailableError, redactDriverError } from '../errors.js'
import type { ReplayWaits } from './replay-waits.js'
import type { ReplicaPool } from './replica-pool.js'

/** What a session's reads are held to. */
export interface SessionState {
  /** The position of the session's last write, or of the token it continued from. */
  position: Position | undefined
  /** A token that cannot be checked against this cluster: every read goes to the primary. */
  readonly foreign: boolean
  /** Positions of writes that returned before their position was read: the next read waits for them. */
  pending?: Promise<void> | undefined
  /**
   * The position of a write is not known (its read failed, or the token was made while it was pending):
   * the next read first asks the primary for a position past every write it acknowledged.
   */
  unknown?: boolean
  /** That question, while it is asked. */
  learning?: Promise<void> | undefined
  /** Why the position is unknown: the error its read (or that question) failed with. */
  unknownCause?: unknown
  /**
   * Set while the primary is known not to answer (a read of the position was cut off, or the session's question
   * went unanswered past a read's `maxWaitMs`), until the question then sent is answered or fails: the session's
   * reads fail at once meanwhile, instead of each waiting on the primary again.
   */
  unanswered?: Error | undefined
  /** Sends the read of a position `pending` waits for, where it is held back (see SessionWrites). */
  flush?: (() => void) | undefined
  /** False from a session write until the session's next read (SessionWrites: a run of writes). */
  readSinceWrite?: boolean
}

/**
 * A session write returned before its position was known; `settled` reads it. Until it settles, the
 * session's reads wait for it (one round trip at most), so no read runs without it.
 */
export function recordPending(state: SessionState, settled: Promise<Position | undefined>): void {
  const done = settled.then(
    (position) => {
      if (position) state.position = laterOf(state.position, position)
    },
    (error: unknown) => {
      state.unknown = true
      state.unknownCause = error
    },
  )
  const all: Promise<void> = state.pending ? Promise.all([state.pending, done]).then(() => {}) : done
  state.pending = all
  void all.then(() => {
    if (state.pending === all) state.pending = undefined
  })
}

/** True when the session's position is not settled yet: a token made now must say so. */
export function isUnsettled(state: SessionState): boolean {
  return state.pending !== undefined || state.unknown === true
}

/**
 * Positional routing, for sessions and for the schema floor: a replica known to have replayed the
 * target position serves the read at once; otherwise the closest replica is waited on, at most
 * `maxWaitMs` in all (a wait another read already runs for the same or a later position is shared);
 * otherwise the primary serves it. A read never returns data older than the target (the later of the
 * session's position and the schema floor), and never waits longer than `maxWaitMs`.
 *
 * Where the closest replica can check its replay position in the read's own round trip and is not known
 * to lag, the read goes there at once, Unconfirmed: it is trusted only when the check shows the target
 * replayed, and routed again as above when not.
 */
export function positionalRouter(
  state: SessionState,
  floor: SchemaFloor,
  pool: ReplicaPool,
  waits: ReplayWaits,
  maxWaitMs: number,
  replicaRouter: Router,
  /** Asks the primary for a position past every write it acknowledged (`writtenPosition`), as a target. */
  writtenPosition: () => Promise<Position | undefined>,
): Router {
  const timedOut = (trace: RouteTrace | undefined) =>
    pool.fallback('wait-timeout', `no replica replayed the required position within ${maxWaitMs} ms`, trace)
  const learn = () =>
    writtenPosition()
      .then(
        (position) => {
          if (position) {
            state.position = laterOf(state.position, position)
            state.unknown = false
            state.unknownCause = undefined
          }
        },
        // Still unknown: the next read asks again.
        (error: unknown) => {
          state.unknownCause = error
        },
      )
      .finally(() => {
        state.learning = undefined
      })
  /**
   * Only the primary can say how far a session read must see, and it does not answer: the read fails rather
   * than run where the session's write may be missing, or wait on the primary again.
   */
  const unavailable = (cause: unknown) =>
    new PrimaryUnavailableError(pool.primary.name, {
      cause: redactDriverError(cause),
      advice:
        "This session read needs the position of the session's last write, which only the primary can give; " +
        'it was not sent anywhere. Retry it once the primary answers, or read with db.read where the read ' +
        "need not see the session's writes.",
    })
  /**
   * The read fails now. A question to the primary stays in flight (one per session), and until it is answered
   * or fails, the session's reads fail at once instead of each waiting on the primary again.
   */
  const refuse = (cause: unknown): Promise<never> => {
    state.learning ??= learn()
    const marker = new Error(messageOf(cause))
    state.unanswered = marker
    void state.learning.finally(() => {
      if (state.unanswered === marker) state.unanswered = undefined
    })
    return Promise.reject(unavailable(cause))
  }
  /** The session's question to the primary, answered within the read's deadline, or the read's failure. */
  const answered = (question: Promise<void>, deadline: number): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), deadline - performance.now())
      void question.then(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  const route = (
    exclude: ReadonlySet<Node>,
    trace: RouteTrace | undefined,
    checkInline: boolean,
    /** The replica the read went to unconfirmed: the one to wait on if the check could not confirm it. */
    checked?: Node,
    /**
     * When the read's question to the primary must have been answered: `maxWaitMs` after it started. Read off
     * the clock only on the paths that wait for the primary, not on every read.
     */
    deadline?: number,
  ): Route | Promise<Route> => {
    state.readSinceWrite = true
    if (state.foreign) {
      return pool.fallback('foreign-token', 'the session token is from another server or history', trace)
    }
    if (pool.hasReplicas && state.unanswered) return Promise.reject(unavailable(state.unanswered))
    if (pool.hasReplicas && state.pending) {
      state.flush?.()
      const by = deadline ?? performance.now() + maxWaitMs
      // One round trip, however long it takes a primary that answers; one that hangs is cut off (below).
      return state.pending.then(() => route(exclude, trace, checkInline, checked, by))
    }
    if (pool.hasReplicas && state.unknown) {
      // Told once, by the read after the failure; the read after it asks the primary again.
      const cause = state.unknownCause
      state.unknownCause = undefined
      // No connection of the primary's pool was free in time: the primary answers, and serves the read.
      if (isAcquireTimeout(cause)) {
        return pool.fallback('unknown-position', "the position of the session's last write could not be read", trace)
      }
      // The primary was cut off for missing its health checks (it hangs): asking it again would wait as long.
      if (isCutError(cause)) return refuse(cause)
      state.learning ??= learn()
      const by = deadline ?? performance.now() + maxWaitMs
      // One question per read, within the read's wait budget.
      return answered(state.learning, by).then((inTime) => {
        if (!inTime) return refuse(new Error(`it did not give the session's position within ${maxWaitMs} ms`))
        if (!state.unknown) return route(exclude, trace, checkInline, checked, by)
        const failure = state.unknownCause
        if (isAcquireTimeout(failure)) {
          state.unknownCause = undefined
          return pool.fallback('unknown-position', "the position of the session's last write could not be read", trace)
        }
        return refuse(failure ?? new Error('it did not give the position of the session'))
      })
    }
    const target = targetOf(state, floor)
    if (!target || !pool.hasReplicas) return replicaRouter.choose(exclude, trace)
    // A plain read is held to the schema floor alone, and may be stale within the opt-in budget.
    const ready = pool.caughtUp(target, exclude, state.position === undefined)
    if (ready) return ready
    // One wait per read at most: a node already excluded has timed out or failed this read.
    const candidate = exclude.size === 0 ? pool.closest(exclude, checked) : undefined
    if (!candidate) {
      // The reason no wait runs: a replica failed under this read, none is up, or every one up timed out.
      if (exclude.size > 0) {
        return pool.fallback('replica-error', 'the replica serving this read failed and no other can take it', trace)
      }
      return pool.anyUp()
        ? timedOut(trace)
        : pool.fallback('no-replica', 'no replica is up and within the lag budget', trace)
    }
    // A replica whose waits have gone on past a replay's usual time would fail the check: wait, or fall back.
    if (checkInline && candidate.checksReplay && !waits.lagging(candidate)) {
      return new Unconfirmed(
        candidate,
        (replayed) => confirms(candidate, replayed, target),
        // Without the shortcut, the route is a node (the replica router's choices are nodes).
        (again, againTrace) => route(again, againTrace, false, candidate) as Node | Promise<Node>,
      )
    }
    const started = trace ? performance.now() : 0
    return waits.waitFor(candidate, target, maxWaitMs).then((reached) => {
      if (trace) trace.waitMs = performance.now() - started
      return reached ? candidate : timedOut(trace)
    })
  }
  const confirms = (node: Node, replayed: string | undefined, target: Position): boolean => {
    const position = parsePosition(replayed)
    if (!position) return false
    // Later reads up to there need no check at all.
    pool.observed(node, position)
    return hasReached(position, target)
  }
  const router: Router = {
    choose: (exclude, trace) => route(exclude, trace, true),
    failed: replicaRouter.failed,
  }
  return router
}

const isAcquireTimeout = (error: unknown) => (error as { name?: unknown } | null)?.name === 'AcquireTimeoutError'

function targetOf(state: SessionState, floor: SchemaFloor): Position | undefined {
  const { position } = floor
  return position ? laterOf(state.position, position) : state.position
}

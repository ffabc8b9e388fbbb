import { laterOf, type Position } from '../consistency/position.js'
import type { SchemaFloor } from '../consistency/schema-floor.js'
import type { Node } from '../driver/node.js'
import type { Router } from '../driver/router.js'
import type { ReplayWaits } from './replay-waits.js'
import type { ReplicaPool } from './replica-pool.js'

/** What a session's reads are held to. */
export interface SessionState {
  /** The position of the session's last write, or of the token it continued from. */
  position: Position | undefined
  /** A token that cannot be checked against this cluster: every read goes to the primary. */
  readonly foreign: boolean
}

/**
 * Positional routing, for sessions and for the schema floor: a replica known to have replayed the
 * target position serves the read at once; otherwise the closest replica is waited on, at most
 * `maxWaitMs` in all (a wait another read already runs for the same or a later position is shared);
 * otherwise the primary serves it. A read never returns data older than the target (the later of the
 * session's position and the schema floor), and never waits longer than `maxWaitMs`.
 */
export function positionalRouter(
  state: SessionState,
  floor: SchemaFloor,
  pool: ReplicaPool,
  waits: ReplayWaits,
  maxWaitMs: number,
  replicaRouter: Router,
): Router {
  const timedOut = () =>
    pool.fallback('wait-timeout', `no replica replayed the required position within ${maxWaitMs} ms`)
  return {
    choose(exclude): Node | Promise<Node> {
      if (state.foreign) return pool.fallback('foreign-token', 'the session token is from another server or history')
      const target = targetOf(state, floor)
      if (!target || !pool.hasReplicas) return replicaRouter.choose(exclude)
      const ready = pool.caughtUp(target, exclude)
      if (ready) return ready
      // One wait per read at most: a node already excluded has timed out or failed this read.
      const candidate = exclude.size === 0 ? pool.closest(exclude) : undefined
      if (!candidate) return timedOut()
      return waits.waitFor(candidate, target, maxWaitMs).then((reached) => (reached ? candidate : timedOut()))
    },
    failed: replicaRouter.failed,
  }
}

function targetOf(state: SessionState, floor: SchemaFloor): Position | undefined {
  const { position } = floor
  return position ? laterOf(state.position, position) : state.position
}

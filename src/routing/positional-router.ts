import { CompiledQuery, type DatabaseConnection } from 'kysely'
import { formatPosition, laterOf, type Position, parsePosition } from '../consistency/position.js'
import type { SchemaFloor } from '../consistency/schema-floor.js'
import type { DialectSupport } from '../dialects/dialect.js'
import type { Node } from '../driver/node.js'
import type { Router } from '../driver/router.js'
import type { Telemetry } from '../events.js'
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
}

/**
 * A session write returned before its position was known; `settled` reads it. Until it settles, the
 * session's reads wait for it (one round trip at most), so no read runs without it.
 */
export function recordPending(state: SessionState, settled: Promise<string | undefined>): void {
  const done = settled.then(
    (text) => {
      const position = parsePosition(text)
      if (position) state.position = laterOf(state.position, position)
    },
    () => {
      state.unknown = true
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
 * target position serves the read at once; otherwise one replica is waited on, at most `maxWaitMs`;
 * otherwise the primary serves it. A read never returns data older than the target (the later of
 * the session's position and the schema floor), and never waits longer than `maxWaitMs`.
 */
export function positionalRouter(
  state: SessionState,
  floor: SchemaFloor,
  pool: ReplicaPool,
  support: DialectSupport,
  maxWaitMs: number,
  telemetry: Telemetry,
  replicaRouter: Router,
): Router {
  const learn = () =>
    pool.primary
      .withConnection(async (connection) => {
        const { writtenPosition } = await support.replication(connection)
        const { rows } = await connection.executeQuery<{ pos: string | null }>(CompiledQuery.raw(writtenPosition))
        return rows[0]?.pos
      })
      .then(
        (text) => {
          const position = parsePosition(text)
          if (position) {
            state.position = laterOf(state.position, position)
            state.unknown = false
          }
        },
        // Still unknown: this read runs on the primary, the next one asks again.
        () => {},
      )
      .finally(() => {
        state.learning = undefined
      })
  return {
    ready() {
      if (!pool.hasReplicas) return undefined
      if (state.pending) return state.pending
      if (!state.unknown) return undefined
      state.learning ??= learn()
      return state.learning
    },
    choose(exclude) {
      const target = targetOf(state, floor)
      if (state.foreign) return pool.fallback('foreign-token', 'the session token is from another server or history')
      if (state.unknown) {
        return pool.fallback('unknown-position', "the position of the session's last write could not be read")
      }
      if (!target || !pool.hasReplicas) return replicaRouter.choose(exclude)
      const ready = pool.caughtUp(target, exclude)
      if (ready) return ready
      // One wait per read at most: a node already excluded has timed out or failed this read.
      const candidate = exclude.size === 0 ? pool.closest(exclude) : undefined
      return (
        candidate ?? pool.fallback('wait-timeout', `no replica replayed the required position within ${maxWaitMs} ms`)
      )
    },
    async admit(node: Node, connection: DatabaseConnection) {
      const target = targetOf(state, floor)
      if (!target || node === pool.primary || pool.hasReplayed(node, target)) return true
      const started = Date.now()
      const { waitForPosition } = await support.replication(connection)
      const reached = await waitForPosition(connection, formatPosition(target), maxWaitMs)
      telemetry.waited(node.name, Date.now() - started, reached)
      pool.waited(node, target, reached)
      return reached
    },
    failed: replicaRouter.failed,
  }
}

function targetOf(state: SessionState, floor: SchemaFloor): Position | undefined {
  const { position } = floor
  return position ? laterOf(state.position, position) : state.position
}

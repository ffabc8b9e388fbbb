import { formatPosition, hasReached, type Position } from '../consistency/position.js'
import type { DialectSupport } from '../dialects/dialect.js'
import type { Node } from '../driver/node.js'
import type { Telemetry } from '../events.js'
import type { ReplicaPool } from './replica-pool.js'

interface Wait {
  readonly target: Position
  readonly outcome: Promise<boolean>
}

/** At most this many session waits run on one replica at once; each holds one of its connections. */
const MAX_WAITS_PER_REPLICA = 2

/**
 * Session reads waiting for a replica to replay their position. A wait holds one replica connection,
 * so that waits never take the pool from plain reads and health checks: at most a few run per replica,
 * a read whose target a wait in flight covers shares that wait's outcome, and any other goes to the
 * primary at once. Every wait ends within its deadline, also when the replica hangs.
 */
export class ReplayWaits {
  readonly #inFlight = new Map<Node, Wait[]>()

  constructor(
    private readonly pool: ReplicaPool,
    private readonly support: DialectSupport,
    private readonly telemetry: Telemetry,
  ) {}

  /** True when `node` replayed `target` within `timeoutMs`; false at once when no wait can start. */
  waitFor(node: Node, target: Position, timeoutMs: number): Promise<boolean> {
    const waits = this.#inFlight.get(node) ?? []
    const shared = waits.find((wait) => hasReached(wait.target, target))
    if (shared) return shared.outcome
    if (waits.length >= MAX_WAITS_PER_REPLICA) return Promise.resolve(false)
    const wait: Wait = { target, outcome: this.#wait(node, target, timeoutMs) }
    waits.push(wait)
    this.#inFlight.set(node, waits)
    void wait.outcome.finally(() => {
      waits.splice(waits.indexOf(wait), 1)
      if (waits.length === 0) this.#inFlight.delete(node)
    })
    return wait.outcome
  }

  async #wait(node: Node, target: Position, timeoutMs: number): Promise<boolean> {
    const started = Date.now()
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    })
    const waiting = node
      .withConnection(async (connection) => {
        const { waitForPosition } = await this.support.replication(connection)
        return waitForPosition(connection, formatPosition(target), Math.max(1, timeoutMs - (Date.now() - started)))
      }, timeoutMs)
      .catch(() => false)
    const reached = await Promise.race([waiting, deadline])
    clearTimeout(timer)
    this.telemetry.waited(node.name, Date.now() - started, reached)
    this.pool.waited(node, target, reached)
    return reached
  }
}

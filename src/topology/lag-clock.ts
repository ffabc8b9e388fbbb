import { hasReached, type Position } from '../consistency/position.js'

interface Sample {
  readonly at: number
  readonly position: Position
}

/**
 * Replication lag from positions alone, with no replication status commands (they need privileges an
 * app user seldom has): the clock keeps the primary's recent positions with the time it saw them, and a
 * replica's lag is how long ago the primary first had a position the replica has not replayed. Its
 * precision is one health-check interval.
 */
export class LagClock {
  #samples: Sample[] = []

  constructor(
    /** How much history to keep: enough to measure lag past the budget. */
    private readonly historyMs: number,
  ) {}

  /** The primary was seen at `position`. */
  sample(position: Position, now: number): void {
    const last = this.#samples[this.#samples.length - 1]
    if (!last || !hasReached(last.position, position) || last.position.kind !== position.kind) {
      this.#samples.push({ at: now, position })
    }
    while (this.#samples.length > 1 && (this.#samples[0] as Sample).at < now - this.historyMs) this.#samples.shift()
  }

  /** Forgets the history: positions of a new primary do not compare with the old one's timing. */
  reset(): void {
    this.#samples = []
  }

  /** Milliseconds behind the primary; null before the primary was ever sampled. */
  lagOf(position: Position, now: number): number | null {
    if (this.#samples.length === 0) return null
    const firstMissing = this.#samples.find((sample) => !hasReached(position, sample.position))
    return firstMissing ? now - firstMissing.at : 0
  }
}

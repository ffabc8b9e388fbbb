import { NoReplicaAvailableError } from '../errors.js'

/**
 * How many reads may run on the primary at once because no replica could take them. When every replica
 * lags or is down, all reads would otherwise move to the primary at once, with nothing to limit them:
 * surplus reads wait briefly for a turn, then fail with NoReplicaAvailableError.
 */
export class FallbackBudget {
  #running = 0
  readonly #queue: { resolve: () => void; timer: NodeJS.Timeout }[] = []

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueueMs: number,
  ) {}

  get running(): number {
    return this.#running
  }

  /** A turn on the primary; resolves at once while the budget lasts. */
  enter(): Promise<void> | undefined {
    if (this.#running < this.maxConcurrent) {
      this.#running++
      return undefined
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        resolve,
        timer: setTimeout(() => {
          this.#queue.splice(this.#queue.indexOf(entry), 1)
          reject(
            new NoReplicaAvailableError(
              `no replica can serve it, and the primary already runs ${this.maxConcurrent} fallback reads ` +
                `(fallbackReads.maxConcurrent); none ended within ${this.maxQueueMs} ms`,
            ),
          )
        }, this.maxQueueMs),
      }
      this.#queue.push(entry)
    })
  }

  leave(): void {
    const next = this.#queue.shift()
    if (next) {
      clearTimeout(next.timer)
      next.resolve()
    } else {
      this.#running--
    }
  }
}

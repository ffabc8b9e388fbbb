// A bounded load of concurrent workers against real servers (127.0.0.1 only), recording every
// operation's outcome and latency, so that fault tests can assert what an operator would watch.

export interface Operation {
  readonly kind: string
  readonly startedAt: number
  readonly ms: number
  readonly error?: unknown
}

export interface Load {
  /** Stops the workers after their current operation and returns everything they did. */
  stop(): Promise<Operation[]>
}

/**
 * Starts `workers` loops; each calls `step(worker, i)`, which runs one operation and returns its kind.
 * Bounded in time by `maxMs` and in count by `maxOperations`, whichever comes first.
 */
export function startLoad(
  workers: number,
  step: (worker: number, i: number) => Promise<string>,
  { maxMs = 60_000, maxOperations = 500_000 } = {},
): Load {
  const operations: Operation[] = []
  const deadline = Date.now() + maxMs
  let stopped = false
  const loops = Array.from({ length: workers }, async (_, worker) => {
    for (let i = 0; !stopped && Date.now() < deadline && operations.length < maxOperations; i++) {
      const startedAt = Date.now()
      try {
        const kind = await step(worker, i)
        operations.push({ kind, startedAt, ms: Date.now() - startedAt })
      } catch (error) {
        operations.push({ kind: 'failed', startedAt, ms: Date.now() - startedAt, error })
      }
    }
  })
  return {
    async stop() {
      stopped = true
      await Promise.all(loops)
      return operations
    },
  }
}

/** Operations per second among those started in [from, to). */
export function throughput(operations: readonly Operation[], from: number, to: number): number {
  const count = operations.filter((op) => op.startedAt >= from && op.startedAt < to && !op.error).length
  return count / ((to - from) / 1000)
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

export async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

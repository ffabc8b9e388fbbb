import type { DatabaseConnection } from 'kysely'
import type { Node } from '../driver/node.js'

/** A node did not answer its health check in time. */
export class CheckTimeoutError extends Error {
  override readonly name = 'CheckTimeoutError'
  readonly code = 'ETIMEDOUT'
  constructor(node: string, ms: number) {
    super(`${node} did not answer its health check within ${ms} ms`)
  }
}

export type CheckOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown }

/**
 * Checks one node on its own timer, with its own deadline, so that a node that hangs never stalls the
 * checks of the others, and is reported down within one interval plus the deadline. Checks do not
 * overlap, and a check that misses its deadline is abandoned: its connection is cut.
 */
export class NodeMonitor<T> {
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(
    /** The node checks run on: a pool of its own where kysely-rw created it, so checks never queue behind reads. */
    private readonly node: Node,
    private readonly check: (connection: DatabaseConnection) => Promise<T>,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly report: (outcome: CheckOutcome<T>) => void,
  ) {}

  start(): void {
    void this.checkNow()
    this.#timer = setInterval(() => void this.checkNow(), this.intervalMs)
    // Health checks alone must never keep a process alive.
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running
  }

  /** One check now; a check still running is joined rather than overlapped. */
  checkNow(): Promise<void> {
    this.#running ??= this.#once().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #once(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      // Timers run before I/O in each turn of the event loop: on a busy process the answer may already
      // be waiting. Let it in before calling the node late.
      timer = setTimeout(
        () => setImmediate(() => reject(new CheckTimeoutError(this.node.name, this.timeoutMs))),
        this.timeoutMs,
      )
    })
    let outcome: CheckOutcome<T>
    try {
      outcome = {
        ok: true,
        value: await Promise.race([this.node.withConnection(this.check, this.timeoutMs), deadline]),
      }
    } catch (error) {
      // The abandoned check's connection would hang until TCP gives up; cut it so the pool makes a new one.
      if (error instanceof CheckTimeoutError) this.node.cut(error)
      outcome = { ok: false, error }
    } finally {
      clearTimeout(timer)
    }
    this.report(outcome)
  }
}

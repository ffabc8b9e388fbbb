/**
 * A value handed to a driver's `query` call without an argument to carry it. Kysely's pg and mysql2
 * connections hand a statement to the driver's `query` synchronously, within the call that `during` makes,
 * so a slot read at that moment is enough; no AsyncLocalStorage, which on Node 20 would slow every promise
 * of the process. Should a driver ever defer that call, its wrapper sees nothing, and the caller takes its
 * slower path: never a wrong one.
 */
export class CallSlot<T> {
  #current: T | undefined

  during<R>(value: T, run: () => R): R {
    const outer = this.#current
    this.#current = value
    try {
      return run()
    } finally {
      this.#current = outer
    }
  }

  /** The value of the call being made now, if any. */
  get current(): T | undefined {
    return this.#current
  }
}

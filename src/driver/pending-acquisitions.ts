/** One acquisition waiting for a connection, with its deadline. */
export interface PendingAcquire {
  readonly deadline: number
  readonly timeoutMs: number
  readonly reject: (error: unknown) => void
  /** The list's links; set by {@link PendingAcquisitions} only. */
  prev: PendingAcquire | undefined
  next: PendingAcquire | undefined
  /** True while the entry is in a list. */
  listed: boolean
}

/**
 * The acquisitions under way on one node, in arrival order.
 *
 * Every query adds one entry and removes it a microtask later. A `Set` of fresh objects makes V8 give
 * each one an identity hash and churns the table's deleted slots: measured at about 0.3 µs per
 * acquisition, most of kysely-rw's cost per read on a driver that answers at once. A doubly linked list
 * through the entries themselves adds and removes in constant time and hashes nothing.
 */
export class PendingAcquisitions {
  #head: PendingAcquire | undefined
  #tail: PendingAcquire | undefined
  #size = 0

  get size(): number {
    return this.#size
  }

  add(entry: PendingAcquire): void {
    entry.listed = true
    entry.prev = this.#tail
    entry.next = undefined
    if (this.#tail) this.#tail.next = entry
    else this.#head = entry
    this.#tail = entry
    this.#size++
  }

  /** Removes the entry; false when it was not listed (already removed: settled or given up). */
  delete(entry: PendingAcquire): boolean {
    if (!entry.listed) return false
    entry.listed = false
    const { prev, next } = entry
    if (prev) prev.next = next
    else this.#head = next
    if (next) next.prev = prev
    else this.#tail = prev
    entry.prev = undefined
    entry.next = undefined
    this.#size--
    return true
  }

  /** Removes and returns the entries whose deadline is at or before `now`. */
  expired(now: number): PendingAcquire[] {
    const out: PendingAcquire[] = []
    for (let entry = this.#head; entry; ) {
      const { next } = entry
      if (entry.deadline <= now) {
        this.delete(entry)
        out.push(entry)
      }
      entry = next
    }
    return out
  }

  /** Removes and returns every entry. */
  drain(): PendingAcquire[] {
    const out: PendingAcquire[] = []
    for (let entry = this.#head; entry; entry = entry.next) out.push(entry)
    for (const entry of out) {
      entry.listed = false
      entry.prev = undefined
      entry.next = undefined
    }
    this.#head = undefined
    this.#tail = undefined
    this.#size = 0
    return out
  }
}

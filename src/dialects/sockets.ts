/**
 * The live driver connections of one pool kysely-rw created, each with a way to cut its socket.
 *
 * A server that hangs (a frozen VM, a partition that drops packets) fails nothing: queries in flight
 * wait until TCP gives up, minutes later. When a node is declared down, cutting its sockets makes
 * every query in flight on it fail at once with a connection error, so reads run again elsewhere,
 * and idle connections leave the pool instead of hanging the next query.
 */
export class SocketRegistry {
  readonly #cuts = new Map<object, () => void>()

  add(connection: object, cut: () => void): void {
    this.#cuts.set(connection, cut)
  }

  delete(connection: object): void {
    this.#cuts.delete(connection)
  }

  get size(): number {
    return this.#cuts.size
  }

  /** Destroys every socket of the pool; returns how many there were. */
  cutAll(): number {
    const cuts = [...this.#cuts.values()]
    this.#cuts.clear()
    for (const cut of cuts) {
      try {
        cut()
      } catch {
        // A socket that is already gone has nothing left to cut.
      }
    }
    return cuts.length
  }
}

/**
 * The error a cut socket's query, or a cut-off acquisition, fails with: a connection error to both
 * drivers' checks, so that reads run again elsewhere and writes report a lost connection.
 */
export function cutError(why = 'its node was declared down'): Error {
  return Object.assign(new Error(`kysely-rw cut the connection: ${why}`), { code: 'ECONNRESET', [CUT]: true })
}

const CUT = Symbol('kysely-rw cut')

/** True for the errors of {@link cutError}: kysely-rw's own doing, which says nothing new about the node. */
export function isCutError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { [CUT]?: unknown })[CUT] === true
}

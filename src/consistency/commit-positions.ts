import { CompiledQuery, type DatabaseConnection } from 'kysely'
import type { ReplicationStatements } from '../dialects/dialect.js'

/** What a session write gets back: its position, to come, and whether its connection carries the read. */
export interface CommitPositionRead {
  readonly settled: Promise<string | undefined>
  /** True when the read runs on the connection given: hold it until `settled`. */
  readonly carrier: boolean
}

interface Batch {
  readonly carrier: DatabaseConnection
  readonly settled: Promise<string | undefined>
  resolve(position: string | undefined): void
  reject(error: unknown): void
}

/**
 * The primary's position after session writes whose driver does not report it (PostgreSQL: the extended
 * protocol that writes with parameters take carries one statement, so the commit's position takes a
 * query of its own).
 *
 * Any read of the insert position that starts after a commit was acknowledged is at or past that commit,
 * whichever connection runs it. So one read serves every session write acknowledged before it is sent:
 * it is sent once the event loop has run what the writes' results set off (the callers' next queries go
 * to the server first), on the connection of the write that asked first (no pool acquisition, no
 * queueing behind other queries), and while one is in flight the next waits for it, gathering the writes
 * that finish meanwhile. Under load, one position read per turn of the event loop rather than one per
 * write.
 */
export class CommitPositionReads {
  #queued: Batch | undefined
  #inFlight = false

  constructor(private readonly statements: (connection: DatabaseConnection) => Promise<ReplicationStatements>) {}

  /** The position after a write just acknowledged on `connection` (same server as every other caller). */
  after(connection: DatabaseConnection): CommitPositionRead {
    const queued = this.#queued
    if (queued) return { settled: queued.settled, carrier: false }
    let resolve!: Batch['resolve']
    let reject!: Batch['reject']
    const settled = new Promise<string | undefined>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.#queued = { carrier: connection, settled, resolve, reject }
    if (!this.#inFlight) setImmediate(() => this.#send())
    return { settled, carrier: true }
  }

  #send(): void {
    const batch = this.#queued
    if (!batch) return
    this.#queued = undefined
    this.#inFlight = true
    this.#read(batch.carrier)
      .then(batch.resolve, batch.reject)
      .finally(() => {
        this.#inFlight = false
        if (this.#queued) setImmediate(() => this.#send())
      })
  }

  async #read(connection: DatabaseConnection): Promise<string | undefined> {
    const { sessionPosition } = await this.statements(connection)
    const { rows } = await connection.executeQuery<{ pos: string | null }>(CompiledQuery.raw(sessionPosition))
    return rows[0]?.pos ?? undefined
  }
}

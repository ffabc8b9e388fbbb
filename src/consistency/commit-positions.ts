import type { DatabaseConnection } from 'kysely'
import { type ReplicationStatements, readPosition } from '../dialects/dialect.js'

interface Queued {
  readonly settled: Promise<string | undefined>
  resolve(position: string | undefined): void
  reject(error: unknown): void
}

/**
 * Reads of one primary node's position for session writes whose driver does not report it (PostgreSQL:
 * the extended protocol, which writes with parameters take, carries one statement, so the commit's
 * position takes a query of its own).
 *
 * A read of the insert position that starts after a commit was acknowledged is at or past that commit,
 * whichever connection runs it. So writes are numbered as they are acknowledged, each read carries the
 * number reached when it was sent, and a session needing the position of its writes up to number n uses
 * the latest read sent at or after n, in flight or done; only otherwise is a read sent, at most one at a
 * time (the next waits for it, and serves everyone who asked meanwhile). Under load: about one read per
 * turn of the event loop, however many sessions wrote in it.
 */
export class CommitPositionReads {
  #acknowledged = 0
  #sent: { readonly tag: number; readonly settled: Promise<string | undefined> } | undefined
  #queued: Queued | undefined
  #inFlight = false

  constructor(
    private readonly statements: (connection: DatabaseConnection) => Promise<ReplicationStatements>,
    /** Runs a read on a connection of the node's pool, with the deadline of a session's wait. */
    private readonly withConnection: <T>(run: (connection: DatabaseConnection) => Promise<T>) => Promise<T>,
  ) {}

  /** Numbers a write acknowledged on this node whose position is owed. */
  acknowledged(): number {
    return ++this.#acknowledged
  }

  /** A position at or past every write acknowledged on this node up to number `tag`. */
  covering(tag: number): Promise<string | undefined> {
    const sent = this.#sent
    if (sent && sent.tag >= tag) return sent.settled
    const queued = this.#queued ?? this.#queue()
    if (!this.#inFlight) this.#send()
    return queued.settled
  }

  #queue(): Queued {
    let resolve!: Queued['resolve']
    let reject!: Queued['reject']
    const settled = new Promise<string | undefined>((res, rej) => {
      resolve = res
      reject = rej
    })
    const queued: Queued = { settled, resolve, reject }
    this.#queued = queued
    return queued
  }

  #send(): void {
    const queued = this.#queued
    if (!queued) return
    this.#queued = undefined
    this.#inFlight = true
    const settled = this.withConnection((connection) => readPosition(connection, this.statements, 'sessionPosition'))
    const sent = { tag: this.#acknowledged, settled }
    this.#sent = sent
    settled.then(queued.resolve, (error: unknown) => {
      // A failed read serves no one who asks later.
      if (this.#sent === sent) this.#sent = undefined
      queued.reject(error)
    })
    void settled
      .catch(() => {})
      .finally(() => {
        this.#inFlight = false
        this.#send()
      })
  }
}

import type { DatabaseConnection } from 'kysely'
import type { CommitPositionReads } from '../consistency/commit-positions.js'
import type { Node } from '../driver/node.js'
import { recordPending, type SessionState } from './positional-router.js'

interface Held {
  readonly connection: DatabaseConnection
  readonly release: () => void
}

interface Batch {
  readonly node: Node
  /** The number of the batch's last write on its node (CommitPositionReads). */
  tag: number
  readonly settled: Promise<string | undefined>
  resolve(position: string | undefined): void
  reject(error: unknown): void
}

/**
 * A session's autocommit writes whose driver does not report their position (PostgreSQL), and when that
 * position is read.
 *
 * Not after each write: a read of the primary's position that starts once the session has no write in
 * flight covers every write it acknowledged before, so a run of writes costs one read, sent once the
 * event loop turns with none in flight (the caller's next write, if any, is under way by then). A read
 * of the session never waits for that turn: it asks for the position at once. Until the position is in,
 * the session's reads wait for it and its tokens say it is unsettled.
 *
 * The read runs on the connection of the session's last write, held back from its pool for that turn
 * (a read queued behind a busy pool would hold up the session's reads); a connection whose write is
 * followed by another in flight goes back at once.
 */
export class SessionWrites {
  #inFlight = 0
  #held: Held[] = []
  #batch: Batch | undefined
  #turn = false

  constructor(
    private readonly state: SessionState,
    /** The position reads of each primary node, shared by every session. */
    private readonly reads: (node: Node) => CommitPositionReads,
  ) {
    state.flush = () => this.flush()
  }

  /** A write of the session is being sent. */
  started(): void {
    this.#inFlight++
  }

  /** A write that failed, or whose position its driver reported. */
  ended(): void {
    this.#inFlight--
    if (this.#inFlight === 0 && this.#batch) this.#scheduleTurn()
  }

  /** A write acknowledged without its position; resolves when its connection may go back to the pool. */
  acknowledged(node: Node, connection: DatabaseConnection): Promise<void> {
    this.#inFlight--
    // A read on one server says nothing of another's commits (a failover between two writes).
    if (this.#batch && this.#batch.node !== node) this.flush()
    const batch = this.#batch ?? this.#newBatch(node)
    this.#batch = batch
    batch.tag = this.reads(node).acknowledged()
    const released = new Promise<void>((release) => {
      this.#held.push({ connection, release })
    })
    this.#scheduleTurn()
    return released
  }

  /** Sends the read of the position of every write acknowledged so far, if one is owed. */
  flush(): void {
    const batch = this.#batch
    this.#batch = undefined
    const held = this.#held
    this.#held = []
    const carrier = held.pop()
    for (const other of held) other.release()
    if (!batch) {
      carrier?.release()
      return
    }
    const read = this.reads(batch.node).covering(batch.tag, carrier?.connection)
    if (carrier) {
      if (read.carrier) read.settled.then(carrier.release, carrier.release)
      else carrier.release()
    }
    read.settled.then(batch.resolve, batch.reject)
  }

  #newBatch(node: Node): Batch {
    let resolve!: Batch['resolve']
    let reject!: Batch['reject']
    const settled = new Promise<string | undefined>((res, rej) => {
      resolve = res
      reject = rej
    })
    recordPending(this.state, settled)
    return { node, tag: 0, settled, resolve, reject }
  }

  #scheduleTurn(): void {
    if (this.#turn) return
    this.#turn = true
    setImmediate(() => {
      this.#turn = false
      if (this.#inFlight === 0) return this.flush()
      // A write in flight: it carries the read once acknowledged (or `ended` asks for a turn again).
      const held = this.#held
      this.#held = []
      for (const other of held) other.release()
    })
  }
}

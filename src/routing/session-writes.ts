import type { CommitPositionReads } from '../consistency/commit-positions.js'
import type { Position } from '../consistency/position.js'
import type { Node } from '../driver/node.js'
import { recordPending, type SessionState } from './positional-router.js'

interface Batch {
  readonly node: Node
  /** The number of the batch's last write on its node (CommitPositionReads). */
  tag: number
  readonly settled: Promise<Position | undefined>
  resolve(position: Position | undefined): void
  reject(error: unknown): void
}

/**
 * A session's autocommit writes whose driver does not report their position (PostgreSQL), and when that
 * position is read.
 *
 * A write after a read of the session (or its first) is likely read back next: where the driver can, its
 * position is read in its own round trip, pipelined behind it, so that the read needs nothing more from the
 * primary. A write right after another is likely one of a run: its position is read after the run, as
 * follows, which costs the run one statement instead of one per write.
 *
 * Not after each write: a read of the primary's position that starts once the session has no write in
 * flight covers every write it acknowledged before, so a run of writes costs one read, sent once the
 * event loop turns with none in flight (the caller's next write, if any, is under way by then). A read
 * of the session never waits for that turn: it asks for the position at once. Until the position is in,
 * the session's reads wait for it and its tokens say it is unsettled.
 *
 * The read takes a connection of the primary's pool, usually the one the last write just gave back: held
 * back for the read instead, a session's consecutive writes would alternate between two connections, which
 * measured 35 µs of client CPU and 40-60 µs of latency more per write on loopback. A read that cannot have
 * a connection within the session's wait budget fails, and the session's reads then go to the primary.
 */
export class SessionWrites {
  #inFlight = 0
  #batch: Batch | undefined
  #turn = false

  constructor(
    private readonly state: SessionState,
    /** The position reads of each primary node, shared by every session. */
    private readonly reads: (node: Node) => CommitPositionReads,
    /** Reads a primary's position as the target replicas must replay (replayedForm). */
    private readonly targetOf: (text: string | undefined) => Position | undefined,
  ) {
    state.flush = () => this.flush()
  }

  /** A write of the session is being sent; true when its position is worth reading in its own round trip. */
  started(): boolean {
    this.#inFlight++
    const inline = this.state.readSinceWrite !== false
    this.state.readSinceWrite = false
    return inline
  }

  /** A write that failed, or whose position its driver reported. */
  ended(): void {
    this.#inFlight--
    if (this.#inFlight === 0 && this.#batch) this.#scheduleTurn()
  }

  /** A write acknowledged on `node` without its position. */
  acknowledged(node: Node): void {
    this.#inFlight--
    // A read on one server says nothing of another's commits (a failover between two writes).
    if (this.#batch && this.#batch.node !== node) this.flush()
    const batch = this.#batch ?? this.#newBatch(node)
    this.#batch = batch
    batch.tag = this.reads(node).acknowledged()
    this.#scheduleTurn()
  }

  /** Sends the read of the position of every write acknowledged so far, if one is owed. */
  flush(): void {
    const batch = this.#batch
    if (!batch) return
    this.#batch = undefined
    this.reads(batch.node)
      .covering(batch.tag)
      .then((text) => batch.resolve(this.targetOf(text)), batch.reject)
  }

  #newBatch(node: Node): Batch {
    let resolve!: Batch['resolve']
    let reject!: Batch['reject']
    const settled = new Promise<Position | undefined>((res, rej) => {
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
      // With a write in flight, its acknowledgment (or `ended`) asks for a turn again.
      if (this.#inFlight === 0) this.flush()
    })
  }
}

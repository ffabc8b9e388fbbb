import { canPipeline, isIdle } from './pg-pipeline.js'

/**
 * What the lane needs of node-postgres's Pool: its counts, its size and a way to take a client.
 * A client taken with `connect()` is the pool's until `release()`, as for any other user.
 */
export interface LanePool {
  readonly totalCount: number
  readonly idleCount: number
  readonly waitingCount: number
  readonly options: { readonly max?: number; readonly allowExitOnIdle?: boolean }
  connect(): Promise<LaneClient>
}

/** What the lane needs of node-postgres's Client (pg 8.23+ for `pipeline`). */
export interface LaneClient {
  pipeline?: unknown
  readyForQuery?: unknown
  _queryable?: unknown
  _ending?: unknown
  _queryQueue?: unknown[]
  _sentQueryQueue?: unknown[]
  ref(): void
  unref(): void
  on(event: 'end', listener: () => void): unknown
  once(event: 'drain', listener: () => void): unknown
  off(event: 'end', listener: () => void): unknown
  query(text: unknown, values?: unknown): Promise<LaneResult>
  release(error?: Error | boolean): void
}

/** A pg result, as Kysely's PostgresConnection maps it. */
export interface LaneResult {
  readonly command: string
  readonly rowCount: number | null
  readonly rows: unknown[]
}

/** Runs the once-per-connection checks of a read session on a client, before the lane sends it a read. */
export type LaneVerifier = (query: (text: unknown, values: readonly unknown[]) => Promise<LaneResult>) => Promise<void>

/** A read node's lane, set once its pool exists (node-postgres with pipeline mode only). */
export interface LaneSlot {
  lane: PgReadLane | undefined
}

// Reads in flight on one lane client at most: past it, the read waits for a pooled connection as before.
const DEPTH = 16
// A lane client with reads in flight and no answer for this long takes no more: a slow read (a report, a
// lock wait, a server that hangs) holds up only the reads sent behind it before then.
const STALL_MS = 25
// After a connection failed its checks, the lane takes another only this much later.
const REGROW_MS = 1_000
// Reads one lane client takes before it goes back to the pool, so that the pool's other users (read
// transactions, streams, reads that check a replica's replay position) get their turn at it.
const TURNS = 512

interface Held {
  readonly client: LaneClient
  inFlight: number
  /** When it last answered a read, or took one with none in flight (performance.now()). */
  progressAt: number
  turns: number
  /** Takes no more reads: back to the pool once those in flight are answered. */
  retiring: boolean
  /** The client failed: the pool drops it on release. */
  failed: Error | undefined
  /** Hears the client's connection end while the lane holds it. */
  readonly ended: () => void
  /** Waits for pg to answer a statement queued behind the lane's reads before it goes back to the pool. */
  draining?: boolean
  /** Idle, and unreferenced so that it keeps no process alive. */
  unref?: boolean
}

/**
 * Reads pipelined on some of a replica's pooled connections.
 *
 * A pool hands a connection to one query at a time, so under load each read costs a round trip of its own,
 * with its own socket write, its own wake-up when its answer comes and its own pool hand-over. The lane holds
 * a few of the pool's connections in pg's pipeline mode and sends each read on the one with the fewest reads
 * in flight; once every one it holds is busy (and it holds `width`), the read goes behind those in flight:
 * each still goes with its own Sync, so it runs in its own implicit transaction and its failure touches no
 * other, and answers to several reads arrive in one socket read. Only single reads that leave nothing behind
 * in the session take the lane (BackendDriver), and only on replicas, whose server refuses every write
 * whatever a session's settings say.
 *
 * A connection with DEPTH reads in flight, or none answered for STALL_MS, takes no more. A connection goes
 * back to the pool when nothing is in flight on it and another user waits for one (or the lane holds another
 * idle one), after TURNS reads, or once it failed: the rest of the pool serves everything else as before.
 */
export class PgReadLane {
  readonly #pool: LanePool
  readonly #width: number
  readonly #held: Held[] = []
  #joining = 0
  #closed = false
  /** After a connection failed its checks, no other is taken before this time (performance.now()). */
  #growAfter = 0
  #verifier: LaneVerifier | undefined
  readonly #verified = new WeakSet<LaneClient>()

  constructor(pool: LanePool, width: number) {
    this.#pool = pool
    this.#width = width
  }

  /** Set by the first read backend that uses the lane: how a new client is checked before its first read. */
  get verifier(): LaneVerifier | undefined {
    return this.#verifier
  }

  set verifier(verify: LaneVerifier | undefined) {
    this.#verifier ??= verify
  }

  /** True when the last read `send` took went behind another in flight on its connection. */
  behind = false

  /**
   * Sends a read now on the lane connection with the fewest reads in flight, taking one more from the pool
   * when every one it holds is busy. Undefined when it holds none that can take the read yet (none taken
   * so far, all stalled, full or failed): the read then takes a pooled connection of its own.
   */
  send(text: unknown, values: readonly unknown[]): Promise<LaneResult> | undefined {
    if (this.#closed) return undefined
    const now = performance.now()
    let best: Held | undefined
    let lost: Held[] | undefined
    for (const held of this.#held) {
      if (held.retiring || held.failed || held.inFlight >= DEPTH) continue
      if (isLost(held.client)) {
        held.failed = new Error('The connection was lost')
        lost ??= []
        lost.push(held)
        continue
      }
      if (held.inFlight > 0 && now - held.progressAt > STALL_MS) continue
      if (!best || held.inFlight < best.inFlight) best = held
    }
    if (lost) for (const held of lost) this.#settle(held)
    if (!best || best.inFlight > 0) this.#grow()
    if (!best) return undefined
    return this.#sendOn(best, now, text, values)
  }

  #sendOn(held: Held, now: number, text: unknown, values: readonly unknown[]): Promise<LaneResult> {
    const { client } = held
    this.behind = held.inFlight > 0
    if (held.inFlight++ === 0) {
      held.progressAt = now
      if (held.unref) {
        held.unref = false
        client.ref()
      }
    }
    if (++held.turns >= TURNS) held.retiring = true
    return client.query(text, values).then(
      (result) => {
        held.inFlight--
        held.progressAt = performance.now()
        this.#settle(held)
        return result
      },
      (error: unknown) => {
        held.inFlight--
        held.progressAt = performance.now()
        if (isLost(client)) held.failed ??= error instanceof Error ? error : new Error(String(error))
        this.#settle(held)
        throw error
      },
    )
  }

  /** Takes one more of the pool's connections for the lane, when it holds fewer than its width. */
  #grow(): void {
    if (this.#closed || this.#held.length + this.#joining >= this.#width) return
    if (this.#growAfter !== 0 && performance.now() < this.#growAfter) return
    this.#joining++
    this.#pool.connect().then(
      async (client) => {
        try {
          if (!this.#verified.has(client)) {
            const verify = this.#verifier
            if (!verify) throw new Error('No read backend set the lane up')
            await verify((text, values) => client.query(text, values))
            this.#verified.add(client)
          }
        } catch {
          this.#joining--
          // A connection that fails its checks serves no read from the lane; the pool's path reports why. The
          // next is taken a while later, not on every read.
          this.#growAfter = performance.now() + REGROW_MS
          client.release(true)
          return
        }
        this.#joining--
        if (this.#closed || !canPipeline(client)) {
          client.release()
          return
        }
        client.pipeline = true
        const held: Held = {
          client,
          inFlight: 0,
          progressAt: 0,
          turns: 0,
          retiring: false,
          failed: undefined,
          ended: () => {
            held.failed ??= new Error('The connection ended')
            this.#settle(held)
          },
        }
        // A connection cut (its node declared down) or ended goes back to the pool to be dropped, also when
        // no read is sent to the lane again.
        client.on('end', held.ended)
        this.#held.push(held)
        // No read on it yet: it keeps no process alive until one is sent.
        this.#idle(held)
      },
      () => {
        this.#joining--
      },
    )
  }

  /** An idle connection the lane keeps does not keep the process alive, as the pool's idle ones do not. */
  #idle(held: Held): void {
    if (this.#pool.options.allowExitOnIdle === true && !held.unref) {
      held.unref = true
      held.client.unref()
    }
  }

  /**
   * Gives a client back to the pool once nothing is in flight on it and it should go: it failed, served its
   * turns, the lane closed, someone waits for a pooled connection, or the lane holds another idle one.
   */
  #settle(held: Held): void {
    if (held.inFlight > 0) return
    const keep =
      !held.failed &&
      !held.retiring &&
      !this.#closed &&
      this.#pool.waitingCount === 0 &&
      !this.#held.some((other) => other !== held && other.inFlight === 0)
    if (keep) {
      this.#idle(held)
      return
    }
    const at = this.#held.indexOf(held)
    if (at < 0) return
    const { client } = held
    // A statement pg queued on the connection behind the lane's reads (keeping its session read-only) must
    // be answered before the connection leaves pipeline mode.
    if (!held.failed && !isIdle(client)) {
      if (!held.draining) {
        held.draining = true
        client.once('drain', () => this.#settle(held))
      }
      return
    }
    this.#held.splice(at, 1)
    client.off('end', held.ended)
    client.pipeline = false
    client.release(held.failed ?? undefined)
  }

  /** Takes no more reads; clients go back to the pool as their reads are answered. */
  close(): void {
    this.#closed = true
    for (const held of [...this.#held]) this.#settle(held)
  }
}

function isLost(client: LaneClient): boolean {
  return client._queryable === false || client._ending === true
}

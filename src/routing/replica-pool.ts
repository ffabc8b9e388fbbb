import { hasReached, laterOf, type Position } from '../consistency/position.js'
import { cutError, isCutError } from '../dialects/sockets.js'
import type { Node } from '../driver/node.js'
import type { Router, RouteTrace } from '../driver/router.js'
import { messageOf, NoReplicaAvailableError, PrimaryUnavailableError, redactSecrets } from '../errors.js'
import type { DrainReason, FallbackReason, ReplicaState, ReplicaStatus, Telemetry } from '../events.js'
import type { FallbackBudget } from './fallback-budget.js'
import { type ReplicaSelection, selector } from './strategies.js'

const NO_NODES: ReadonlySet<Node> = new Set()

const lagOf = (replica: Replica): number => replica.lagMs ?? Number.POSITIVE_INFINITY

/** What the pool knows of one replica. */
interface Replica {
  readonly node: Node
  readonly name: string
  state: ReplicaState
  /** Why the replica serves no reads, when it does not: the drain reason, the error, the misconfiguration. */
  problem: string | null
  drainReason: DrainReason | undefined
  lagMs: number | null
  position: Position | undefined
  positionText: string | null
  lastCheck: Date | null
  /**
   * Set when a session wait timed out here, to the furthest position known then (undefined if none was);
   * cleared when a check or a poll shows the replica replayed past it.
   */
  stuck: { readonly at: Position | undefined } | undefined
}

/** What a health check found on one replica. */
export type CheckResult =
  | {
      readonly ok: true
      readonly position: Position | undefined
      readonly positionText: string | null
      readonly lagMs: number | null
      /** The replica lacks the latest migration applied on the primary. */
      readonly missingMigration: boolean
      /** Lag cannot be measured because the primary is unreachable; the replica itself answers. */
      readonly lagUnknowable: boolean
    }
  | { readonly ok: false; readonly error: unknown }
  /** The node answers, but is no replica of this primary: it must serve no replica reads. */
  | { readonly ok: 'misconfigured'; readonly state: 'not-a-replica' | 'writable' | 'primary'; readonly detail: string }

export interface ReplicaPoolOptions {
  readonly selection: ReplicaSelection
  readonly maxReplicaLagMs: number
  readonly whenNoReplica: 'primary' | 'error'
  /** Opt-in: plain reads may use the least lagged replica up to this lag when none is within budget. */
  readonly staleReadsMaxLagMs: number | undefined
  /** Bounds the reads that fall back to the primary. */
  readonly budget: FallbackBudget
  /** True while the primary is known to hang (it missed its last health checks): no read waits on it. */
  readonly primaryHangs?: () => boolean
}

/**
 * Which replica may serve a read now. Replicas that lag past the budget, whose lag is unknown, that are
 * down, or that are not replicas of this primary are drained: no read goes to them until a health
 * check readmits them.
 */
export class ReplicaPool {
  readonly #replicas: Replica[]
  readonly #pick: (candidates: readonly Replica[]) => Replica
  /** The replicas up now; undefined after a state change, until the next read lists them again. */
  #up: readonly Replica[] | undefined

  constructor(
    replicas: readonly Node[],
    /** The current primary in read-only sessions: where reads go when no replica can take them. */
    private readonly primaryView: () => Node,
    /** Every read-only view of a primary candidate: reads on these are fallbacks, never retried. */
    private readonly primaryViews: ReadonlySet<Node>,
    private readonly options: ReplicaPoolOptions,
    private readonly telemetry: Telemetry,
  ) {
    this.#replicas = replicas.map((node) => ({
      node,
      name: node.name,
      state: 'up',
      problem: null,
      drainReason: undefined,
      lagMs: null,
      position: undefined,
      positionText: null,
      lastCheck: null,
      stuck: undefined,
    }))
    this.#pick = selector<Replica>(options.selection)
  }

  get primary(): Node {
    return this.primaryView()
  }

  /** True for the primary's read-only view (any candidate's). */
  isPrimary(node: Node): boolean {
    return this.primaryViews.has(node)
  }

  get hasReplicas(): boolean {
    return this.#replicas.length > 0
  }

  get budget(): FallbackBudget {
    return this.options.budget
  }

  get nodes(): readonly Node[] {
    return this.#replicas.map((replica) => replica.node)
  }

  /**
   * Routing for plain (eventually consistent) reads. A replica whose connection fails is drained; a
   * replica whose pool had no connection in time is only skipped by that read.
   */
  router(isConnectionError: (error: unknown) => boolean): Router {
    return {
      choose: (exclude, trace) => this.choose(exclude, trace),
      failed: (node, error) => this.failed(node, error, isConnectionError),
    }
  }

  failed(node: Node, error: unknown, isConnectionError: (error: unknown) => boolean): boolean {
    if (this.isPrimary(node)) return false
    if ((error as { name?: unknown } | null)?.name === 'AcquireTimeoutError') return true
    if (!isConnectionError(error)) return false
    this.markDown(node, error)
    return true
  }

  /** True when some replica is up (whether or not it has what a read needs). */
  anyUp(): boolean {
    return this.#eligible(NO_NODES).length > 0
  }

  /** The node for a plain (eventually consistent) read. */
  choose(exclude: ReadonlySet<Node>, trace?: RouteTrace): Node {
    const eligible = this.#eligible(exclude)
    if (eligible.length > 0) return this.#pick(eligible).node
    const stale = this.#staleCandidate(exclude)
    if (stale) {
      this.telemetry.staleRead(stale.name, stale.lagMs)
      return stale.node
    }
    // Excluded nodes failed this very read: it falls back because a replica broke under it.
    return exclude.size > 0
      ? this.fallback('replica-error', 'the replica serving this read failed and no other can take it', trace)
      : this.fallback('no-replica', 'no replica is up and within the lag budget', trace)
  }

  /** With bounded staleness on: the least lagged replica drained for lag alone, within the second budget. */
  #staleCandidate(exclude: ReadonlySet<Node>, floor?: Position): Replica | undefined {
    const limit = this.options.staleReadsMaxLagMs
    if (limit === undefined) return undefined
    let best: Replica | undefined
    for (const replica of this.#replicas) {
      if (replica.state !== 'lagging' || replica.drainReason !== 'lag' || exclude.has(replica.node)) continue
      if (replica.lagMs === null || replica.lagMs > limit) continue
      if (floor && !hasReached(replica.position, floor)) continue
      if (!best || replica.lagMs < (best.lagMs as number)) best = replica
    }
    return best
  }

  /**
   * Up replicas known to have replayed `target`, for reads that need no wait. A plain read held only to
   * the schema floor (`stale` true) may, with bounded staleness on, use a lagging replica that has it.
   */
  caughtUp(target: Position, exclude: ReadonlySet<Node>, stale = false): Node | undefined {
    const eligible = this.#eligible(exclude)
    // Between a session's writes every up replica has its position: picked from with no array made.
    const ready = eligible.every((replica) => hasReached(replica.position, target))
      ? eligible
      : eligible.filter((replica) => hasReached(replica.position, target))
    if (ready.length > 0) return this.#pick(ready).node
    const lagging = stale ? this.#staleCandidate(exclude, target) : undefined
    if (!lagging) return undefined
    this.telemetry.staleRead(lagging.name, lagging.lagMs)
    return lagging.node
  }

  /**
   * The up replica closest to the primary: the one worth waiting on. A replica on which a wait timed
   * out is skipped until a check or a poll shows it replayed past where it stopped, so that a replica whose
   * replay is stopped costs the reads under way then one wait each, not one wait per read. Lag is measured to
   * a health-check interval, so replicas often tie: ties are picked from as plain reads are, or every
   * session read after a write would go to the first replica listed (and its later reads with it, since
   * only that replica's position is then known to cover the write). `prefer`: the replica a read was sent
   * to unconfirmed, while it is still eligible.
   */
  closest(exclude: ReadonlySet<Node>, prefer?: Node): Node | undefined {
    const eligible = this.#eligible(exclude).filter((replica) => replica.stuck === undefined)
    if (eligible.length === 0) return undefined
    // A read that went to `prefer` unconfirmed waits there: picked again, the ties would take turns by twos.
    if (prefer && eligible.some((replica) => replica.node === prefer)) return prefer
    const least = Math.min(...eligible.map(lagOf))
    return this.#pick(eligible.filter((replica) => lagOf(replica) === least)).node
  }

  /**
   * Where a read goes when no replica can serve it: the primary, or an error if so configured. A
   * session token that cannot be checked here (foreign, tampered, unsigned) is no exception: a value a
   * client controls never moves a read onto the primary against `whenNoReplica: 'error'`.
   */
  fallback(reason: FallbackReason, detail: string, trace?: RouteTrace): Node {
    if (this.options.primaryHangs?.()) {
      // As a write is refused then: the read would wait on the primary for a connection, and hold its caller.
      throw new PrimaryUnavailableError(this.primary.name, {
        cause: new Error('it did not answer its last health checks in time'),
        advice: `No replica can serve this read (${detail}); it was sent nowhere: run it again once a node answers.`,
      })
    }
    if (this.#replicas.length === 0) return this.primary
    if (this.options.whenNoReplica === 'error') throw new NoReplicaAvailableError(detail)
    this.telemetry.fallback(reason, this.primary.name)
    if (trace) trace.fallbackReason = reason
    return this.primary
  }

  /**
   * A session wait on this replica timed out: it is not waited on again until it replays past the furthest
   * position known then, the checks' or the last poll's (a check sent before that poll may report less).
   */
  waitTimedOut(node: Node, polled: Position | undefined): void {
    const replica = this.#find(node)
    if (replica) replica.stuck = { at: polled ? laterOf(replica.position, polled) : replica.position }
  }

  /** A poll found the replica replayed up to `position`: reads up to there need no wait. */
  observed(node: Node, position: Position): void {
    const replica = this.#find(node)
    if (!replica) return
    if (replica.stuck && movedOn(replica.stuck.at, position)) replica.stuck = undefined
    if (!hasReached(replica.position, position)) replica.position = position
  }

  /** A read failed on this replica's connection: drain it at once, the checker readmits it. */
  markDown(node: Node, error: unknown): void {
    const replica = this.#find(node)
    if (replica) this.#transition(replica, 'down', error)
  }

  /** Applies a health check's findings. */
  update(node: Node, result: CheckResult, now: Date): void {
    const replica = this.#find(node)
    if (!replica) return
    replica.lastCheck = now
    if (result.ok === false) {
      replica.lagMs = null
      this.#transition(replica, 'down', result.error)
      return
    }
    if (result.ok === 'misconfigured') {
      replica.lagMs = null
      replica.position = undefined
      replica.positionText = null
      this.#transition(replica, result.state, result.detail)
      return
    }
    if (replica.stuck && result.position && movedOn(replica.stuck.at, result.position)) replica.stuck = undefined
    replica.position = result.position
    replica.positionText = result.positionText
    replica.lagMs = result.lagMs
    const withinBudget = result.lagUnknowable || (result.lagMs !== null && result.lagMs <= this.options.maxReplicaLagMs)
    const reason = result.missingMigration ? 'migration' : result.lagMs === null ? 'unknown-lag' : 'lag'
    this.#transition(replica, withinBudget && !result.missingMigration ? 'up' : 'lagging', undefined, reason)
  }

  status(): ReplicaStatus[] {
    return this.#replicas.map((r) => ({
      name: r.name,
      state: r.state,
      problem: r.problem,
      lagMs: r.lagMs,
      position: r.positionText,
      lastCheck: r.lastCheck,
    }))
  }

  #eligible(exclude: ReadonlySet<Node>): readonly Replica[] {
    // Read on every query and changed only by health checks and failures: kept until a state changes.
    this.#up ??= this.#replicas.filter((replica) => replica.state === 'up')
    return exclude.size === 0 ? this.#up : this.#up.filter((replica) => !exclude.has(replica.node))
  }

  #find(node: Node): Replica | undefined {
    return this.#replicas.find((replica) => replica.node === node)
  }

  #transition(replica: Replica, state: ReplicaState, cause: unknown, reason: DrainReason = 'lag'): void {
    const before = replica.state
    if (state === 'down' && before === 'down') {
      // Still down: the latest cause is shown, with no new event; the failures of the reads that the cut
      // below ended are kysely-rw's own doing and say nothing new.
      if (!isCutError(cause)) replica.problem = problemOf(cause)
      return
    }
    const problemBefore = replica.problem
    replica.state = state
    if (before !== state) this.#up = undefined
    replica.drainReason = state === 'lagging' ? reason : undefined
    replica.problem = state === 'up' ? null : state === 'lagging' ? DRAIN_PROBLEMS[reason] : problemOf(cause)
    if (state === 'down') replica.position = undefined
    if (before === state && (state === 'up' || state === 'lagging' || problemBefore === replica.problem)) return
    if (state === 'down') {
      this.telemetry.emit({ type: 'down', replica: replica.name, error: replica.problem ?? '' })
      // In-flight reads on a node that hangs would wait until TCP gives up: cut them, they run elsewhere.
      // After the event, so that it names the cause and not the cut.
      replica.node.cut(cutError(`${replica.name} was declared down: ${replica.problem}`))
    } else if (state === 'lagging') {
      this.telemetry.emit({ type: 'drain', replica: replica.name, lagMs: replica.lagMs, reason })
    } else if (state === 'up') {
      this.telemetry.emit({ type: 'readmit', replica: replica.name })
    } else if (state !== 'primary') {
      this.telemetry.emit({ type: 'misconfigured', replica: replica.name, state, detail: replica.problem ?? '' })
    }
  }
}

const DRAIN_PROBLEMS: Record<DrainReason, string> = {
  lag: 'lags past maxReplicaLagMs',
  'unknown-lag': 'does not report its replay position, so its lag is unknown',
  migration: "has not applied the primary's latest migration",
}

function problemOf(cause: unknown): string {
  return typeof cause === 'string' ? cause : redactSecrets(messageOf(cause))
}

/** True when `now` is past `before`: the replica replayed something since. */
function movedOn(before: Position | undefined, now: Position): boolean {
  return before === undefined || !hasReached(before, now)
}

import { CompiledQuery, type DatabaseConnection } from 'kysely'
import { parsePosition } from '../consistency/position.js'
import type { WalLayout } from '../consistency/wal-layout.js'
import type { DialectSupport, Probe, ReplicationStatements } from '../dialects/dialect.js'
import { cutError } from '../dialects/sockets.js'
import type { Node } from '../driver/node.js'
import { messageOf, redactSecrets } from '../errors.js'
import type { Telemetry } from '../events.js'
import type { CheckResult, ReplicaPool } from '../routing/replica-pool.js'
import { LagClock } from './lag-clock.js'
import { type CheckOutcome, NodeMonitor } from './node-monitor.js'

/** A server that may be the primary: writes go to the one that is, re-decided every round. */
export interface Candidate {
  /** Host, port and database (never credentials); matches a replica's `server` when both name one server. */
  readonly server: string | undefined
  readonly write: Node
  /** The same server in read-only sessions: where reads fall back to while it is the primary. */
  readonly read: Node
  /** Where its checks run. */
  readonly monitor: Node
}

/** A replica and the node its checks run on. */
export interface MonitoredReplica {
  readonly server: string | undefined
  readonly node: Node
  readonly monitor: Node
}

// Consecutive missed checks after which the primary's connections are cut.
const PRIMARY_MISSES = 2

export interface TopologyOptions {
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly historyMs: number
  /** Kysely's migration table, compared between primary and replicas; undefined: not compared. */
  readonly migrationTable: string | undefined
}

/** A probe and when it ran (performance.now()): positions compare only between probes known to be in order. */
interface TimedProbe {
  readonly probe: Probe
  /** Just before the probe was sent. */
  readonly sentAt: number
  /** Just after its answer arrived. */
  readonly receivedAt: number
}

interface CandidateCheck extends TimedProbe {
  /** The migration it applied last, when it is writable and has the table. */
  readonly migration: string | undefined
}

interface ReplicaCheck extends TimedProbe {
  readonly missingMigration: boolean
  /** Why writes through the replica's user would get past its read_only (MySQL/MariaDB SUPER), if they would. */
  readonly bypass: string | undefined
}

/**
 * Which server is the primary now, whether each replica belongs to it, and how far behind each one is.
 * Every node has a monitor of its own (its own timer and deadline), so one that hangs stalls no other.
 * The cluster identity session tokens carry is re-read on every round, so a promotion makes tokens from
 * before it foreign at once.
 */
export class Topology {
  readonly #monitors: NodeMonitor<unknown>[] = []
  readonly #checks = new Map<Candidate, CandidateCheck | undefined>()
  /** Consecutive checks each candidate did not answer in time. */
  readonly #missed = new Map<Candidate, number>()
  readonly #clock: LagClock
  #current: Candidate | undefined
  /** The last candidate seen taking writes: a change from it is a failover. */
  #lastPrimary: Candidate | undefined
  /**
   * Candidates a failover replaced, each with the one that replaced it: never chosen again while they take
   * writes (a restarted old primary that still thinks it is one), until a check sees them read-only.
   */
  readonly #replaced = new Map<Candidate, string>()
  /** Candidates reported as taking writes beside the primary (split brain), until they stop. */
  readonly #splitReported = new Set<Candidate>()
  #primaryProbe: Probe | undefined
  #latestMigration: string | undefined
  #cluster: string | undefined
  #primaryDown = false
  #started = false
  #statements: ReplicationStatements | undefined
  /** Each replica's last probe, to compare with a later probe of the primary. */
  readonly #replicaProbes = new Map<MonitoredReplica, TimedProbe>()
  /** Per monitor connection: whether its user bypasses read_only (asked once per connection). */
  readonly #bypass = new WeakMap<DatabaseConnection, Promise<string | undefined>>()
  /**
   * Replicas a later probe of the primary showed to follow another history, and why. Once the primary has
   * written past them, positions no longer show it, and nothing a replica exposes without privileges says
   * that it was pointed back at this primary (after a restart it may even report less than it had replayed):
   * the verdict stands for the life of these backends.
   */
  readonly #foreign = new Map<MonitoredReplica, string>()
  /** Replicas a probe of the current primary sent after theirs found to follow it. */
  readonly #confirmed = new Set<MonitoredReplica>()
  /** Each replica's checks, counted: a check reported late never overwrites a later one. */
  readonly #checkCounts = new Map<MonitoredReplica, number>()

  constructor(
    private readonly support: DialectSupport,
    private readonly candidates: readonly Candidate[],
    private readonly replicas: readonly MonitoredReplica[],
    private readonly pool: ReplicaPool,
    private readonly telemetry: Telemetry,
    private readonly options: TopologyOptions,
  ) {
    this.#clock = new LagClock(options.historyMs)
    // One candidate is the primary from the start. Of several, none is until each has answered (or missed)
    // its first check: the first to answer may be an old primary a failover replaced. Writes wait for that
    // round, which ends within the check deadline.
    this.#current = candidates.length === 1 ? candidates[0] : undefined
    this.#lastPrimary = candidates[0]
    for (const candidate of candidates) {
      this.#monitors.push(
        this.#monitor(
          candidate.monitor,
          (connection) => this.#checkCandidate(connection),
          (outcome) => this.#candidateChecked(candidate, outcome),
        ),
      )
    }
    for (const replica of replicas) {
      this.#monitors.push(
        this.#monitor(
          replica.monitor,
          (connection) => this.#checkReplica(connection),
          (outcome) => this.#replicaChecked(replica, outcome),
        ),
      )
    }
  }

  /** The candidate writes go to; undefined while none of several is known to be a primary. */
  get primary(): Candidate | undefined {
    return this.#current
  }

  /**
   * The one primary candidate has missed its last checks (as many as cut its connections): it hangs.
   * Writes then fail at once instead of each waiting on it for a deadline; several candidates need no
   * such rule, since a primary that misses its checks is no longer chosen.
   */
  get primaryUnanswered(): boolean {
    const only = this.candidates.length === 1 ? this.candidates[0] : undefined
    return only !== undefined && (this.#missed.get(only) ?? 0) >= PRIMARY_MISSES
  }

  /** The current primary's identity (system id and timeline, or server and domain), once known. */
  get cluster(): string | undefined {
    return this.#cluster
  }

  /** How the current primary lays out its WAL (PostgreSQL), once known. */
  get walLayout(): WalLayout | undefined {
    return this.#primaryProbe?.walLayout
  }

  /** Checks matter where there is something to decide: replicas to measure, or a primary to choose. */
  get needed(): boolean {
    return this.replicas.length > 0 || this.candidates.length > 1
  }

  start(): void {
    if (this.#started || !this.needed) return
    this.#started = true
    const candidates = this.#monitors.slice(0, this.candidates.length)
    for (const monitor of candidates) monitor.start()
    // Replicas are measured against the primary: their first check waits for the primary's first
    // (which ends within its deadline, also when the primary hangs).
    void Promise.all(candidates.map((monitor) => monitor.checkNow())).then(() => {
      if (!this.#started) return
      for (const monitor of this.#monitors.slice(this.candidates.length)) monitor.start()
    })
  }

  async stop(): Promise<void> {
    this.#started = false
    await Promise.all(this.#monitors.map((monitor) => monitor.stop()))
  }

  /**
   * One round of the candidates' checks now (joining those under way): what a write that has no primary
   * waits for. Resolves when every candidate has reported, within the check deadline.
   */
  async checkNow(): Promise<void> {
    await Promise.all(this.#monitors.slice(0, this.candidates.length).map((monitor) => monitor.checkNow()))
  }

  /**
   * A write's connection to the primary failed: with several candidates, look again at once. Resolves
   * with the primary found (possibly the same one).
   */
  async primaryFailed(candidate: Candidate): Promise<Candidate | undefined> {
    if (this.candidates.length > 1 && this.#current === candidate) await this.checkNow()
    return this.#current
  }

  #monitor<T>(
    node: Node,
    check: (connection: DatabaseConnection) => Promise<T>,
    report: (outcome: CheckOutcome<T>) => void,
  ): NodeMonitor<unknown> {
    return new NodeMonitor(node, check, this.options.intervalMs, this.options.timeoutMs, report) as NodeMonitor<unknown>
  }

  async #probe(connection: DatabaseConnection): Promise<TimedProbe> {
    const statements = await this.support.replication(connection)
    this.#statements = statements
    const sentAt = performance.now()
    const { rows } = await connection.executeQuery<Record<string, unknown>>(CompiledQuery.raw(statements.probe))
    return { probe: statements.readProbe(rows[0] ?? {}), sentAt, receivedAt: performance.now() }
  }

  async #checkCandidate(connection: DatabaseConnection): Promise<CandidateCheck> {
    const timed = await this.#probe(connection)
    // A migration table that cannot be read says nothing about whether the server is the primary.
    const migration = timed.probe.writable
      ? await this.#latestMigrationOn(connection).catch(() => undefined)
      : undefined
    return { ...timed, migration }
  }

  async #checkReplica(connection: DatabaseConnection): Promise<ReplicaCheck> {
    const timed = await this.#probe(connection)
    const { probe } = timed
    const latest = this.#latestMigration
    const missingMigration = !probe.writable && latest !== undefined && !(await this.#hasMigration(connection, latest))
    return { ...timed, missingMigration, bypass: probe.writable ? undefined : await this.#bypassOf(connection) }
  }

  /** Whether the replica's user can write past read_only: asked once per monitor connection, as reads do. */
  #bypassOf(connection: DatabaseConnection): Promise<string | undefined> {
    const ask = this.#statements?.readOnlyBypass
    if (!ask) return Promise.resolve(undefined)
    let known = this.#bypass.get(connection)
    if (!known) {
      known = ask(connection)
      this.#bypass.set(connection, known)
      // Not known after all: asked again on the next check.
      known.catch(() => this.#bypass.delete(connection))
    }
    return known
  }

  #candidateChecked(candidate: Candidate, outcome: CheckOutcome<CandidateCheck>): void {
    this.#checks.set(candidate, outcome.ok ? outcome.value : undefined)
    // Seen read-only (it rejoined as a replica): it may be promoted again one day.
    if (outcome.ok && !outcome.value.probe.writable) this.#replaced.delete(candidate)
    const missed = !outcome.ok && isTimeout(outcome.error) ? (this.#missed.get(candidate) ?? 0) + 1 : 0
    this.#missed.set(candidate, missed)
    if (missed >= PRIMARY_MISSES) {
      // Writes in flight on a primary that hangs would wait until TCP gives up: they fail now, as
      // outcome unknown, instead. Not on one missed check: a write cut is a write whose outcome is lost.
      // Reads that fell back to it (on its read-only view) would wait as long: they fail too. Any candidate:
      // of several, one that missed a check is no longer the primary, but what it was sent still hangs.
      const reason = cutError(`${candidate.write.name} did not answer ${missed} health checks in time`)
      candidate.write.cut(reason)
      candidate.read.cut(reason)
    }
    this.#decide(outcome.ok ? undefined : outcome.error)
  }

  #decide(error: unknown): void {
    // Of several candidates, none is chosen before each has reported once.
    if (this.candidates.some((c) => !this.#checks.has(c))) return
    const writable = this.candidates.filter((c) => this.#checks.get(c)?.probe.writable)
    const stale = this.#stalePrimaries(writable)
    const eligible = writable.filter((c) => !stale.has(c))
    const current = this.#current
    const next = current && eligible.includes(current) ? current : eligible[0]
    this.#reportSplitBrain(writable, next, stale)
    if (next === undefined) {
      // One candidate stays the primary whatever its checks say: there is nowhere else for writes to go.
      if (this.candidates.length > 1) this.#current = undefined
      if (!this.#primaryDown) {
        this.#primaryDown = true
        const why =
          stale.size > 0
            ? `only old primaries take writes: ${[...stale.values()].join('; ')}`
            : error === undefined
              ? 'no candidate takes writes'
              : redactSecrets(messageOf(error))
        this.telemetry.emit({
          type: 'primary-down',
          node: (current ?? this.#lastPrimary ?? this.candidates[0])?.write.name ?? 'primary',
          error: why,
        })
      }
      return
    }
    if (this.#primaryDown) {
      this.#primaryDown = false
      this.telemetry.emit({ type: 'primary-up', node: next.write.name })
    }
    if (next !== current) this.#current = next
    if (next !== this.#lastPrimary) {
      // Positions of a new primary do not compare with the old one's timing.
      this.#clock.reset()
      const from = this.#lastPrimary
      if (from) {
        this.telemetry.emit({ type: 'primary-changed', from: from.write.name, to: next.write.name })
        // Replaced: should it come back taking writes, it is an old primary, not this one.
        this.#replaced.set(from, next.write.name)
      }
      this.#replaced.delete(next)
      this.#lastPrimary = next
      // Followed the old primary: whether each follows this one is for its probes to show again.
      this.#confirmed.clear()
    }
    const check = this.#checks.get(next) as CandidateCheck
    this.#primaryProbe = check.probe
    this.#latestMigration = check.migration
    this.#cluster = check.probe.cluster ?? this.#cluster
    const position = parsePosition(check.probe.position)
    if (position) this.#clock.sample(position, Date.now())
    this.#compareReplicas(check)
  }

  /**
   * Candidates that take writes but must not get them, and why: one a failover replaced that has not been
   * seen read-only since (an old primary restarted as one), or one on an older history than another
   * writable candidate (PostgreSQL: an earlier timeline), also in a process that never saw the failover.
   */
  #stalePrimaries(writable: readonly Candidate[]): Map<Candidate, string> {
    const stale = new Map<Candidate, string>()
    for (const candidate of writable) {
      const probe = (this.#checks.get(candidate) as CandidateCheck).probe
      for (const other of writable) {
        if (other === candidate) continue
        const newer = this.#statements?.supersedes?.((this.#checks.get(other) as CandidateCheck).probe, probe)
        if (newer) {
          stale.set(candidate, `${candidate.write.name} takes writes but ${newer} than ${other.write.name}`)
          break
        }
      }
      const by = this.#replaced.get(candidate)
      if (!stale.has(candidate) && by !== undefined) {
        stale.set(
          candidate,
          `${candidate.write.name} takes writes, but a failover replaced it with ${by} and it has not been seen ` +
            'read-only since',
        )
      }
    }
    return stale
  }

  /** Once per episode: a candidate takes writes beside the primary (split brain); writes go to one only. */
  #reportSplitBrain(
    writable: readonly Candidate[],
    primary: Candidate | undefined,
    stale: Map<Candidate, string>,
  ): void {
    for (const candidate of this.#splitReported) {
      if (candidate === primary || !writable.includes(candidate)) this.#splitReported.delete(candidate)
    }
    if (primary === undefined) return
    for (const candidate of writable) {
      if (candidate === primary || this.#splitReported.has(candidate)) continue
      this.#splitReported.add(candidate)
      this.telemetry.emit({
        type: 'split-brain',
        node: candidate.write.name,
        primary: primary.write.name,
        detail:
          stale.get(candidate) ??
          `${candidate.write.name} takes writes too, and nothing the servers expose says which is the newer ` +
            `primary: writes stay on ${primary.write.name}. Make the other read-only (or stop it).`,
      })
    }
  }

  /**
   * Positions compare only against a primary probed after the replica answered, or they race: a replica
   * may well be ahead of a primary position read before it.
   */
  #compareReplicas(primary: TimedProbe): void {
    const now = new Date()
    for (const replica of this.replicas) {
      const last = this.#replicaProbes.get(replica)
      if (!last || last.receivedAt >= primary.sentAt || last.probe.writable) continue
      // The primary itself, listed as a replica too (promoted): its next check says `primary`.
      if (replica.server !== undefined && replica.server === this.#current?.server) continue
      const verdict = this.#statements?.notAReplicaOf(last.probe, primary.probe, true)
      if (verdict === undefined) {
        if (!this.#foreign.has(replica)) this.#confirmed.add(replica)
        continue
      }
      const detail = `not a replica of this primary: ${verdict}`
      this.#confirmed.delete(replica)
      this.#foreign.set(replica, detail)
      this.pool.update(replica.node, { ok: 'misconfigured', state: 'not-a-replica', detail }, now)
    }
  }

  #replicaChecked(replica: MonitoredReplica, outcome: CheckOutcome<ReplicaCheck>): void {
    const count = (this.#checkCounts.get(replica) ?? 0) + 1
    this.#checkCounts.set(replica, count)
    if (outcome.ok && this.#unconfirmedAhead(replica, outcome.value.probe)) {
      // Ahead of the primary's last probe, which was sent before this one: a replica that replicated quickly,
      // or one of another history. Probes of the primary sent after this one tell, before it is reported
      // (the first one this check joins may have been sent before).
      this.#replicaProbes.set(replica, outcome.value)
      void this.checkNow()
        .then(() => (this.#decided(replica) ? undefined : this.checkNow()))
        .catch(() => {})
        .then(() => {
          if (this.#checkCounts.get(replica) === count) this.#report(replica, outcome)
        })
      return
    }
    this.#report(replica, outcome)
  }

  #report(replica: MonitoredReplica, outcome: CheckOutcome<ReplicaCheck>): void {
    const now = new Date()
    this.pool.update(replica.node, this.#replicaResult(replica, outcome, now.getTime()), now)
  }

  /** Not yet shown to follow the current primary, and past the position of its last probe. */
  #unconfirmedAhead(replica: MonitoredReplica, probe: Probe): boolean {
    const primary = this.#primaryProbe
    if (!primary || probe.writable || this.#confirmed.has(replica) || this.#foreign.has(replica)) return false
    return this.#statements?.notAReplicaOf(probe, primary, true) !== undefined
  }

  #decided(replica: MonitoredReplica): boolean {
    return this.#confirmed.has(replica) || this.#foreign.has(replica)
  }

  #replicaResult(replica: MonitoredReplica, outcome: CheckOutcome<ReplicaCheck>, now: number): CheckResult {
    if (!outcome.ok) {
      if (isTimeout(outcome.error) || this.support.isConnectionError(outcome.error)) {
        return { ok: false, error: outcome.error }
      }
      // Reachable but unable to say where it is: lag unknown, so it is drained.
      return {
        ok: true,
        position: undefined,
        positionText: null,
        lagMs: null,
        missingMigration: false,
        lagUnknowable: false,
      }
    }
    const { probe, missingMigration, bypass } = outcome.value
    this.#replicaProbes.set(replica, outcome.value)
    if (probe.writable) {
      const isPrimary = replica.server !== undefined && replica.server === this.#current?.server
      return isPrimary
        ? { ok: 'misconfigured', state: 'primary', detail: 'it is the current primary' }
        : {
            ok: 'misconfigured',
            state: 'writable',
            detail:
              'it takes writes (PostgreSQL: not in recovery; MySQL/MariaDB: read_only is off), so it is no replica',
          }
    }
    if (bypass !== undefined) {
      return {
        ok: 'misconfigured',
        state: 'writable',
        detail:
          `its user has ${bypass}, which bypasses read_only: writes through it would diverge the replica, so ` +
          'it serves no reads. Connect to replicas as a user without SUPER or READ ONLY ADMIN.',
      }
    }
    const primary = this.#primaryProbe
    const verdict = primary ? this.#statements?.notAReplicaOf(probe, primary, false) : undefined
    const foreign = verdict ? `not a replica of this primary: ${verdict}` : this.#foreign.get(replica)
    if (foreign) return { ok: 'misconfigured', state: 'not-a-replica', detail: foreign }
    const positionText = probe.position === '' ? null : probe.position
    const position = parsePosition(positionText)
    const lagMs = position ? this.#clock.lagOf(position, now) : null
    const lagUnknowable = lagMs === null && position !== undefined && this.#primaryDown
    return { ok: true, position, positionText, lagMs, missingMigration, lagUnknowable }
  }

  /** The migration the primary applied last; undefined when none was (or there is no table). */
  async #latestMigrationOn(connection: DatabaseConnection): Promise<string | undefined> {
    const timestamp = this.support.quote('timestamp')
    const row = await this.#onMigrationTable(
      connection,
      (table) => `select name from ${table} order by ${timestamp} desc, name desc limit 1`,
    )
    return typeof row?.name === 'string' ? row.name : undefined
  }

  /** Whether the replica has applied `migration` (a missing table means it has not). */
  async #hasMigration(connection: DatabaseConnection, migration: string): Promise<boolean> {
    const row = await this.#onMigrationTable(
      connection,
      (table) => `select count(*) as n from ${table} where name = ${this.support.placeholder}`,
      [migration],
    )
    return Number(row?.n ?? 0) > 0
  }

  /** One row from a query on the migration table; undefined where the table does not exist yet. */
  async #onMigrationTable(
    connection: DatabaseConnection,
    sql: (table: string) => string,
    parameters: unknown[] = [],
  ): Promise<Record<string, unknown> | undefined> {
    const table = this.options.migrationTable
    if (!table) return undefined
    try {
      const { rows } = await connection.executeQuery<Record<string, unknown>>(
        CompiledQuery.raw(sql(this.support.quote(table)), parameters),
      )
      return rows[0]
    } catch (error) {
      if (this.support.isMissingTable(error)) return undefined
      throw error
    }
  }
}

function isTimeout(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name
  return name === 'CheckTimeoutError' || name === 'AcquireTimeoutError'
}

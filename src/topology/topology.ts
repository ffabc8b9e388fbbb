import { CompiledQuery, type DatabaseConnection } from 'kysely'
import { parsePosition } from '../consistency/position.js'
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

interface CandidateCheck {
  readonly probe: Probe
  /** The migration it applied last, when it is writable and has the table. */
  readonly migration: string | undefined
}

interface ReplicaCheck {
  readonly probe: Probe
  readonly missingMigration: boolean
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
  #primaryProbe: Probe | undefined
  #latestMigration: string | undefined
  #cluster: string | undefined
  #primaryDown = false
  #started = false
  #statements: ReplicationStatements | undefined
  /** Each replica's last probe, to compare with a later probe of the primary. */
  readonly #replicaProbes = new Map<MonitoredReplica, { readonly probe: Probe; readonly at: number }>()
  /** Replicas a later probe of the primary showed to be no replica of it, and why. */
  readonly #foreign = new Map<MonitoredReplica, string>()

  constructor(
    private readonly support: DialectSupport,
    private readonly candidates: readonly Candidate[],
    private readonly replicas: readonly MonitoredReplica[],
    private readonly pool: ReplicaPool,
    private readonly telemetry: Telemetry,
    private readonly options: TopologyOptions,
  ) {
    this.#clock = new LagClock(options.historyMs)
    // Until the first round says otherwise, the first candidate is taken to be the primary.
    this.#current = candidates[0]
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

  /** The current primary's identity (system id and timeline, or server and domain), once known. */
  get cluster(): string | undefined {
    return this.#cluster
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

  /** One round of every check now; resolves when all have reported. */
  async checkNow(): Promise<void> {
    await Promise.all(this.#monitors.slice(0, this.candidates.length).map((monitor) => monitor.checkNow()))
    await Promise.all(this.#monitors.slice(this.candidates.length).map((monitor) => monitor.checkNow()))
  }

  /**
   * A write's connection to the primary failed: with several candidates, look again at once. Resolves
   * with the primary found (possibly the same one).
   */
  async primaryFailed(candidate: Candidate): Promise<Candidate | undefined> {
    if (this.candidates.length > 1 && this.#current === candidate) {
      await Promise.all(this.#monitors.slice(0, this.candidates.length).map((monitor) => monitor.checkNow()))
    }
    return this.#current
  }

  #monitor<T>(
    node: Node,
    check: (connection: DatabaseConnection) => Promise<T>,
    report: (outcome: CheckOutcome<T>) => void,
  ): NodeMonitor<unknown> {
    return new NodeMonitor(node, check, this.options.intervalMs, this.options.timeoutMs, report) as NodeMonitor<unknown>
  }

  async #probe(connection: DatabaseConnection): Promise<Probe> {
    const statements = await this.support.replication(connection)
    this.#statements = statements
    const { rows } = await connection.executeQuery<Record<string, unknown>>(CompiledQuery.raw(statements.probe))
    return statements.readProbe(rows[0] ?? {})
  }

  async #checkCandidate(connection: DatabaseConnection): Promise<CandidateCheck> {
    const probe = await this.#probe(connection)
    // A migration table that cannot be read says nothing about whether the server is the primary.
    const migration = probe.writable ? await this.#latestMigrationOn(connection).catch(() => undefined) : undefined
    return { probe, migration }
  }

  async #checkReplica(connection: DatabaseConnection): Promise<ReplicaCheck> {
    const probe = await this.#probe(connection)
    const latest = this.#latestMigration
    const missingMigration = !probe.writable && latest !== undefined && !(await this.#hasMigration(connection, latest))
    return { probe, missingMigration }
  }

  #candidateChecked(candidate: Candidate, outcome: CheckOutcome<CandidateCheck>): void {
    this.#checks.set(candidate, outcome.ok ? outcome.value : undefined)
    const missed = !outcome.ok && isTimeout(outcome.error) ? (this.#missed.get(candidate) ?? 0) + 1 : 0
    this.#missed.set(candidate, missed)
    if (missed >= PRIMARY_MISSES && this.#current === candidate) {
      // Writes in flight on a primary that hangs would wait until TCP gives up: they fail now, as
      // outcome unknown, instead. Not on one missed check: a write cut is a write whose outcome is lost.
      candidate.write.cut(cutError(`${candidate.write.name} did not answer ${missed} health checks in time`))
    }
    this.#decide(outcome.ok ? undefined : outcome.error)
  }

  #decide(error: unknown): void {
    const writable = this.candidates.filter((c) => this.#checks.get(c)?.probe.writable)
    const current = this.#current
    const next = current && writable.includes(current) ? current : writable[0]
    if (next === undefined) {
      // One candidate stays the primary whatever its checks say: there is nowhere else for writes to go.
      if (this.candidates.length > 1) this.#current = undefined
      const reported = this.candidates.every((c) => this.#checks.has(c))
      if (reported && !this.#primaryDown) {
        this.#primaryDown = true
        this.telemetry.emit({
          type: 'primary-down',
          node: (current ?? this.candidates[0])?.write.name ?? 'primary',
          error: error === undefined ? 'no candidate takes writes' : redactSecrets(messageOf(error)),
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
      if (from) this.telemetry.emit({ type: 'primary-changed', from: from.write.name, to: next.write.name })
      this.#lastPrimary = next
    }
    const check = this.#checks.get(next) as CandidateCheck
    this.#primaryProbe = check.probe
    this.#latestMigration = check.migration
    this.#cluster = check.probe.cluster ?? this.#cluster
    const now = Date.now()
    const position = parsePosition(check.probe.position)
    if (position) this.#clock.sample(position, now)
    this.#compareReplicas(check.probe, now)
  }

  /** Positions compare only against a primary probed later than the replica, or they race. */
  #compareReplicas(primary: Probe, now: number): void {
    for (const replica of this.replicas) {
      const last = this.#replicaProbes.get(replica)
      if (!last || last.at >= now || last.probe.writable) continue
      const verdict = this.#statements?.notAReplicaOf(last.probe, primary, true)
      if (verdict === undefined) {
        this.#foreign.delete(replica)
        continue
      }
      const detail = `not a replica of this primary: ${verdict}`
      this.#foreign.set(replica, detail)
      this.pool.update(replica.node, { ok: 'misconfigured', state: 'not-a-replica', detail }, new Date(now))
    }
  }

  #replicaChecked(replica: MonitoredReplica, outcome: CheckOutcome<ReplicaCheck>): void {
    const now = new Date()
    this.pool.update(replica.node, this.#replicaResult(replica, outcome, now.getTime()), now)
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
    const { probe, missingMigration } = outcome.value
    this.#replicaProbes.set(replica, { probe, at: now })
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

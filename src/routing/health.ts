import { CompiledQuery } from 'kysely'
import { hasReached, type Position, parsePosition } from '../consistency/position.js'
import type { DialectSupport, ReplicationStatements } from '../dialects/dialect.js'
import type { Node } from '../driver/node.js'
import type { ReplicaPool } from './replica-pool.js'

interface Sample {
  readonly at: number
  readonly position: Position
}

/**
 * Measures the primary and each replica on an interval: reachable or not, replay position, and lag.
 *
 * Lag comes from positions, not from replication status commands (which need privileges an app user
 * seldom has): the checker keeps the primary's recent positions with the time it saw them, and a
 * replica's lag is how long ago the primary first had a position the replica has not replayed.
 * Its precision is one interval. A replica that does not report its position counts as lagging.
 */
export class HealthChecker {
  #samples: Sample[] = []
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #cluster: string | undefined
  #primaryReachable = true

  constructor(
    private readonly support: DialectSupport,
    private readonly primary: Node,
    private readonly pool: ReplicaPool,
    private readonly intervalMs: number,
    private readonly historyMs: number,
    /** Kysely's migration table, compared between primary and replicas; undefined: not compared. */
    private readonly migrationTable: string | undefined,
  ) {}

  /** The primary's cluster identity (system id and timeline, or server and domain), once known. */
  get cluster(): string | undefined {
    return this.#cluster
  }

  start(): void {
    void this.checkNow()
    this.#timer = setInterval(() => void this.checkNow(), this.intervalMs)
    // Health checks alone must never keep a process alive.
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running
  }

  /** One round of checks; a round still running is joined rather than overlapped. */
  checkNow(): Promise<void> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #round(): Promise<void> {
    await this.#samplePrimary()
    const migration = await this.#latestMigration().catch(() => undefined)
    await Promise.all(this.pool.nodes.map((node) => this.#checkReplica(node, migration)))
  }

  /** The migration the primary applied last; undefined when none was (or there is no table). */
  async #latestMigration(): Promise<string | undefined> {
    if (!this.migrationTable) return undefined
    const timestamp = this.support.quote('timestamp')
    const row = await this.#onMigrationTable(
      this.primary,
      (table) => `select name from ${table} order by ${timestamp} desc, name desc limit 1`,
    )
    return typeof row?.name === 'string' ? row.name : undefined
  }

  /** Whether the replica has applied `migration` (a missing table means it has not). */
  async #hasMigration(node: Node, migration: string): Promise<boolean> {
    const row = await this.#onMigrationTable(
      node,
      (table) => `select count(*) as n from ${table} where name = ${this.support.placeholder}`,
      [migration],
    )
    return Number(row?.n ?? 0) > 0
  }

  /** One row from a query on the migration table; undefined where the table does not exist yet. */
  async #onMigrationTable(
    node: Node,
    sql: (table: string) => string,
    parameters: unknown[] = [],
  ): Promise<Record<string, unknown> | undefined> {
    try {
      return await this.#query(node, sql(this.support.quote(this.migrationTable as string)), parameters)
    } catch (error) {
      if (this.support.isMissingTable(error)) return undefined
      throw error
    }
  }

  async #samplePrimary(): Promise<void> {
    try {
      if (this.#cluster === undefined) {
        this.#cluster = String((await this.#query(this.primary, (r) => r.cluster)).id ?? '')
      }
      const position = parsePosition((await this.#query(this.primary, (r) => r.primaryPosition)).pos as string)
      this.#primaryReachable = true
      if (!position) return
      const now = Date.now()
      const last = this.#samples[this.#samples.length - 1]
      if (!last || !hasReached(last.position, position)) this.#samples.push({ at: now, position })
      // Keep enough history to measure lag past the budget, and always the latest sample.
      while (this.#samples.length > 1 && (this.#samples[0] as Sample).at < now - this.historyMs) this.#samples.shift()
    } catch {
      // The primary being down is for writes to report. Replicas are measured against history, and
      // one whose lag cannot be measured without the primary keeps serving reads.
      this.#primaryReachable = false
    }
  }

  async #checkReplica(node: Node, primaryMigration: string | undefined): Promise<void> {
    const now = new Date()
    try {
      const text = (await this.#query(node, (r) => r.replicaPosition)).pos
      const positionText = typeof text === 'string' && text !== '' ? text : null
      const position = parsePosition(positionText)
      const lagMs = position ? this.#lagOf(position, now.getTime()) : null
      const missingMigration = primaryMigration !== undefined && !(await this.#hasMigration(node, primaryMigration))
      const lagUnknowable = lagMs === null && position !== undefined && !this.#primaryReachable
      this.pool.update(node, { ok: true, position, positionText, lagMs, missingMigration, lagUnknowable }, now)
    } catch (error) {
      if (this.support.isConnectionError(error)) {
        this.pool.update(node, { ok: false, error }, now)
      } else {
        // Reachable but unable to say where it is: lag unknown, so it is drained.
        const result = {
          position: undefined,
          positionText: null,
          lagMs: null,
          missingMigration: false,
          lagUnknowable: false,
        }
        this.pool.update(node, { ok: true, ...result }, now)
      }
    }
  }

  #lagOf(position: Position, now: number): number | null {
    if (this.#samples.length === 0) return null
    const firstMissing = this.#samples.find((sample) => !hasReached(position, sample.position))
    return firstMissing ? now - firstMissing.at : 0
  }

  async #query(
    node: Node,
    sql: string | ((statements: ReplicationStatements) => string),
    parameters: unknown[] = [],
  ): Promise<Record<string, unknown>> {
    return node.withConnection(async (connection) => {
      const text = typeof sql === 'string' ? sql : sql(await this.support.replication(connection))
      const { rows } = await connection.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, parameters))
      return rows[0] ?? {}
    })
  }
}

// Benchmark 4: the replica is killed under a steady read load, then restarted. kysely-rw (defaults,
// health check every 1000 ms) and the naive peers read at the same time, each with its own loops, so
// that one kill is seen by all. Every read records when it ran, where (the server's port) and whether
// it failed; kysely-rw's events say when it drained and readmitted the replica.
import type { Kysely } from 'kysely'
import type { Backends } from '../../src/index.js'
import {
  type BackendEvent,
  drizzleReplicas,
  kyselyReplication,
  rwBackends,
  type Strategy,
  type UserHandle,
} from './clients.js'
import type { BenchDB, Family } from './db.js'
import { fmt, fmtInt, goal, type Headline, log, sleep, table } from './util.js'

export const FAILOVER = {
  loopsPerClient: 4,
  pauseMs: 5,
  healthCheckIntervalMs: 1000,
  beforeKillMs: 2000,
  downMs: 3000,
  /** After the restart: until kysely-rw reads from the replica again, at least this long, at most `maxAfterMs`. */
  minAfterMs: 1500,
  maxAfterMs: 20_000,
}

interface Read {
  readonly start: number
  readonly end: number
  readonly ok: boolean
  readonly onReplica: boolean
}

export interface ClientOutcome {
  readonly label: string
  readonly reads: number
  readonly failed: number
  /** Reads answered by the replica after the kill began (before it was restarted). */
  readonly replicaReadsWhileDown: number
  /** ms after the kill began: the last read that failed or was answered by the replica, while it was down. */
  readonly lastReplicaContactMs: number | null
  /** ms after the restart completed: the first read answered by the replica. */
  readmitMs: number | null
}

export interface FailoverResult {
  readonly family: string
  readonly killMs: number
  readonly restartMs: number
  readonly clients: ClientOutcome[]
  /** kysely-rw's events relative to the kill (down) and to the restart (readmit). */
  readonly downEventMs: number | null
  readonly readmitEventMs: number | null
  /** ms after the kill began: the last read kysely-rw routed to the replica. */
  readonly lastRouteMs: number | null
}

export async function runFailover(family: Family): Promise<FailoverResult> {
  const events: { at: number; event: BackendEvent }[] = []
  const rw: Backends<BenchDB> = rwBackends(family, {
    healthCheckIntervalMs: FAILOVER.healthCheckIntervalMs,
    onEvent: (event) => events.push({ at: performance.now(), event }),
  })
  const asKysely = (backend: unknown) => backend as Kysely<BenchDB>
  const rwStrategy: Strategy = {
    label: `kysely-rw \`db.read\` (health check every ${FAILOVER.healthCheckIntervalMs} ms)`,
    kind: 'naive',
    forUser: (user) => ({
      read: () =>
        asKysely(rw.read)
          .selectFrom('counters')
          .select(['value', family.serverPort().as('port')])
          .where('user_id', '=', user)
          .executeTakeFirst()
          .then((row) => (row ? { value: Number(row.value), port: Number(row.port) } : undefined)),
      write: async () => {},
    }),
    destroy: () => rw.destroy(),
  }
  const strategies: Strategy[] = [rwStrategy, await kyselyReplication(family), await drizzleReplicas(family)]
  const reads = new Map<string, Read[]>(strategies.map((s) => [s.label, []]))
  let running = true
  const loops = strategies.flatMap((strategy) =>
    Array.from({ length: FAILOVER.loopsPerClient }, async (_, i) => {
      const handle: UserHandle = strategy.forUser(i + 1)
      const record = reads.get(strategy.label) as Read[]
      while (running) {
        const start = performance.now()
        try {
          const row = await handle.read()
          record.push({
            start,
            end: performance.now(),
            ok: row !== undefined,
            onReplica: row?.port === family.replicaPort,
          })
        } catch {
          record.push({ start, end: performance.now(), ok: false, onReplica: false })
        }
        await sleep(FAILOVER.pauseMs)
      }
    }),
  )
  let killAt = 0
  let killedAt = 0
  let restartAt = 0
  let restartedAt = 0
  try {
    await sleep(FAILOVER.beforeKillMs)
    killAt = performance.now()
    await family.pair.killReplica()
    killedAt = performance.now()
    log(`failover ${family.label}: replica killed in ${fmt(killedAt - killAt, 0)} ms`)
    await sleep(FAILOVER.downMs)
    restartAt = performance.now()
    await family.pair.startReplica()
    restartedAt = performance.now()
    log(`failover ${family.label}: replica restarted in ${fmt(restartedAt - restartAt, 0)} ms`)
    const rwReads = reads.get(rwStrategy.label) as Read[]
    const deadline = restartedAt + FAILOVER.maxAfterMs
    while (performance.now() < deadline) {
      const back = rwReads.some((r) => r.start >= restartedAt && r.onReplica)
      if (back && performance.now() - restartedAt >= FAILOVER.minAfterMs) break
      await sleep(50)
    }
  } finally {
    running = false
    await Promise.allSettled(loops)
    await Promise.allSettled(strategies.map((s) => s.destroy()))
    // Whatever happened, leave a running, caught-up replica for the next benchmark.
    if (restartedAt === 0 && killAt !== 0) await family.pair.startReplica().catch(() => {})
  }
  await family.pair.waitForReplicaCatchUp(30_000)

  const clients = strategies.map((strategy): ClientOutcome => {
    const list = reads.get(strategy.label) as Read[]
    const whileDown = list.filter((r) => r.end >= killAt && r.start < restartAt)
    const contact = whileDown.filter((r) => !r.ok || r.onReplica)
    const readmitted = list.find((r) => r.start >= restartedAt && r.onReplica)
    return {
      label: strategy.label,
      reads: list.length,
      failed: list.filter((r) => !r.ok).length,
      replicaReadsWhileDown: whileDown.filter((r) => r.onReplica && r.start >= killedAt).length,
      lastReplicaContactMs: contact.length ? Math.max(...contact.map((r) => r.end)) - killAt : null,
      readmitMs: readmitted ? readmitted.start - restartedAt : null,
    }
  })
  const relative = (type: BackendEvent['type'], from: number) => {
    const found = events.find((e) => e.event.type === type && e.at >= from)
    return found ? found.at - from : null
  }
  const routes = events.filter(
    (e) =>
      e.event.type === 'route' &&
      e.at >= killAt &&
      e.at < restartAt &&
      e.event.node.includes(String(family.replicaPort)),
  )
  const result: FailoverResult = {
    family: `${family.label} ${family.version}`,
    killMs: killedAt - killAt,
    restartMs: restartedAt - restartAt,
    clients,
    downEventMs: relative('down', killAt),
    readmitEventMs: relative('readmit', restartedAt),
    lastRouteMs: routes.length ? (routes[routes.length - 1]?.at ?? killAt) - killAt : null,
  }
  log(
    `failover ${family.label}: ${clients.map((c) => `${c.label}: ${c.failed} failed of ${c.reads}, readmit ${fmt(c.readmitMs, 0)} ms`).join('; ')}`,
  )
  return result
}

export function renderFailover(results: readonly FailoverResult[]): string {
  const out: string[] = []
  out.push(
    `Each client reads in ${FAILOVER.loopsPerClient} loops (one read, ${FAILOVER.pauseMs} ms pause), all clients at once. ` +
      `After ${FAILOVER.beforeKillMs / 1000} s the replica is killed (PostgreSQL: \`pg_ctl stop -m immediate\`; ` +
      `MariaDB: SIGKILL), ${FAILOVER.downMs / 1000} s later restarted; the run ends once kysely-rw reads from the replica ` +
      `again (at least ${FAILOVER.minAfterMs / 1000} s after the restart). Times are from the start of the kill command ` +
      '(which itself takes the time shown) or from the moment the restarted replica accepts connections. Goals: 0 failed ' +
      `reads; no read sent to the dead replica after one health interval (${FAILOVER.healthCheckIntervalMs} ms).`,
  )
  for (const result of results) {
    out.push(`\n#### ${result.family}\n`)
    out.push(
      `Kill took ${fmt(result.killMs, 0)} ms, restart ${fmt(result.restartMs, 0)} ms. kysely-rw: \`down\` event ` +
        `${fmt(result.downEventMs, 0)} ms after the kill began; last read routed to the replica ` +
        `${result.lastRouteMs === null ? 'none after the kill began' : `${fmt(result.lastRouteMs, 0)} ms after the kill began`}; ` +
        `\`readmit\` event ${fmt(result.readmitEventMs, 0)} ms after the restart.\n`,
    )
    out.push(
      table(
        [
          'client',
          'reads',
          'failed reads',
          'last contact with the dead replica (ms after kill began)',
          'first replica read after restart (ms)',
        ],
        result.clients.map((c) => [
          c.label,
          fmtInt(c.reads),
          fmtInt(c.failed),
          c.lastReplicaContactMs === null ? 'none' : fmt(c.lastReplicaContactMs, 0),
          c.readmitMs === null ? 'not within the run' : fmt(c.readmitMs, 0),
        ]),
      ),
    )
    const rw = result.clients[0]
    if (rw) {
      const stopMs = Math.max(rw.lastReplicaContactMs ?? 0, result.lastRouteMs ?? 0)
      out.push(
        `\nGoals (kysely-rw): failed reads ${goal(rw.failed === 0)} (${rw.failed}); reads stop going to the dead replica ` +
          `within one health interval ${goal(stopMs <= FAILOVER.healthCheckIntervalMs)} (${fmt(stopMs, 0)} ms).`,
      )
    }
  }
  out.push(
    '\n"Last contact" is the end of the last read that either failed or was answered by the replica while it was down ' +
      '(reads in flight when the kill began can still be answered by it). For the naive peers, which do not track ' +
      'replica health, every read routed to the dead replica fails until it is back.',
  )
  return out.join('\n')
}

export function failoverMisses(results: readonly FailoverResult[]): string[] {
  return results.flatMap((result) => {
    const rw = result.clients[0]
    if (!rw) return []
    const misses: string[] = []
    if (rw.failed > 0) misses.push(`${result.family}: failover: kysely-rw failed ${rw.failed} reads (goal 0)`)
    const stopMs = Math.max(rw.lastReplicaContactMs ?? 0, result.lastRouteMs ?? 0)
    if (stopMs > FAILOVER.healthCheckIntervalMs) {
      misses.push(
        `${result.family}: failover: kysely-rw kept contacting the dead replica for ${fmt(stopMs, 0)} ms (goal ≤ ${FAILOVER.healthCheckIntervalMs} ms)`,
      )
    }
    return misses
  })
}

export function failoverHeadlines(results: readonly FailoverResult[]): Headline[] {
  return results.flatMap((result) => {
    const rw = result.clients[0]
    if (!rw) return []
    const stopMs = Math.max(rw.lastReplicaContactMs ?? 0, result.lastRouteMs ?? 0)
    const peers = result.clients
      .slice(1)
      .map((c) => `${c.failed}`)
      .join(' and ')
    return [
      {
        benchmark: `failover, ${result.family}: kysely-rw`,
        measured:
          `${rw.failed} failed reads (naive peers: ${peers}); no read to the dead replica after ${fmt(stopMs, 0)} ms; ` +
          `readmitted ${fmt(rw.readmitMs, 0)} ms after the restart`,
        goal: `0 failed; ≤ ${FAILOVER.healthCheckIntervalMs} ms`,
        met: rw.failed === 0 && stopMs <= FAILOVER.healthCheckIntervalMs,
      },
    ]
  })
}

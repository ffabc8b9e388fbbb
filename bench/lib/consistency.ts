// Benchmark 3: consistency vs offload, with real constant lag on the replica. 16 virtual users, each
// 90% reads / 10% writes of its own counter, with think time between operations. A read is stale when
// it returns less than the value the user's last committed write set. Where a read ran comes from the
// server itself (its port, selected with the row).
import {
  drizzleReplicas,
  kyselyReplication,
  primaryOnly,
  railsDelay,
  rwNaive,
  rwSessions,
  type Strategy,
  type StrategyFactory,
} from './clients.js'
import { type Family, measureVisibilityDelay, resetCounters } from './db.js'
import { fmt, fmtInt, goal, type Headline, log, median, pct, quantileSorted, sleep, table } from './util.js'

export const CONSISTENCY = {
  users: 16,
  writeShare: 0.1,
  /** Think time before each operation: uniform in [0, 2 × mean] ms. */
  thinkMeanMs: 25,
  /** Measured time per strategy. */
  durationMs: 6000,
  /** Of the naive routing's replica share, at least this much; and 0 stale reads. */
  goalShare: 0.9,
  /** A short session wait, to show the other side of the trade-off. */
  shortWaitMs: 50,
}

const STRATEGIES: readonly StrategyFactory[] = [
  primaryOnly,
  kyselyReplication,
  drizzleReplicas,
  rwNaive(),
  railsDelay(2000),
  rwSessions('kysely-rw sessions (defaults: `readYourWrites.maxWaitMs` 1000)'),
  rwSessions(`kysely-rw sessions, \`readYourWrites.maxWaitMs\` ${CONSISTENCY.shortWaitMs}`, {
    readYourWrites: { maxWaitMs: CONSISTENCY.shortWaitMs },
  }),
]

export interface StrategyRow {
  readonly label: string
  readonly kind: Strategy['kind']
  readonly reads: number
  readonly writes: number
  readonly replicaShare: number
  /** Reads answered by the replica with the user's latest write: what a replica could serve consistently. */
  readonly freshReplicaShare: number
  readonly stale: number
  readonly errors: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly rw?: { waits: number; waitMs: number; fallbacks: number }
}

export interface ConsistencyResult {
  readonly family: string
  readonly lag: string
  readonly visibilityMs: number[]
  readonly rows: StrategyRow[]
}

export async function runConsistency(family: Family): Promise<ConsistencyResult> {
  const lag = await family.setLag()
  try {
    const visibilityMs = await measureVisibilityDelay(family, family.name === 'postgres' ? 5 : 3)
    log(
      `consistency ${family.label}: a write becomes visible on the replica after ${visibilityMs.map((v) => fmt(v, 0)).join(', ')} ms`,
    )
    const rows: StrategyRow[] = []
    for (const factory of STRATEGIES) {
      await resetCounters(family)
      const strategy = await factory(family)
      try {
        const row = await drive(family, strategy)
        rows.push(row)
        log(
          `consistency ${family.label} ${strategy.label}: replica ${pct(row.replicaShare)}, stale ${row.stale}, ` +
            `p50 ${fmt(row.p50Ms)} ms, p99 ${fmt(row.p99Ms)} ms, ${row.reads} reads`,
        )
      } finally {
        await strategy.destroy()
      }
    }
    return { family: `${family.label} ${family.version}`, lag, visibilityMs, rows }
  } finally {
    await family.clearLag()
  }
}

async function drive(family: Family, strategy: Strategy): Promise<StrategyRow> {
  const latencies: number[] = []
  let reads = 0
  let writes = 0
  let onReplica = 0
  let freshOnReplica = 0
  let stale = 0
  let errors = 0
  const before = strategy.stats?.()
  const deadline = performance.now() + CONSISTENCY.durationMs
  const think = () => sleep(Math.random() * 2 * CONSISTENCY.thinkMeanMs)
  await Promise.all(
    Array.from({ length: CONSISTENCY.users }, async (_, i) => {
      const user = i + 1
      const handle = strategy.forUser(user)
      // What this user last wrote and saw committed; counters start at 0.
      let committed = 0
      while (performance.now() < deadline) {
        await think()
        if (Math.random() < CONSISTENCY.writeShare) {
          const value = committed + 1
          try {
            await handle.write(value)
            committed = value
            writes++
          } catch {
            errors++
          }
          continue
        }
        const started = performance.now()
        try {
          const row = await handle.read()
          latencies.push(performance.now() - started)
          reads++
          if (row === undefined) errors++
          else {
            const fresh = row.value >= committed
            if (row.port === family.replicaPort) {
              onReplica++
              if (fresh) freshOnReplica++
            }
            if (!fresh) stale++
          }
        } catch {
          errors++
        }
      }
    }),
  )
  const sorted = latencies.sort((a, b) => a - b)
  const after = strategy.stats?.()
  return {
    label: strategy.label,
    kind: strategy.kind,
    reads,
    writes,
    replicaShare: reads ? onReplica / reads : Number.NaN,
    freshReplicaShare: reads ? freshOnReplica / reads : Number.NaN,
    stale,
    errors,
    p50Ms: quantileSorted(sorted, 0.5),
    p99Ms: quantileSorted(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
    ...(before && after
      ? {
          rw: {
            waits: after.waits - before.waits,
            waitMs: after.waitMs - before.waitMs,
            fallbacks: after.fallbacks - before.fallbacks,
          },
        }
      : {}),
  }
}

const isDefaultSessions = (row: StrategyRow) => row.kind === 'session' && row.label.includes('defaults')
const naiveReference = (result: ConsistencyResult) => result.rows.find((r) => r.label.includes('kysely-replication'))

export function renderConsistency(results: readonly ConsistencyResult[]): string {
  const out: string[] = []
  out.push(
    `${CONSISTENCY.users} virtual users, each in a loop: think ${0}–${2 * CONSISTENCY.thinkMeanMs} ms (uniform), then ` +
      `${(1 - CONSISTENCY.writeShare) * 100}% read its own counter / ${CONSISTENCY.writeShare * 100}% write it (+1); ` +
      `${CONSISTENCY.durationMs / 1000} s per strategy, counters reset between strategies. A read is **stale** when it returns ` +
      "less than the user's last committed write. **replica share**: reads answered by the replica (the port the server " +
      'reports, selected with the row); **fresh reads from the replica**: those of them that were not stale, for naive ' +
      'routing the share a replica could have served consistently. Latency is per read, including any wait. kysely-rw runs with its defaults ' +
      '(health check every 1000 ms, `maxReplicaLagMs` 5000) unless the row says otherwise. Goal: kysely-rw sessions ' +
      `0 stale reads while serving at least ${CONSISTENCY.goalShare * 100}% of the replica share naive routing ` +
      '(kysely-replication) gets.',
  )
  for (const result of results) {
    const naive = naiveReference(result)
    out.push(`\n#### ${result.family}\n`)
    out.push(
      `Lag: ${result.lag}. Measured time for a committed write to show on the replica: ` +
        `median ${fmt(median(result.visibilityMs), 0)} ms (${result.visibilityMs.map((v) => fmt(v, 0)).join(', ')}).\n`,
    )
    out.push(
      table(
        [
          'strategy',
          'reads',
          'writes',
          'replica share',
          'share ÷ naive',
          'fresh reads from the replica',
          'stale reads',
          'errors',
          'read p50 ms',
          'read p99 ms',
          'read max ms',
          'kysely-rw waits / fallbacks',
        ],
        result.rows.map((r) => [
          r.label,
          fmtInt(r.reads),
          fmtInt(r.writes),
          pct(r.replicaShare),
          naive ? fmt(r.replicaShare / naive.replicaShare, 3) : '—',
          pct(r.freshReplicaShare),
          `${fmtInt(r.stale)} (${pct(r.reads ? r.stale / r.reads : Number.NaN)})`,
          fmtInt(r.errors),
          fmt(r.p50Ms),
          fmt(r.p99Ms),
          fmt(r.maxMs),
          r.rw ? `${r.rw.waits} (${fmtInt(r.rw.waitMs)} ms) / ${r.rw.fallbacks}` : '',
        ]),
      ),
    )
    const rw = result.rows.find(isDefaultSessions)
    if (rw && naive) {
      const share = rw.replicaShare / naive.replicaShare
      out.push(
        `\nGoal (kysely-rw sessions with defaults): stale reads ${goal(rw.stale === 0)} (${rw.stale}); ` +
          `replica share ${goal(share >= CONSISTENCY.goalShare)} (${fmt(share, 3)} of naive routing's ${pct(naive.replicaShare)}).`,
      )
    }
  }
  return out.join('\n')
}

export function consistencyMisses(results: readonly ConsistencyResult[]): string[] {
  return results.flatMap((result) => {
    const rw = result.rows.find(isDefaultSessions)
    const naive = naiveReference(result)
    if (!rw || !naive) return [`${result.family}: consistency rows missing`]
    const misses: string[] = []
    if (rw.stale > 0) misses.push(`${result.family}: kysely-rw sessions returned ${rw.stale} stale reads (goal 0)`)
    const share = rw.replicaShare / naive.replicaShare
    if (!(share >= CONSISTENCY.goalShare)) {
      misses.push(
        `${result.family}: kysely-rw sessions served ${pct(rw.replicaShare)} of reads from the replica, ` +
          `${fmt(share, 3)} of naive routing's ${pct(naive.replicaShare)} (goal ≥ ${CONSISTENCY.goalShare})`,
      )
    }
    return misses
  })
}

export function consistencyHeadlines(results: readonly ConsistencyResult[]): Headline[] {
  return results.flatMap((result) => {
    const rw = result.rows.find(isDefaultSessions)
    const naive = naiveReference(result)
    if (!rw || !naive) return []
    const share = rw.replicaShare / naive.replicaShare
    return [
      {
        benchmark: `consistency, ${result.family}: kysely-rw sessions`,
        measured:
          `${rw.stale} stale reads (naive: ${naive.stale}); replica share ${pct(rw.replicaShare)} = ${fmt(share, 2)} of ` +
          `naive routing's; read p99 ${fmt(rw.p99Ms, 0)} ms (naive ${fmt(naive.p99Ms, 0)} ms); ` +
          `${fmtInt(rw.reads)} reads done in the time naive routing did ${fmtInt(naive.reads)}`,
        goal: `0 stale, ≥ ${CONSISTENCY.goalShare} of naive's replica share`,
        met: rw.stale === 0 && share >= CONSISTENCY.goalShare,
      },
    ]
  })
}

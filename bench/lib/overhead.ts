// Benchmark 1: runtime overhead on real PostgreSQL and MariaDB pairs. The same query function runs
// through plain Kysely and through kysely-rw's db.read / db.write / a session, against the same node,
// one query at a time (tinybench), in interleaved rounds whose task order rotates, so that drift on a
// shared machine hits every client alike. Ratios are taken within each round, then their median.
import type { Kysely } from 'kysely'
import { Bench } from 'tinybench'
import { type BenchDB, countRoundTrips, type Family } from './db.js'
import { type Backends, createBackends } from './kysely-rw.js'
import { QUERIES, type QueryName } from './queries.js'
import {
  fmt,
  fmtInt,
  goal,
  type Headline,
  log,
  median,
  pct,
  quantile,
  quantileSorted,
  ratio,
  sum,
  table,
  until,
} from './util.js'

export const OVERHEAD = {
  rounds: 24,
  /** tinybench `time` per task per round, ms: short, so that the clients alternate often. */
  timeMs: 60,
  /** tinybench `warmupTime` per task, in the first round only. */
  warmupMs: 150,
  /** Untimed operations per query and client before the first measurement. */
  warmupOps: 300,
  /** Operations per client and write query for the round-trip count. */
  roundTripOps: 50,
  /** The goal: kysely-rw's time per query at most this multiple of plain Kysely's. */
  goal: 1.03,
}

type VariantName = 'plain' | 'backend' | 'session'

interface Variant {
  readonly name: VariantName
  readonly label: string
  readonly db: Kysely<BenchDB>
}

export interface OverheadRow {
  readonly query: QueryName
  readonly node: 'primary' | 'replica'
  readonly variant: VariantName
  readonly label: string
  readonly ops: number
  readonly opsPerSec: number
  readonly p50Us: number
  readonly p99Us: number
  /** Median over rounds of (mean time per op / plain Kysely's in the same round); 1 for plain. */
  readonly ratio: number
  /** Interquartile range of the per-round ratios. */
  readonly ratioQ1: number
  readonly ratioQ3: number
  /** The same on p50 instead of the mean. */
  readonly p50Ratio: number
  /** This process's CPU time (user + system) per query, µs: hardly moved by other processes' load. */
  readonly cpuUs: number
}

export interface RoundTripRow {
  readonly query: QueryName
  readonly variant: VariantName
  readonly label: string
  /** Round trips per operation, by node. */
  readonly primary: number
  readonly replica: number
}

export interface OverheadResult {
  readonly family: string
  readonly rows: OverheadRow[]
  readonly roundTrips: RoundTripRow[]
  /** Share of kysely-rw's plain and session reads that ran on the replica (sanity check). */
  readonly replicaReadShare: number
  readonly fallbacks: number
}

export async function runOverhead(family: Family): Promise<OverheadResult> {
  const plainPrimary = family.plain(family.primaryUrl)
  const plainReplica = family.plain(family.replicaUrl)
  const db: Backends<BenchDB> = createBackends<BenchDB>({
    dialect: family.dialect,
    primary: family.primaryUrl,
    replicas: [family.replicaUrl],
  })
  try {
    // A session that has written once, long enough ago that the health check knows the replica has it:
    // the steady state of a session between its writes. Its reads go to the replica without a wait.
    const readSession = db.session()
    await readSession.write.updateTable('counters').set({ value: 1 }).where('user_id', '=', 63).execute()
    await family.pair.waitForReplicaCatchUp()
    await healthChecks(db, 2)
    const writeSession = db.session()

    // Run-time objects: kysely-rw's backends are Kysely instances (see queries.ts).
    const asKysely = (backend: unknown) => backend as Kysely<BenchDB>
    const variantsFor = (kind: 'read' | 'write'): Variant[] =>
      kind === 'read'
        ? [
            { name: 'plain', label: 'plain Kysely on the replica', db: plainReplica },
            { name: 'backend', label: 'kysely-rw `db.read`', db: asKysely(db.read) },
            { name: 'session', label: 'kysely-rw `session.read`', db: asKysely(readSession.read) },
          ]
        : [
            { name: 'plain', label: 'plain Kysely on the primary', db: plainPrimary },
            { name: 'backend', label: 'kysely-rw `db.write`', db: asKysely(db.write) },
            { name: 'session', label: 'kysely-rw `session.write`', db: asKysely(writeSession.write) },
          ]

    // Warm every code path (JIT, pools) before anything is measured, so the first query measured does not pay for it.
    for (const query of QUERIES) {
      for (const variant of variantsFor(query.kind))
        for (let i = 0; i < OVERHEAD.warmupOps; i++) await query.run(variant.db)
    }

    const rows: OverheadRow[] = []
    for (const query of QUERIES) {
      const variants = variantsFor(query.kind)
      const samples = new Map<VariantName, number[]>(variants.map((v) => [v.name, []]))
      const perRound: Map<VariantName, { mean: number; p50: number }>[] = []
      const cpu = new Map<VariantName, { us: number; ops: number }>(variants.map((v) => [v.name, { us: 0, ops: 0 }]))
      for (let round = 0; round < OVERHEAD.rounds; round++) {
        const bench = new Bench({
          time: OVERHEAD.timeMs,
          warmup: round === 0,
          warmupTime: OVERHEAD.warmupMs,
          // tinybench's default minimum of 64 iterations would make slow queries' blocks long.
          iterations: 8,
          retainSamples: true,
          throws: true,
        })
        // Rotate the order each round: no client always runs first (or right after another).
        const order = variants.map((_, i) => variants[(i + round) % variants.length] as Variant)
        for (const variant of order) {
          const account = cpu.get(variant.name) as { us: number; ops: number }
          let measuring = false
          let start: NodeJS.CpuUsage | undefined
          bench.add(
            variant.name,
            () => {
              if (measuring) account.ops++
              return query.run(variant.db)
            },
            {
              beforeAll(mode) {
                measuring = mode === 'run'
                if (measuring) start = process.cpuUsage()
              },
              afterAll(mode) {
                if (mode !== 'run' || !start) return
                const used = process.cpuUsage(start)
                account.us += used.user + used.system
                measuring = false
              },
            },
          )
        }
        await bench.run()
        const stats = new Map<VariantName, { mean: number; p50: number }>()
        for (const task of bench.tasks) {
          const result = task.result
          if (result.state !== 'completed') throw new Error(`${query.name} / ${task.name}: ${result.state}`)
          samples.get(task.name as VariantName)?.push(...(result.latency.samples ?? []))
          stats.set(task.name as VariantName, { mean: result.latency.mean, p50: result.latency.p50 })
        }
        perRound.push(stats)
      }
      for (const variant of variants) {
        const all = (samples.get(variant.name) ?? []).sort((a, b) => a - b)
        const ratios = perRound.map(
          (r) => (r.get(variant.name)?.mean ?? Number.NaN) / (r.get('plain')?.mean ?? Number.NaN),
        )
        const p50Ratios = perRound.map(
          (r) => (r.get(variant.name)?.p50 ?? Number.NaN) / (r.get('plain')?.p50 ?? Number.NaN),
        )
        rows.push({
          query: query.name,
          node: query.kind === 'read' ? 'replica' : 'primary',
          variant: variant.name,
          label: variant.label,
          ops: all.length,
          opsPerSec: (all.length / sum(all)) * 1000,
          p50Us: quantileSorted(all, 0.5) * 1000,
          p99Us: quantileSorted(all, 0.99) * 1000,
          ratio: median(ratios),
          ratioQ1: quantile(ratios, 0.25),
          ratioQ3: quantile(ratios, 0.75),
          p50Ratio: median(p50Ratios),
          cpuUs: (cpu.get(variant.name)?.us ?? Number.NaN) / (cpu.get(variant.name)?.ops ?? Number.NaN),
        })
      }
      const line = rows
        .filter((r) => r.query === query.name)
        .map((r) => `${r.variant} ${fmtInt(r.opsPerSec)} ops/s ×${fmt(r.ratio, 3)}`)
        .join(', ')
      log(`overhead ${family.label} ${query.name}: ${line}`)
    }

    const roundTrips: RoundTripRow[] = []
    for (const query of QUERIES) {
      for (const variant of variantsFor(query.kind)) {
        const counts = await countRoundTrips(async () => {
          for (let i = 0; i < OVERHEAD.roundTripOps; i++) await query.run(variant.db)
        })
        roundTrips.push({
          query: query.name,
          variant: variant.name,
          label: variant.label,
          primary: (counts.get(family.primaryPort) ?? 0) / OVERHEAD.roundTripOps,
          replica: (counts.get(family.replicaPort) ?? 0) / OVERHEAD.roundTripOps,
        })
      }
    }

    const stats = db.stats()
    const reads = Object.values(stats.readsByNode).reduce((a, b) => a + b, 0)
    const onReplica = Object.entries(stats.readsByNode)
      .filter(([node]) => node.includes(String(family.replicaPort)))
      .reduce((a, [, n]) => a + n, 0)
    return {
      family: `${family.label} ${family.version}`,
      rows,
      roundTrips,
      replicaReadShare: onReplica / reads,
      fallbacks: stats.fallbacks,
    }
  } finally {
    await Promise.all([plainPrimary.destroy(), plainReplica.destroy(), db.destroy()])
  }
}

/** Waits until `count` more health checks have completed. */
async function healthChecks(db: Backends<BenchDB>, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const before = db.replicas()[0]?.lastCheck?.getTime() ?? 0
    await until('a health check', 10_000, () => (db.replicas()[0]?.lastCheck?.getTime() ?? 0) > before)
  }
}

export function renderOverhead(results: readonly OverheadResult[]): string {
  const out: string[] = []
  out.push(
    `Settings: tinybench, one query at a time, ${OVERHEAD.rounds} interleaved rounds × ${OVERHEAD.timeMs} ms per client ` +
      `(at least 8 queries; +${OVERHEAD.warmupMs} ms warm-up in the first round), client order rotated each round. ` +
      "**ratio** = median over the rounds of (mean time per query ÷ plain Kysely's mean in the same round), with the " +
      "interquartile range over rounds; >1 is slower. **ratio (p50)**: the same on each round's median time, less " +
      "sensitive to bursts of load from other processes. **client CPU µs/query**: this process's CPU time (user + system, " +
      "all threads) over the measured iterations, divided by their number; other processes' load hardly moves it, so " +
      "**extra CPU ÷ plain p50** (kysely-rw's extra CPU per query over plain Kysely's median latency) estimates the " +
      'overhead a quiet machine would show. ' +
      'p50/p99 and ops/s pool all rounds. Reads: plain Kysely on the replica vs kysely-rw routed to the same replica. ' +
      'Writes: plain Kysely on the primary vs kysely-rw on the primary. The session rows use a session whose last write ' +
      'the replica has already replayed (its steady state between writes).',
  )
  for (const result of results) {
    out.push(`\n#### ${result.family}\n`)
    out.push(
      table(
        [
          'query',
          'client',
          'ops',
          'ops/s',
          'p50 µs',
          'p99 µs',
          'ratio (mean)',
          'IQR over rounds',
          'ratio (p50)',
          `goal ≤ ${OVERHEAD.goal}×`,
          'client CPU µs/query',
          'extra CPU ÷ plain p50',
        ],
        result.rows.map((r) => {
          const plain = result.rows.find((p) => p.query === r.query && p.variant === 'plain')
          const plainBase = r.variant === 'plain'
          return [
            r.query,
            r.label,
            fmtInt(r.ops),
            fmtInt(r.opsPerSec),
            fmtInt(r.p50Us),
            fmtInt(r.p99Us),
            plainBase ? '1 (baseline)' : ratio(r.ratio),
            plainBase ? '' : `${fmt(r.ratioQ1, 3)}–${fmt(r.ratioQ3, 3)}`,
            plainBase ? '' : ratio(r.p50Ratio),
            plainBase ? '' : goal(r.ratio <= OVERHEAD.goal),
            fmt(r.cpuUs, 1),
            plainBase || !plain ? '' : pct((r.cpuUs - plain.cpuUs) / plain.p50Us),
          ]
        }),
      ),
    )
    out.push(
      `\nkysely-rw reads that ran on the replica: ${(result.replicaReadShare * 100).toFixed(1)}% ` +
        `(fallbacks to the primary: ${result.fallbacks}).`,
    )
    out.push(`\nRound trips per operation (counted in the client, ${OVERHEAD.roundTripOps} operations each):\n`)
    out.push(
      table(
        ['query', 'client', 'to the primary', 'to the replica', 'extra vs plain'],
        result.roundTrips.map((r) => {
          const plain = result.roundTrips.find((p) => p.query === r.query && p.variant === 'plain')
          const extra = plain ? r.primary + r.replica - plain.primary - plain.replica : Number.NaN
          return [r.query, r.label, fmt(r.primary), fmt(r.replica), r.variant === 'plain' ? '' : fmt(extra)]
        }),
      ),
    )
  }
  return out.join('\n')
}

/** Overhead rows that miss the goal, for the summary. */
export function overheadMisses(results: readonly OverheadResult[]): string[] {
  return results.flatMap((result) =>
    result.rows
      .filter((r) => r.variant !== 'plain' && r.ratio > OVERHEAD.goal)
      .map((r) => `${result.family}: ${r.query} via ${r.label} ${ratio(r.ratio)}`),
  )
}

export function overheadHeadlines(results: readonly OverheadResult[]): Headline[] {
  return results.flatMap((result) => {
    const line = (variant: VariantName) =>
      result.rows
        .filter((r) => r.variant === variant)
        .map((r) => `${r.query} ${ratio(r.ratio, 2)}`)
        .join(', ')
    const backends = result.rows.filter((r) => r.variant === 'backend')
    const sessions = result.rows.filter((r) => r.variant === 'session')
    const extra = result.roundTrips
      .filter((r) => r.variant === 'session' && r.primary > 1.5 && !r.query.includes('tx'))
      .map((r) => r.query)
    return [
      {
        benchmark: `runtime, ${result.family}: \`db.read\` / \`db.write\` ÷ plain Kysely`,
        measured: line('backend'),
        goal: `≤ ${OVERHEAD.goal}× on every query`,
        met: backends.every((r) => r.ratio <= OVERHEAD.goal),
      },
      {
        benchmark: `runtime, ${result.family}: sessions ÷ plain Kysely`,
        measured:
          line('session') +
          (extra.length ? ` (${extra.join(', ')}: one extra round trip per write, for the session position)` : ''),
        goal: `≤ ${OVERHEAD.goal}× on every query`,
        met: sessions.every((r) => r.ratio <= OVERHEAD.goal),
      },
    ]
  })
}

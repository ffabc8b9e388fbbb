// `npm run bench [-- <benchmark>... ] [-- postgres|mariadb]`: runs the benchmarks of issue #5 and writes
// bench/RESULTS.md (a full run) or bench/.work/RESULTS.partial.md (a selection, for development).
//
// Benchmarks: guard, cost and process (in-process and process-wide cost, no database), overhead, failover,
// consistency, faults (real PostgreSQL and MariaDB primary/replica pairs from the test harness), load
// (client CPU under load on PostgreSQL), typecheck (tsc 5.9 and 7).
import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type ConsistencyResult,
  consistencyHeadlines,
  consistencyMisses,
  renderConsistency,
  runConsistency,
} from './lib/consistency.js'
import { type CostResult, costHeadlines, costMisses, renderCost, runCost } from './lib/cost.js'
import { createSchema, type Family, type FamilyName, startFamily } from './lib/db.js'
import { type FailoverResult, failoverHeadlines, failoverMisses, renderFailover, runFailover } from './lib/failover.js'
import { type FaultsResult, faultsHeadlines, faultsMisses, renderFaults, runFaults } from './lib/faults.js'
import { type GuardResult, guardHeadlines, guardMisses, renderGuard, runGuard } from './lib/guard.js'
import { MEASURED_BUILD } from './lib/kysely-rw.js'
import { type LoadResult, loadHeadlines, loadMisses, renderLoad, runLoad } from './lib/load.js'
import { type OverheadResult, overheadHeadlines, overheadMisses, renderOverhead, runOverhead } from './lib/overhead.js'
import { ensureInstalled, peerVersions } from './lib/peers.js'
import { type ProcessResult, processHeadlines, processMisses, renderProcess, runProcess } from './lib/process.js'
import {
  renderTypecheck,
  runTypecheck,
  type TypecheckResult,
  typecheckHeadlines,
  typecheckMisses,
} from './lib/typecheck.js'
import { errorMessage, execFileAsync, goal, type Headline, log, table } from './lib/util.js'

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(BENCH_DIR)

/** 1-minute load averages at the start and the end of the run: how busy the machine was otherwise. */
const loadAverages: number[] = []

const BENCHMARKS = [
  'guard',
  'cost',
  'process',
  'overhead',
  'typecheck',
  'consistency',
  'failover',
  'faults',
  'load',
] as const
type BenchmarkName = (typeof BENCHMARKS)[number]
const FAMILIES: readonly FamilyName[] = ['postgres', 'mariadb']

interface Results {
  guard?: GuardResult
  cost?: CostResult
  process?: ProcessResult
  overhead: OverheadResult[]
  typecheck?: TypecheckResult
  consistency: ConsistencyResult[]
  failover: FailoverResult[]
  faults: FaultsResult[]
  load: LoadResult[]
  errors: string[]
}

// A run of several benchmarks gives each a process of its own (this script again, with `--into`): what one
// benchmark measures in-process must not depend on the ones that ran before it. In one shared process the
// earlier benchmarks' other dialects, drivers and connection classes (MySQL, PGlite, Kysely's DummyDriver) had
// already passed through the call sites that Kysely and kysely-rw share, as no app running one workload does.
const INTO = '--into'

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const intoAt = argv.indexOf(INTO)
  const into = intoAt >= 0 ? argv[intoAt + 1] : undefined
  if (intoAt >= 0 && !into) throw new Error(`${INTO} needs a file to write the results to`)
  const args = intoAt >= 0 ? argv.filter((_, i) => i !== intoAt && i !== intoAt + 1) : argv
  const unknown = args.filter(
    (a) => !(BENCHMARKS as readonly string[]).includes(a) && !(FAMILIES as readonly string[]).includes(a),
  )
  if (unknown.length > 0) {
    throw new Error(`Unknown argument(s) ${unknown.join(', ')}; use any of ${[...BENCHMARKS, ...FAMILIES].join(', ')}`)
  }
  const chosen = BENCHMARKS.filter((b) => args.includes(b))
  const benchmarks: readonly BenchmarkName[] = chosen.length > 0 ? chosen : BENCHMARKS
  const families = FAMILIES.filter((f) => args.includes(f))
  const full = args.length === 0
  const wanted = (name: BenchmarkName) => benchmarks.includes(name)
  const startedAt = new Date()
  loadAverages.push(os.loadavg()[0] ?? Number.NaN)
  const started = performance.now()

  await ensureInstalled(BENCH_DIR, {
    peers: wanted('consistency') || wanted('failover') || wanted('cost') || wanted('load'),
    ts7: wanted('typecheck'),
  })

  const results = noResults()
  const serverVersions: string[] = []
  if (!into && benchmarks.length > 1) {
    for (const name of benchmarks) {
      const child = await inChildProcess(name, families)
      mergeInto(results, child.results)
      for (const version of child.serverVersions) if (!serverVersions.includes(version)) serverVersions.push(version)
    }
    await finish(results, { args, startedAt, seconds: (performance.now() - started) / 1000, serverVersions, full })
    return
  }
  const attempt = async (what: string, run: () => Promise<void>) => {
    try {
      await run()
    } catch (error) {
      log(`${what} FAILED: ${errorMessage(error)}`)
      results.errors.push(`${what}: ${errorMessage(error)}`)
    }
  }

  // No database runs during the in-process and type-check benchmarks: they have both cores.
  if (wanted('guard')) {
    await attempt('guard', async () => {
      results.guard = await runGuard()
    })
  }
  if (wanted('cost')) {
    await attempt('cost', async () => {
      results.cost = await runCost()
    })
  }
  if (wanted('process')) {
    await attempt('process', async () => {
      results.process = await runProcess(ROOT)
    })
  }
  if (wanted('typecheck')) {
    await attempt('typecheck', async () => {
      results.typecheck = await runTypecheck(ROOT, BENCH_DIR)
    })
  }

  const onBoth = wanted('overhead') || wanted('consistency') || wanted('failover') || wanted('faults')
  // The load benchmark runs on PostgreSQL (a primary and two streaming replicas) only.
  const toStart = (families.length > 0 ? families : FAMILIES).filter(
    (f) => onBoth || (wanted('load') && f === 'postgres'),
  )
  if (toStart.length > 0) {
    for (const name of toStart) {
      // One pair at a time, so that the other's servers take no CPU.
      let family: Family | undefined
      await attempt(`${name} pair`, async () => {
        family = await startFamily(name)
        serverVersions.push(`${family.label} ${family.version}`)
        await createSchema(family)
      })
      if (!family) continue
      const f = family
      // Servers outlive this process: stop them on Ctrl-C, on kill, and on a crash (an unheard 'error' event).
      const stopOnSignal = () => void f.stop().finally(() => process.exit(130))
      const stopOnCrash = (error: unknown) => {
        log(`crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
        void f.stop().finally(() => process.exit(1))
      }
      process.once('SIGINT', stopOnSignal)
      process.once('SIGTERM', stopOnSignal)
      process.once('uncaughtException', stopOnCrash)
      try {
        if (wanted('overhead'))
          await attempt(`overhead ${name}`, async () => void results.overhead.push(await runOverhead(f)))
        if (wanted('failover'))
          await attempt(`failover ${name}`, async () => void results.failover.push(await runFailover(f)))
        if (wanted('consistency'))
          await attempt(`consistency ${name}`, async () => void results.consistency.push(await runConsistency(f)))
        if (wanted('faults')) await attempt(`faults ${name}`, async () => void results.faults.push(await runFaults(f)))
        if (wanted('load') && name === 'postgres')
          await attempt(`load ${name}`, async () => void results.load.push(await runLoad(f)))
      } finally {
        process.off('SIGINT', stopOnSignal)
        process.off('SIGTERM', stopOnSignal)
        process.off('uncaughtException', stopOnCrash)
        await f.stop().catch((error) => log(`stopping ${name} failed: ${errorMessage(error)}`))
      }
    }
  }

  const seconds = (performance.now() - started) / 1000
  if (into) {
    await writeFile(into, JSON.stringify({ results, serverVersions } satisfies ChildOutput, encodeNumbers))
    if (results.errors.length > 0) process.exitCode = 1
    return
  }
  await finish(results, { args, startedAt, seconds, serverVersions, full })
}

/** What a benchmark's own process hands back. */
interface ChildOutput {
  results: Results
  serverVersions: string[]
}

/** Runs one benchmark in a process of its own (this script with `--into`) and reads back its results. */
async function inChildProcess(name: BenchmarkName, families: readonly FamilyName[]): Promise<ChildOutput> {
  const file = path.join(BENCH_DIR, '.work', `${name}.json`)
  await mkdir(path.dirname(file), { recursive: true })
  await rm(file, { force: true })
  log(`${name}: in a process of its own`)
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), name, ...families, INTO, file],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    )
    child.once('error', reject)
    child.once('exit', resolve)
  })
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined) {
    const empty = noResults()
    empty.errors.push(`${name}: its process exited with code ${code} before writing its results`)
    return { results: empty, serverVersions: [] }
  }
  return JSON.parse(text, decodeNumbers) as ChildOutput
}

function noResults(): Results {
  return { overhead: [], consistency: [], failover: [], faults: [], load: [], errors: [] }
}

function mergeInto(results: Results, child: Results): void {
  results.guard ??= child.guard
  results.cost ??= child.cost
  results.process ??= child.process
  results.typecheck ??= child.typecheck
  results.overhead.push(...child.overhead)
  results.consistency.push(...child.consistency)
  results.failover.push(...child.failover)
  results.faults.push(...child.faults)
  results.load.push(...child.load)
  results.errors.push(...child.errors)
}

// JSON has no NaN or Infinity (a ratio with a missing side is NaN, and renders as such).
const NUMBER_TAG = '__number'
function encodeNumbers(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? { [NUMBER_TAG]: String(value) } : value
}
function decodeNumbers(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && NUMBER_TAG in value) {
    return Number((value as Record<string, string>)[NUMBER_TAG])
  }
  return value
}

async function finish(results: Results, run: RunInfo): Promise<void> {
  const { seconds, full } = run
  loadAverages.push(os.loadavg()[0] ?? Number.NaN)
  const markdown = await render(results, run)
  const target = full ? path.join(BENCH_DIR, 'RESULTS.md') : path.join(BENCH_DIR, '.work', 'RESULTS.partial.md')
  await mkdir(path.dirname(target), { recursive: true })
  await writeFile(target, markdown)
  log(
    `wrote ${path.relative(ROOT, target)} after ${seconds.toFixed(0)} s${results.errors.length ? ` with ${results.errors.length} error(s)` : ''}`,
  )
  if (results.errors.length > 0) process.exitCode = 1
}

interface RunInfo {
  args: string[]
  startedAt: Date
  seconds: number
  serverVersions: string[]
  full: boolean
}

async function render(results: Results, run: RunInfo): Promise<string> {
  const cpu =
    (await readFile('/proc/cpuinfo', 'utf8').catch(() => '')).match(/^model name\s*:\s*(.+)$/m)?.[1] ??
    os.cpus()[0]?.model ??
    'unknown'
  const nproc = (await execFileAsync('nproc').catch(() => ({ stdout: String(os.cpus().length) }))).stdout.trim()
  const commit = (
    await execFileAsync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).catch(() => ({ stdout: 'unknown' }))
  ).stdout.trim()
  const dirty = (
    await execFileAsync('git', ['status', '--porcelain', 'src'], { cwd: ROOT }).catch(() => ({ stdout: '' }))
  ).stdout.trim()
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const versions = await peerVersions(ROOT, BENCH_DIR)
  const command = `npm run bench${run.args.length ? ` -- ${run.args.join(' ')}` : ''}`
  const misses = [
    ...(results.guard ? guardMisses(results.guard) : []),
    ...(results.cost ? costMisses(results.cost) : []),
    ...(results.process ? processMisses(results.process) : []),
    ...overheadMisses(results.overhead),
    ...(results.typecheck ? typecheckMisses(results.typecheck) : []),
    ...consistencyMisses(results.consistency),
    ...failoverMisses(results.failover),
    ...faultsMisses(results.faults),
    ...loadMisses(results.load),
  ]

  const out: string[] = []
  out.push('# kysely-rw benchmarks (issue #5)\n')
  out.push(
    'Generated by `bench/run.ts`; do not edit by hand. How to run and what each benchmark does: [README.md](README.md).\n',
  )
  out.push(`- Command: \`${command}\`${run.full ? '' : ' (a partial run)'}`)
  out.push(`- Date: ${run.startedAt.toISOString()}; whole run: ${run.seconds.toFixed(0)} s`)
  out.push(
    `- Machine: ${nproc} cores, ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`,
  )
  out.push(
    `- Load average (1 min) at the start and the end of the run: ${loadAverages.map((l) => l.toFixed(2)).join(' and ')} ` +
      '(other processes on the machine compete for its cores; more than 2 means queueing)',
  )
  out.push(
    `- Node ${process.version}; servers: ${run.serverVersions.length ? run.serverVersions.join(', ') : '(none started)'}`,
  )
  out.push(
    `- kysely-rw ${pkg.version} at ${commit}${dirty ? ' (with uncommitted changes in src/)' : ''}, measured as ${MEASURED_BUILD}; ${versions.join('; ')}`,
  )
  out.push(
    '- Absolute times on a shared 2-core machine are noise; the ratios, measured in the same run and interleaved, are the result. ' +
      'The databases, their replicas and the benchmark client share the same two cores.\n',
  )
  const headlines: Headline[] = [
    ...(results.guard ? guardHeadlines(results.guard) : []),
    ...(results.cost ? costHeadlines(results.cost) : []),
    ...(results.process ? processHeadlines(results.process) : []),
    ...overheadHeadlines(results.overhead),
    ...(results.typecheck ? typecheckHeadlines(results.typecheck) : []),
    ...consistencyHeadlines(results.consistency),
    ...failoverHeadlines(results.failover),
    ...faultsHeadlines(results.faults),
    ...loadHeadlines(results.load),
  ]
  out.push('## Summary\n')
  out.push(
    table(
      ['benchmark', 'measured in this run', 'goal', ''],
      headlines.map((h) => [h.benchmark, h.measured, h.goal, goal(h.met)]),
    ),
  )
  out.push('')
  if (results.errors.length > 0)
    out.push(`Benchmarks that failed to run: ${results.errors.map((e) => `\`${e}\``).join('; ')}\n`)
  out.push(
    misses.length === 0
      ? 'Every goal measured in this run is met.\n'
      : `Goals missed in this run:\n\n${misses.map((m) => `- ${m}`).join('\n')}\n`,
  )

  if (results.guard) out.push(`## Guard and in-process cost (no database)\n\n${renderGuard(results.guard)}\n`)
  if (results.cost) out.push(`## In-process CPU per query (issue #12)\n\n${renderCost(results.cost)}\n`)
  if (results.overhead.length)
    out.push(`## 1. Runtime overhead on real PostgreSQL and MariaDB\n\n${renderOverhead(results.overhead)}\n`)
  if (results.typecheck) out.push(`## 2. Type-check cost\n\n${renderTypecheck(results.typecheck)}\n`)
  if (results.consistency.length)
    out.push(`## 3. Consistency vs offload\n\n${renderConsistency(results.consistency)}\n`)
  if (results.failover.length) out.push(`## 4. Failover\n\n${renderFailover(results.failover)}\n`)
  if (results.faults.length) out.push(`## 5. Faults that hang or lag (issue #9)\n\n${renderFaults(results.faults)}\n`)
  if (results.process)
    out.push(
      `## 6. Process-wide cost: plain Kysely in a process using kysely-rw (issue #12)\n\n${renderProcess(results.process)}\n`,
    )
  if (results.load.length) out.push(`## 7. Client CPU under load (issue #12)\n\n${renderLoad(results.load)}\n`)
  return `${out.join('\n')}\n`
}

main().catch((error) => {
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  process.exitCode = 1
})

// Client CPU per operation under load (issue #12): 200 concurrent workers on the real PostgreSQL primary and
// its two replicas, 90% reads, half of the workers in read-your-writes sessions (a session write, then its
// reads). Plain Kysely on the primary alone, kysely-replication (reads round-robin on the replicas) and
// kysely-rw with its defaults run the same operations, in rounds whose order rotates, each client created
// fresh, warmed up untimed and destroyed after its round, so that no client's timers run in another's.
// The result is this process's CPU time (process.cpuUsage(): the client only, the servers are other
// processes) per completed operation; wall-clock figures are context on two shared cores.
// After the rounds, one more kysely-rw run is profiled (node:inspector, the profiler of --cpu-prof), for
// where its CPU goes.
import { createHook } from 'node:async_hooks'
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { findSourceMap } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type Kysely, Kysely as KyselyClass, PostgresDialect, type PostgresPool } from 'kysely'
import pg from 'pg'
import type { PostgresPair } from '../../test/harness/replication.js'
import { type BenchDB, countRoundTrips, countStatements, type Family } from './db.js'
import { createBackends } from './kysely-rw.js'
import { QUERIES, type QuerySpec } from './queries.js'
import {
  measureSessionSteps,
  type RwStats,
  renderSessionSteps,
  type SessionSteps,
  statsBetween,
} from './session-steps.js'
import {
  errorMessage,
  fmt,
  fmtInt,
  goal,
  type Headline,
  log,
  median,
  pct,
  quantile,
  ratio,
  table,
  until,
} from './util.js'

export const LOAD = {
  /** Concurrent workers, each one operation at a time. */
  workers: 200,
  /** Every worker's every 10th operation is a write: 90% reads. */
  writeEvery: 10,
  /** Operations per timed round (or `maxRoundMs`, whichever comes first). */
  opsPerRound: 8000,
  maxRoundMs: 20_000,
  /** Untimed operations on a fresh client before its timed round: pools full, health checks running. */
  warmupOps: 2000,
  /**
   * Timed rounds per client, after one untimed round of each (the JIT compiler settles on each client's code).
   * One round's ratio between two clients ranges 0.67–1.47 on a 2-core machine: 7 rounds left the medians
   * 0.05 apart from run to run, about what sessions cost; three 24-30-round runs of one build against another
   * still gave 1.113, 1.014 and 0.993 (LOAD_ROUNDS for a run of another length).
   */
  rounds: Number(process.env.LOAD_ROUNDS ?? 20),
  /** kysely-rw at most this multiple of plain Kysely's CPU per operation (and at most kysely-replication's). */
  goal: 1.15,
  /** Rows of the profile tables. */
  profileTop: 15,
  /** The profiler's sampling interval, µs. */
  profileIntervalUs: 250,
}

const [pk, , insert] = QUERIES as [QuerySpec, QuerySpec, QuerySpec]
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Handle {
  read(): Promise<unknown>
  write(): Promise<unknown>
}

interface LoadClient {
  /** A worker's handle; `session`: one of the workers whose operations run in a session. */
  worker(session: boolean): Handle
  /** kysely-rw only: its counters so far. */
  stats?(): RwStats
  destroy(): Promise<void>
}

interface ClientSpec {
  readonly name:
    | 'plain'
    | 'plainPipelined'
    | 'spread'
    | 'replication'
    | 'rw'
    | 'rwNoSessions'
    | 'rwNoPipeline'
    | 'rwBase'
  readonly label: string
  create(family: Family, replicaUrls: string[]): Promise<LoadClient>
}

const asKysely = (backend: unknown) => backend as Kysely<BenchDB>
const on = (db: Kysely<BenchDB>): Handle => ({ read: () => pk.run(db), write: () => insert.run(db) })

const ALL_CLIENTS: ClientSpec[] = [
  {
    name: 'plain',
    label: 'plain Kysely 0.29, everything on the primary',
    async create(family) {
      const db = family.plain(family.primaryUrl)
      const handle = on(db)
      return { worker: () => handle, destroy: () => db.destroy() }
    },
  },
  {
    // What pipelining alone is worth: plain Kysely on the primary over pg clients in pipeline mode, each query
    // sent on the next of 10 clients whatever is in flight there. No library does this for plain Kysely.
    name: 'plainPipelined',
    label: 'plain Kysely 0.29, everything on the primary, over 10 pg clients in pipeline mode (no library; context)',
    async create(family) {
      const db = pipelinedKysely(family.primaryUrl)
      const handle = on(db)
      return { worker: () => handle, destroy: () => db.destroy() }
    },
  },
  {
    // No library: what sending reads to the replicas costs by itself. On loopback the sender's CPU time
    // includes the receiving server's TCP processing and wake-ups, which grow as the same queries are spread
    // over three servers' connections instead of one's.
    name: 'spread',
    label: 'plain Kysely 0.29 ×3: writes on the primary, reads round-robin on 2 replicas (no library; context)',
    async create(family, replicaUrls) {
      const primary = family.plain(family.primaryUrl)
      const replicas = replicaUrls.map((url) => family.plain(url))
      let turn = 0
      const handle: Handle = {
        read: () => pk.run(replicas[turn++ % replicas.length] as Kysely<BenchDB>),
        write: () => insert.run(primary),
      }
      return {
        worker: () => handle,
        destroy: async () => {
          await Promise.all([primary, ...replicas].map((db) => db.destroy()))
        },
      }
    },
  },
  {
    name: 'replication',
    label: 'kysely-replication 0.3 (Kysely 0.28), reads round-robin on 2 replicas',
    async create(family, replicaUrls) {
      const { createKyselyReplication } = await import('../peers/kysely-replication.mjs')
      const db = createKyselyReplication({ dialect: family.dialect, primaryUrl: family.primaryUrl, replicaUrls })
      const handle = on(asKysely(db))
      return { worker: () => handle, destroy: () => db.destroy() }
    },
  },
  {
    name: 'rw',
    label: 'kysely-rw defaults, 2 replicas: `db.read` / `db.write`, sessions for half the workers',
    create: (family, replicaUrls) => createRw(family, replicaUrls, true),
  },
  {
    // The same client with every worker outside sessions: what sessions cost, which no other client does.
    name: 'rwNoSessions',
    label: 'kysely-rw defaults, 2 replicas, no sessions: `db.read` / `db.write` for every worker (context)',
    create: (family, replicaUrls) => createRw(family, replicaUrls, false),
  },
  {
    // Every read on a connection of its own: what pipelined reads (docs/pipelined-reads.md) are worth.
    name: 'rwNoPipeline',
    label: 'kysely-rw, 2 replicas, sessions for half the workers, `pipelineReads: false` (context)',
    create: (family, replicaUrls) => createRw(family, replicaUrls, true, createBackends, { pipelineReads: false }),
  },
]

/** Plain Kysely over `n` pg clients in pipeline mode, handed out in turn (for the 'plainPipelined' row). */
function pipelinedKysely(url: string, n = 10): Kysely<BenchDB> {
  type Client = pg.Client & { release(): void }
  const clients: Promise<Client>[] = []
  let turn = 0
  const pool = {
    connect(): Promise<Client> {
      if (clients.length < n) {
        const client = new pg.Client({ connectionString: url, pipeline: true } as pg.ClientConfig) as Client
        client.release = () => {}
        clients.push(client.connect().then(() => client))
      }
      return clients[turn++ % clients.length] as Promise<Client>
    },
    async end() {
      await Promise.all(clients.map(async (client) => (await client).end()))
    },
  }
  return new KyselyClass<BenchDB>({ dialect: new PostgresDialect({ pool: pool as unknown as PostgresPool }) })
}

/**
 * For comparing two builds round by round in one process (a change's effect is smaller than the drift between
 * runs): KYSELY_RW_BASE=<another build's dist/index.js> adds it as the client `rwBase`, with sessions.
 */
const BASE = process.env.KYSELY_RW_BASE
if (BASE) {
  ALL_CLIENTS.push({
    name: 'rwBase',
    label: `kysely-rw defaults as built in ${BASE} (A/B comparison; context)`,
    create: async (family, replicaUrls) => {
      const base = (await import(path.resolve(BASE))) as { createBackends: typeof createBackends }
      return createRw(family, replicaUrls, true, base.createBackends)
    },
  })
}

/** LOAD_CLIENTS=rw,replication runs only those clients: quicker runs while working on one of them. */
const CLIENTS = process.env.LOAD_CLIENTS
  ? ALL_CLIENTS.filter((c) => process.env.LOAD_CLIENTS?.split(',').includes(c.name))
  : ALL_CLIENTS

async function createRw(
  family: Family,
  replicaUrls: string[],
  sessions: boolean,
  create: typeof createBackends = createBackends,
  options: { pipelineReads?: boolean } = {},
): Promise<LoadClient> {
  const db = create<BenchDB>({ dialect: family.dialect, primary: family.primaryUrl, replicas: replicaUrls, ...options })
  await until('both replicas up', 10_000, () => db.replicas().every((r) => r.state === 'up'))
  const plain: Handle = { read: () => pk.run(asKysely(db.read)), write: () => insert.run(asKysely(db.write)) }
  return {
    worker(session) {
      if (!session || !sessions) return plain
      const s = db.session()
      return { read: () => pk.run(asKysely(s.read)), write: () => insert.run(asKysely(s.write)) }
    },
    stats: () => {
      const { waits, waitMs, fallbacks, replayChecks, replayCheckMisses } = db.stats()
      return { waits, waitMs, fallbacks, replayChecks, replayCheckMisses }
    },
    destroy: () => db.destroy(),
  }
}

export interface LoadRun {
  readonly ops: number
  readonly errors: number
  readonly firstError?: string
  readonly cpuMs: number
  readonly wallMs: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** kysely-rw: session reads that waited for a replica, and reads that fell back to the primary. */
  readonly stats?: RwStats
}

export interface LoadRow {
  readonly name: ClientSpec['name']
  readonly label: string
  readonly runs: LoadRun[]
  /** Median over rounds of CPU µs per completed operation. */
  readonly cpuUsPerOp: number
}

export interface ProfileLine {
  readonly what: string
  readonly ms: number
  readonly share: number
}

export interface LoadProfile {
  readonly ops: number
  readonly totalMs: number
  /** Round trips per operation by node (the operations' own, and the few health checks sent meanwhile). */
  readonly roundTrips: { readonly node: string; readonly perOp: number }[]
  /** Statements the servers parsed per operation by node, those that ride in another's round trip included. */
  readonly statements: { readonly node: string; readonly perOp: number }[]
  /** The same, in all, on plain Kysely's profiled run. */
  readonly plainStatements: number
  /** Self time by where the code lives: src/, kysely, pg, node internals, GC, … */
  readonly byArea: ProfileLine[]
  /** The same run profiled on plain Kysely (same operations), self time by area, for the difference. */
  readonly plainByArea: ProfileLine[]
  readonly plainOps: number
  /** Plain Kysely's functions by self time (many, for looking up the top kysely-rw ones). */
  readonly plainFunctions: ProfileLine[]
  /** src/ functions by total time (their own code and everything they call, recursion counted once). */
  readonly totalSrc: ProfileLine[]
  /** The top functions by self time, anywhere, and in src/ only; src/ by file. */
  readonly top: ProfileLine[]
  readonly topSrc: ProfileLine[]
  readonly srcFiles: ProfileLine[]
}

export interface LoadResult {
  readonly family: string
  /** How the client and the servers shared the cores: pinned apart, or why not. */
  readonly placement: string
  readonly rows: LoadRow[]
  readonly profile?: LoadProfile
  readonly profileError?: string
  readonly steps?: SessionSteps
}

/**
 * LOAD_THREADS=1 logs, per run, where this process's CPU time went and how it talked to the servers, per
 * operation: the main thread's and each other thread's CPU (V8's GC and compiler workers, libuv's), read and
 * write system calls, and context switches. Linux only (/proc). Under load, kysely-rw's read and write system
 * calls per operation matched kysely-replication's within 0.04, while its V8 worker threads took 2-4 µs/op more.
 */
function processCounters(): Map<string, number> {
  const counters = new Map<string, number>()
  const io = readFileSync('/proc/self/io', 'utf8')
  const status = readFileSync('/proc/self/status', 'utf8')
  const count = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN)
  counters.set('reads', count(io, /syscr: (\d+)/))
  counters.set('writes', count(io, /syscw: (\d+)/))
  counters.set('switches', count(status, /\nvoluntary_ctxt_switches:\s+(\d+)/))
  counters.set('preempted', count(status, /nonvoluntary_ctxt_switches:\s+(\d+)/))
  for (const tid of readdirSync('/proc/self/task')) {
    // schedstat's first field: nanoseconds on a CPU.
    const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    counters.set(Number(tid) === process.pid ? 'main µs' : `thread ${tid} µs`, ns / 1000)
  }
  return counters
}

function logCounters(before: Map<string, number>, ops: number): void {
  const after = processCounters()
  const parts = [...after].map(([name, value]) => {
    const perOp = (value - (before.get(name) ?? 0)) / ops
    return `${name} ${perOp.toFixed(name.endsWith('µs') ? 1 : 3)}`
  })
  log(`per op: ${parts.filter((part) => !/ 0\.0$/.test(part)).join(', ')}`)
}

/**
 * LOAD_PROMISES=1 logs the promises created per operation (an async hook's count, which itself slows the run:
 * a diagnostic, not a result). Every promise is a microtask or more and an allocation, which a profile
 * shows only as V8's builtins and runMicrotasks.
 */
function countPromises(): () => number {
  let created = 0
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') created++
    },
  }).enable()
  return () => {
    hook.disable()
    return created
  }
}

/** `ops` operations (or until `maxMs`) by LOAD.workers workers; this process's CPU time over the whole run. */
async function drive(client: LoadClient, ops: number, maxMs: number): Promise<LoadRun> {
  let issued = 0
  let errors = 0
  let firstError: string | undefined
  const latencies: number[] = []
  const handles = Array.from({ length: LOAD.workers }, (_, w) => client.worker(w % 2 === 0))
  const counters = process.env.LOAD_THREADS === '1' ? processCounters() : undefined
  const promises = process.env.LOAD_PROMISES === '1' ? countPromises() : undefined
  const cpuStart = process.cpuUsage()
  const started = performance.now()
  const deadline = started + maxMs
  await Promise.all(
    handles.map(async (handle, w) => {
      // Workers start at different points of their 1-in-10 write cycle, so that writes are spread in time.
      for (let k = w; issued < ops && performance.now() < deadline; k++) {
        issued++
        const t = performance.now()
        try {
          await (k % LOAD.writeEvery === 0 ? handle.write() : handle.read())
          latencies.push(performance.now() - t)
        } catch (error) {
          errors++
          firstError ??= errorMessage(error)
        }
      }
    }),
  )
  const wallMs = performance.now() - started
  const cpu = process.cpuUsage(cpuStart)
  if (counters) logCounters(counters, latencies.length)
  if (promises) log(`promises created per op: ${(promises() / latencies.length).toFixed(2)}`)
  latencies.sort((a, b) => a - b)
  return {
    ops: latencies.length,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  }
}

async function oneRound(spec: ClientSpec, family: Family, replicaUrls: string[]): Promise<LoadRun> {
  const client = await spec.create(family, replicaUrls)
  try {
    await drive(client, LOAD.warmupOps, LOAD.maxRoundMs)
    const before = client.stats?.()
    const run = await drive(client, LOAD.opsPerRound, LOAD.maxRoundMs)
    const after = client.stats?.()
    if (!before || !after) return run
    return { ...run, stats: statsBetween(before, after) }
  } finally {
    await client.destroy()
  }
}

function statsOf(stats: RwStats | undefined): string {
  if (!stats) return ''
  return `${stats.replayChecks} (${stats.replayCheckMisses}) / ${stats.waits} / ${stats.fallbacks}`
}

export async function runLoad(family: Family): Promise<LoadResult> {
  if (family.name !== 'postgres') throw new Error('the load benchmark runs on PostgreSQL only')
  const replicaUrls = [family.replicaUrl, family.pair.replica2Url]
  const placement = await pinApart(family.pair as PostgresPair)
  try {
    // One untimed round of each client first: code that only one client runs (kysely-rw's, kysely-replication's)
    // is compiled by V8 during its first rounds, while Kysely's and pg's, which every client runs, is compiled
    // by the first client's; the timed rounds compare code that has settled.
    for (const spec of CLIENTS) await oneRound(spec, family, replicaUrls)
    const runs = new Map<ClientSpec['name'], LoadRun[]>(CLIENTS.map((c) => [c.name, []]))
    for (let r = 0; r < LOAD.rounds; r++) {
      for (let i = 0; i < CLIENTS.length; i++) {
        const spec = CLIENTS[(i + r) % CLIENTS.length] as ClientSpec
        const run = await oneRound(spec, family, replicaUrls)
        runs.get(spec.name)?.push(run)
        log(
          `load round ${r + 1} ${spec.name}: ${run.ops} ops, ${fmt(usPerOp(run), 1)} µs CPU/op, ` +
            `${fmtInt((run.ops / run.wallMs) * 1000)} ops/s${run.errors ? `, ${run.errors} errors (${run.firstError})` : ''}`,
        )
      }
    }
    const rows = CLIENTS.map((spec) => {
      const list = runs.get(spec.name) ?? []
      return {
        name: spec.name,
        label: spec.label,
        runs: list,
        cpuUsPerOp: median(list.map(usPerOp)),
      }
    })
    const steps = process.env.LOAD_STEPS === '0' ? undefined : await measureSessionSteps(family, replicaUrls)
    let profile: LoadProfile | undefined
    let profileError: string | undefined
    try {
      if (process.env.LOAD_PROFILE === '0') throw new Error('not profiled (LOAD_PROFILE=0)')
      const plain = await profileClient('plain', family, replicaUrls)
      const rw = await profileClient('rw', family, replicaUrls)
      profile = {
        ...rw,
        plainByArea: plain.byArea,
        plainOps: plain.ops,
        plainFunctions: plain.allFunctions,
        plainStatements: sumPerOp(plain.statements),
      }
    } catch (error) {
      profileError = errorMessage(error)
      log(`load profile failed: ${profileError}`)
    }
    return {
      family: `${family.label} ${family.version}`,
      placement,
      rows,
      ...(steps ? { steps } : {}),
      ...(profile ? { profile } : {}),
      ...(profileError ? { profileError } : {}),
    }
  } finally {
    await unpin()
  }
}

const run = promisify(execFile)

/**
 * This process on the first core, the three servers (every process of each, and the backends they fork later,
 * which inherit it) on the others. Sharing cores, a server backend scheduled on the client's core answers through
 * a direct switch, one on the other core through a wake-up across cores, which costs the client's CPU time about
 * twice as much per query on this machine (measured: 35 against 66 µs of client CPU per sequential pk select on
 * one connection); which one a connection gets is up to the scheduler, so runs differed by up to 1.9× with
 * nothing changed. Apart, every query crosses cores, as between machines.
 */
async function pinApart(pair: PostgresPair): Promise<string> {
  const cpus = os.cpus().length
  if (cpus < 2) return 'not pinned (one core): the client and the servers share it'
  try {
    const servers = `1-${cpus - 1}`
    for (const pid of await pair.serverPids()) await run('taskset', ['-a', '-p', '-c', servers, String(pid)])
    await run('taskset', ['-a', '-p', '-c', '0', String(process.pid)])
    return `the benchmark process pinned to core 0 and the three servers to cores ${servers} (\`taskset\`)`
  } catch (error) {
    return `not pinned (\`taskset\` failed: ${errorMessage(error)}): the client and the servers share the cores`
  }
}

/** Every core again, for the benchmarks after this one (`availableParallelism()` would count the pinned one only). */
async function unpin(): Promise<void> {
  const all = `0-${os.cpus().length - 1}`
  await run('taskset', ['-a', '-p', '-c', all, String(process.pid)]).catch((error: unknown) => {
    log(`load: could not unpin this process from core 0 (${errorMessage(error)}); later benchmarks run on one core`)
  })
}

interface CpuProfile {
  nodes: {
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }
    hitCount?: number
    children?: number[]
  }[]
  startTime: number
  endTime: number
}

async function profileClient(
  name: ClientSpec['name'],
  family: Family,
  replicaUrls: string[],
): Promise<
  Omit<LoadProfile, 'plainByArea' | 'plainOps' | 'plainFunctions' | 'plainStatements'> & { allFunctions: ProfileLine[] }
> {
  const spec = ALL_CLIENTS.find((c) => c.name === name) as ClientSpec
  const client = await spec.create(family, replicaUrls)
  const session = new Session()
  session.connect()
  try {
    await drive(client, LOAD.warmupOps, LOAD.maxRoundMs)
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: LOAD.profileIntervalUs })
    await session.post('Profiler.start')
    let ops = 0
    // Counting wraps pg's Client.prototype.query and its protocol writer: only in this run, never in the timed ones.
    let counts = new Map<number, number>()
    const parsed = await countStatements(async () => {
      counts = await countRoundTrips(async () => {
        ops = (await drive(client, LOAD.opsPerRound, LOAD.maxRoundMs)).ops
      })
    })
    const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile }
    // LOAD_PROFILE_DUMP=<dir>: the profiles as files, for Chrome DevTools or a diff of two clients.
    if (process.env.LOAD_PROFILE_DUMP) {
      writeFileSync(path.join(process.env.LOAD_PROFILE_DUMP, `${name}.cpuprofile`), JSON.stringify(profile))
    }
    const names = new Map([
      [family.primaryPort, 'primary'],
      [family.replicaPort, 'replica 1'],
      [Number(new URL(family.pair.replica2Url).port), 'replica 2'],
    ])
    const perOp = (byPort: Map<number, number>) =>
      [...byPort].map(([port, n]) => ({ node: names.get(port) ?? `port ${port}`, perOp: n / ops }))
    return { ...summarize(profile, ops), roundTrips: perOp(counts), statements: perOp(parsed) }
  } finally {
    session.disconnect()
    await client.destroy()
  }
}

function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(V8 builtins and native)'
  const file = url.startsWith('file://') ? fileURLToPath(url) : url
  if (file.startsWith(path.join(ROOT, 'src') + path.sep) || file.startsWith(path.join(ROOT, 'dist') + path.sep)) {
    return 'kysely-rw'
  }
  const nm = file.lastIndexOf(`node_modules${path.sep}`)
  if (nm >= 0) {
    const rest = file.slice(nm + 'node_modules/'.length).split(path.sep)
    const name = rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '?')
    return file.includes(path.join('bench', 'peers')) ? `${name} (bench/peers)` : name
  }
  if (url.startsWith('node:')) return 'Node.js internals'
  if (file.startsWith(path.join(ROOT, 'bench'))) return 'the benchmark itself'
  return url
}

type CallFrame = CpuProfile['nodes'][number]['callFrame']

function keyOf({ functionName, url, lineNumber, columnNumber }: CallFrame): string {
  const file = url.startsWith('file://') ? path.relative(ROOT, fileURLToPath(url)) : url
  return file ? `${functionName || '(anonymous)'} — ${file}${sourceLine(url, lineNumber, columnNumber)}` : functionName
}

/** Samples under each src/ function (its total time), a sample counted once per function however deep it recurses. */
function inclusiveSrc(profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const childIds = new Set(profile.nodes.flatMap((node) => node.children ?? []))
  const totals = new Map<string, number>()
  const walk = (id: number, open: ReadonlySet<string>): number => {
    const node = byId.get(id)
    if (!node) return 0
    const frame = node.callFrame
    const key = areaOf(frame.url, frame.functionName) === 'kysely-rw' ? keyOf(frame) : undefined
    const fresh = key !== undefined && !open.has(key)
    const inner = fresh ? new Set([...open, key]) : open
    let n = node.hitCount ?? 0
    for (const child of node.children ?? []) n += walk(child, inner)
    if (fresh) totals.set(key, (totals.get(key) ?? 0) + n)
    return n
  }
  for (const node of profile.nodes) if (!childIds.has(node.id)) walk(node.id, new Set())
  return totals
}

/** `:line` in the source file: V8 reports positions in the code it ran, which for src/ is tsx's output. */
function sourceLine(url: string, line: number, column: number): string {
  if (!url.startsWith('file://')) return `:${line + 1}`
  const entry = findSourceMap(url)?.findEntry(line, column) as { originalLine?: number } | undefined
  return entry && typeof entry.originalLine === 'number' ? `:${entry.originalLine + 1}` : `:${line + 1}`
}

function summarize(
  profile: CpuProfile,
  ops: number,
): Omit<
  LoadProfile,
  'roundTrips' | 'statements' | 'plainByArea' | 'plainOps' | 'plainFunctions' | 'plainStatements'
> & {
  allFunctions: ProfileLine[]
} {
  const hits = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0)
  const totalMs = (profile.endTime - profile.startTime) / 1000
  const msPerHit = hits > 0 ? totalMs / hits : 0
  const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n)
  const areas = new Map<string, number>()
  const functions = new Map<string, number>()
  const srcFunctions = new Map<string, number>()
  const srcFiles = new Map<string, number>()
  for (const node of profile.nodes) {
    const n = node.hitCount ?? 0
    if (n === 0) continue
    const { functionName, url } = node.callFrame
    const area = areaOf(url, functionName)
    add(areas, area, n)
    const file = url.startsWith('file://') ? path.relative(ROOT, fileURLToPath(url)) : url
    const key = keyOf(node.callFrame)
    add(functions, key, n)
    if (area === 'kysely-rw') {
      add(srcFunctions, key, n)
      add(srcFiles, file, n)
    }
  }
  const lines = (map: Map<string, number>, top: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([what, n]) => ({ what, ms: n * msPerHit, share: hits > 0 ? n / hits : 0 }))
  return {
    ops,
    totalMs,
    byArea: lines(areas, 20),
    top: lines(functions, LOAD.profileTop),
    allFunctions: lines(functions, 500),
    totalSrc: lines(inclusiveSrc(profile), LOAD.profileTop),
    topSrc: lines(srcFunctions, LOAD.profileTop),
    srcFiles: lines(srcFiles, LOAD.profileTop),
  }
}

/** A round's CPU time per completed operation, µs. */
const usPerOp = (run: LoadRun) => (run.cpuMs * 1000) / run.ops
const row = (result: LoadResult, name: ClientSpec['name']) => result.rows.find((r) => r.name === name)
/**
 * Median over rounds of one client's CPU per operation ÷ another's in the same round: the machine's drift
 * from round to round (which moves every client of a round alike) cancels. Context next to the ratio of
 * medians, which the goal is judged on.
 */
const paired = (result: LoadResult, name: ClientSpec['name'], base: ClientSpec['name']) => {
  const runs = row(result, name)?.runs ?? []
  const bases = row(result, base)?.runs ?? []
  const perRound = runs.flatMap((run, i) => {
    const other = bases[i]
    return other ? [usPerOp(run) / usPerOp(other)] : []
  })
  return perRound.length > 0 ? median(perRound) : Number.NaN
}
const ratios = (result: LoadResult) => {
  const plain = row(result, 'plain')?.cpuUsPerOp ?? Number.NaN
  const replication = row(result, 'replication')?.cpuUsPerOp ?? Number.NaN
  const rw = row(result, 'rw')?.cpuUsPerOp ?? Number.NaN
  const spread = row(result, 'spread')?.cpuUsPerOp ?? Number.NaN
  const noSessions = row(result, 'rwNoSessions')?.cpuUsPerOp ?? Number.NaN
  return {
    noSessionsVsPlain: noSessions / plain,
    noSessionsVsReplication: noSessions / replication,
    sessionsVsNoSessions: rw / noSessions,
    vsPlain: rw / plain,
    replicationVsPlain: replication / plain,
    vsReplication: rw / replication,
    spreadVsPlain: spread / plain,
    vsSpread: rw / spread,
    replicationVsSpread: replication / spread,
  }
}
const met = (result: LoadResult) => {
  const r = ratios(result)
  const errors = result.rows.reduce((n, x) => n + x.runs.reduce((m, run) => m + run.errors, 0), 0)
  return r.vsPlain <= LOAD.goal && r.vsReplication <= 1 && errors === 0
}

export function renderLoad(results: readonly LoadResult[]): string {
  const out: string[] = []
  out.push(
    `${LOAD.workers} concurrent workers, each awaiting one operation at a time: every ${LOAD.writeEvery}th operation ` +
      `of a worker a write (\`${insert.sql}\`), the others reads (\`${pk.sql}\`), so 90% reads; the even-numbered ` +
      'half of the workers run theirs in a kysely-rw session (`db.session()`, one per worker: a session write, then ' +
      'reads that wait for a replica to have replayed it). The other clients run the same operations (they have no ' +
      'sessions; nor has the kysely-rw row marked "no sessions", which shows what sessions cost). ' +
      `Each timed round: a fresh client, ${LOAD.warmupOps} untimed operations (pools filled, health ` +
      `checks running), then ${LOAD.opsPerRound} operations (at most ${LOAD.maxRoundMs / 1000} s), then \`destroy()\`; ` +
      `${LOAD.rounds} rounds, the clients' order rotating each round, after one untimed round of each client (so that ` +
      "V8 has compiled each client's own code). **CPU µs/op** is the median over rounds of this " +
      "process's CPU time (`process.cpuUsage()`, user + system: the client alone, the servers are other processes) " +
      "divided by the operations completed. Connection pools are the drivers' defaults (pg: 10 per node). " +
      'Throughput and latencies are wall-clock, with the servers on one core: context, not results. ' +
      `Goal: kysely-rw at most ${LOAD.goal}× plain Kysely on the primary alone, and at most kysely-replication's, with no errors.\n`,
  )
  for (const result of results) {
    const r = ratios(result)
    out.push(`#### ${result.family}, primary and 2 streaming replicas\n`)
    out.push(`Cores: ${result.placement}.\n`)
    const plain = row(result, 'plain')?.cpuUsPerOp ?? Number.NaN
    out.push(
      table(
        [
          'client',
          'CPU µs/op',
          '÷ plain Kysely',
          'per-round CPU µs/op',
          'ops (all rounds)',
          'errors',
          'ops/s (median)',
          'p50 ms',
          'p99 ms',
          'session reads checked in their round trip (missed) / waits / fallbacks to the primary (per round)',
        ],
        result.rows.map((x) => [
          x.label,
          fmt(x.cpuUsPerOp, 1),
          ratio(x.cpuUsPerOp / plain),
          x.runs.map((run) => fmt(usPerOp(run), 1)).join(', '),
          fmtInt(x.runs.reduce((n, run) => n + run.ops, 0)),
          String(x.runs.reduce((n, run) => n + run.errors, 0)),
          fmtInt(median(x.runs.map((run) => (run.ops / run.wallMs) * 1000))),
          fmt(median(x.runs.map((run) => run.p50Ms)), 1),
          fmt(median(x.runs.map((run) => run.p99Ms)), 1),
          x.runs.some((run) => run.stats) ? x.runs.map((run) => statsOf(run.stats)).join(', ') : '',
        ]),
      ),
    )
    const firstError = result.rows.flatMap((x) => x.runs).find((run) => run.firstError)?.firstError
    out.push(
      `\nkysely-rw ÷ plain Kysely: ${ratio(r.vsPlain)} (goal ≤ ${LOAD.goal}×); kysely-rw ÷ kysely-replication: ` +
        `${ratio(r.vsReplication)} (goal ≤ 1); kysely-replication ÷ plain Kysely: ${ratio(r.replicationVsPlain)}. ` +
        `${goal(met(result))}${firstError ? `. First error: ${firstError}` : ''}. Context: the same queries spread ` +
        `over the three servers by three plain Kysely instances cost ${ratio(r.spreadVsPlain)} plain Kysely on the ` +
        `primary alone; against that, kysely-rw ${ratio(r.vsSpread)} and kysely-replication ` +
        `${ratio(r.replicationVsSpread)}. Without sessions, kysely-rw costs ${ratio(r.noSessionsVsPlain)} plain ` +
        `Kysely and ${ratio(r.noSessionsVsReplication)} kysely-replication; with half the workers in sessions ` +
        `${ratio(r.sessionsVsNoSessions)} that. Paired by round (the median of each round's ratio, which cancels ` +
        `the machine's drift between rounds): kysely-rw ÷ plain Kysely ${ratio(paired(result, 'rw', 'plain'))}, ` +
        `÷ kysely-replication ${ratio(paired(result, 'rw', 'replication'))}; kysely-rw without sessions ÷ ` +
        `kysely-replication ${ratio(paired(result, 'rwNoSessions', 'replication'))}; kysely-replication ÷ plain ` +
        `Kysely ${ratio(paired(result, 'replication', 'plain'))}.\n`,
    )
    if (result.steps) out.push(renderSessionSteps(result.steps))
    if (result.profile) out.push(renderProfile(result.profile))
    if (result.profileError) out.push(`The profiled run failed: ${result.profileError}\n`)
  }
  return out.join('\n')
}

const sumPerOp = (rows: readonly { readonly perOp: number }[]) => rows.reduce((n, r) => n + r.perOp, 0)

function renderProfile(p: LoadProfile): string {
  const lines = (rows: ProfileLine[]) => rows.map((x) => [x.what, fmt(x.ms, 0), pct(x.share)])
  return [
    `Where kysely-rw's CPU goes: one more kysely-rw run of ${p.ops} operations after the rounds, profiled with ` +
      `\`node:inspector\` (V8's sampling profiler, as \`node --cpu-prof\`; every ${LOAD.profileIntervalUs} µs), and the same ` +
      `run on plain Kysely (${p.plainOps} operations) for comparison; kysely-rw's run: ` +
      `${fmt(p.totalMs, 0)} ms profiled. Its round trips per operation (counted in pg's \`Client.query\`; ` +
      `all queries sent during the run, the few health checks among them): ${p.roundTrips.map((r) => `${r.node} ${fmt(r.perOp, 2)}`).join(', ')}, ` +
      `${fmt(sumPerOp(p.roundTrips), 2)} in all (plain Kysely and kysely-replication: 1). Statements the servers ` +
      "parsed per operation (pg's Parse and Query messages, those that ride in another's round trip included: a " +
      `session write's position, a replica read's replay check): ${p.statements.map((r) => `${r.node} ${fmt(r.perOp, 2)}`).join(', ')}, ` +
      `${fmt(sumPerOp(p.statements), 2)} in all; plain Kysely's run: ${fmt(p.plainStatements, 2)}. Self time, by where the code lives:\n`,
    table(
      ['code', 'kysely-rw µs/op', 'share', 'plain Kysely µs/op', 'difference µs/op'],
      [...new Set([...p.byArea, ...p.plainByArea].map((x) => x.what))].map((what) => {
        const mine = p.byArea.find((x) => x.what === what)
        const rw = ((mine?.ms ?? 0) * 1000) / p.ops
        const plain = ((p.plainByArea.find((x) => x.what === what)?.ms ?? 0) * 1000) / p.plainOps
        return [what, fmt(rw, 1), pct(mine?.share ?? 0), fmt(plain, 1), fmt(rw - plain, 1)]
      }),
    ),
    '\nTop functions by self time, anywhere:\n',
    table(
      ['function — file', 'kysely-rw self µs/op', 'share', 'plain Kysely self µs/op'],
      p.top.map((x) => [
        x.what,
        fmt((x.ms * 1000) / p.ops, 1),
        pct(x.share),
        fmt(((p.plainFunctions.find((y) => y.what === x.what)?.ms ?? 0) * 1000) / p.plainOps, 1),
      ]),
    ),
    "\nTop functions of kysely-rw by self time (a function's own code, not what it calls):\n",
    table(['function — file', 'self ms', 'share'], lines(p.topSrc)),
    "\nTop functions of kysely-rw by total time (their own code and all they call, Kysely's and pg's included):\n",
    table(['function — file', 'total ms', 'share'], lines(p.totalSrc)),
    "\nkysely-rw's self time by file:\n",
    table(['file', 'self ms', 'share'], lines(p.srcFiles)),
    '',
  ].join('\n')
}

export function loadMisses(results: readonly LoadResult[]): string[] {
  return results
    .filter((result) => !met(result))
    .map((result) => {
      const r = ratios(result)
      return `load, ${result.family}: kysely-rw CPU per operation ${ratio(r.vsPlain)} plain Kysely's (goal ≤ ${LOAD.goal}×), ${ratio(r.vsReplication)} kysely-replication's (goal ≤ 1), or errors`
    })
}

export function loadHeadlines(results: readonly LoadResult[]): Headline[] {
  return results.map((result) => {
    const r = ratios(result)
    return {
      benchmark: `load, ${result.family} + 2 replicas, ${LOAD.workers} workers: client CPU per operation, kysely-rw ÷ plain Kysely on the primary`,
      measured:
        `${ratio(r.vsPlain)}; ÷ kysely-replication ${ratio(r.vsReplication)} (kysely-replication ÷ plain ${ratio(r.replicationVsPlain)}); ` +
        `context: plain Kysely spread over the 3 servers ÷ plain ${ratio(r.spreadVsPlain)}, kysely-rw ÷ that ${ratio(r.vsSpread)}; ` +
        `kysely-rw without sessions ÷ kysely-replication ${ratio(r.noSessionsVsReplication)}`,
      goal: `≤ ${LOAD.goal}× and ≤ kysely-replication`,
      met: met(result),
    }
  })
}

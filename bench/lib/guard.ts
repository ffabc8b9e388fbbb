// The guard's classification alone, and kysely-rw's whole in-process path per query, with no database:
// - classify(): operation trees compiled by a Kysely on its DummyDriver, classified in batches;
// - per query: plain Kysely vs kysely-rw's backends on a driver that answers at once (modelled on
//   DummyDriver, but answering one row, so that health checks see a replica that is caught up).
// What is left is kysely-rw's own CPU cost per query, which network noise hides in benchmark 1.

import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  sql,
} from 'kysely'
import { Bench } from 'tinybench'
import type { BenchDB } from './db.js'
import { type Backends, classify, createBackends } from './kysely-rw.js'
import { QUERIES } from './queries.js'
import { fmt, fmtInt, goal, type Headline, log, median, table, until } from './util.js'

export const GUARD = {
  /** classify() calls per tinybench sample; the sample is their mean. */
  classifyBatch: 1000,
  /** Awaited queries per tinybench sample on the answering driver. */
  queryBatch: 50,
  timeMs: 500,
  warmupMs: 150,
  rounds: 3,
  /** The goal: classification under this many µs per query. */
  goalUs: 2,
}

/**
 * The clock of every benchmark here: this process's CPU time (user + system, all threads: GC included), in
 * ms. What is measured is CPU work, and CPU time, unlike wall time, does not grow when other processes
 * take the cores.
 */
export const cpuNow = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

function dialect(driver: () => Driver): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: driver,
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  }
}

// One row that answers every query kysely-rw asks itself (positions, cluster id) and the benchmark's.
const ROW = { pos: '0/3000000', id: 'bench-cluster', reached: true, ro: 'on', n: 1, name: 'user 1', score: 1 }

class AnsweringConnection implements DatabaseConnection {
  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // As PostgreSQL refuses two statements in one Parse message: kysely-rw checks its read connections do.
    if (/;\s*\S/.test(query.sql)) {
      throw Object.assign(new Error('cannot insert multiple commands into a prepared statement'), { code: '42601' })
    }
    return { rows: [ROW as R] }
  }
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {}
}

/** DummyDriver's no-ops, but with connections that are reused (as a pool's are) and answer a row. */
class AnsweringDriver implements Driver {
  readonly #idle: AnsweringConnection[] = []
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return this.#idle.pop() ?? new AnsweringConnection()
  }
  async beginTransaction(): Promise<void> {}
  async commitTransaction(): Promise<void> {}
  async rollbackTransaction(): Promise<void> {}
  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    this.#idle.push(connection as AnsweringConnection)
  }
  async destroy(): Promise<void> {}
}

export interface ClassifyRow {
  readonly shape: string
  readonly nodes: number
  readonly meanNs: number
  readonly p99Ns: number
}

export interface InProcessRow {
  readonly query: string
  readonly label: string
  readonly meanUs: number
  readonly deltaUs: number
  readonly ratio: number
}

/** What making a session costs, beside making a plain Kysely on the same dialect (µs of CPU each, median of rounds). */
export interface MakingRow {
  readonly label: string
  readonly meanUs: number
}

export interface GuardResult {
  readonly classify: ClassifyRow[]
  readonly inProcess: InProcessRow[]
  readonly making: MakingRow[]
}

export async function runGuard(): Promise<GuardResult> {
  const classified = await runClassify()
  return { classify: classified, inProcess: await runInProcess(), making: await runMaking() }
}

/** Sessions are made per request: what one costs to make, against a plain Kysely instance. */
async function runMaking(): Promise<MakingRow[]> {
  const db: Backends<BenchDB> = createBackends<BenchDB>({
    dialect: 'postgres',
    primary: dialect(() => new AnsweringDriver()),
    replicas: [dialect(() => new AnsweringDriver())],
  })
  const makers: readonly (readonly [string, () => unknown])[] = [
    [
      '`new Kysely({ dialect })` (plain Kysely, for comparison)',
      () => new Kysely<BenchDB>({ dialect: dialect(() => new AnsweringDriver()) }),
    ],
    ['`db.session()`', () => db.session()],
  ]
  try {
    const means = await interleavedMeans(makers, 'making')
    const rows = makers.map(([label]) => ({ label, meanUs: means.get(label) ?? Number.NaN }))
    log(`guard making: ${rows.map((r) => `${r.label} ${fmt(r.meanUs, 1)} µs`).join(', ')}`)
    return rows
  } finally {
    await db.destroy()
  }
}

/**
 * Each task's mean µs per call (or per `overriddenDuration`), median over GUARD.rounds tinybench runs on the CPU
 * clock, the tasks' order rotating from round to round.
 */
async function interleavedMeans(
  tasks: readonly (readonly [string, () => unknown])[],
  what: string,
): Promise<Map<string, number>> {
  const means = new Map<string, number[]>()
  for (let round = 0; round < GUARD.rounds; round++) {
    const bench = new Bench({ now: cpuNow, time: GUARD.timeMs, warmupTime: GUARD.warmupMs, throws: true })
    for (let i = 0; i < tasks.length; i++) {
      const [label, fn] = tasks[(i + round) % tasks.length] as (typeof tasks)[number]
      bench.add(label, fn as () => Promise<unknown>)
    }
    await bench.run()
    for (const task of bench.tasks) {
      if (task.result.state !== 'completed') throw new Error(`${what} ${task.name}: ${task.result.state}`)
      means.set(task.name, [...(means.get(task.name) ?? []), task.result.latency.mean * 1000])
    }
  }
  return new Map([...means].map(([label, values]) => [label, median(values)]))
}

async function runClassify(): Promise<ClassifyRow[]> {
  const db = new Kysely<BenchDB>({ dialect: dialect(() => new DummyDriver()) })
  const [pk, join, insert, update] = (await Promise.all(QUERIES.slice(0, 4).map((q) => capture(q.run)))) as [
    CompiledQuery,
    CompiledQuery,
    CompiledQuery,
    CompiledQuery,
  ]
  const shapes: [string, CompiledQuery][] = [
    ['pk select', pk],
    ['join select', join],
    [
      'select with CTE, IN-subquery, correlated subquery',
      db
        .with('paid', (qb) => qb.selectFrom('orders').select(['user_id', 'total']).where('status', '=', 'paid'))
        .selectFrom('users')
        .innerJoin('paid', 'paid.user_id', 'users.id')
        .select((eb) => [
          'users.id',
          'users.name',
          'paid.total',
          eb
            .selectFrom('orders')
            .select((e) => e.fn.countAll().as('n'))
            .whereRef('orders.user_id', '=', 'users.id')
            .as('orders'),
        ])
        .where('users.id', 'in', (eb) => eb.selectFrom('events').select('user_id').where('kind', '=', 'click'))
        .where((eb) => eb.or([eb('users.score', '>', 50), eb('users.name', 'like', 'user 1%')]))
        .orderBy('users.id')
        .limit(50)
        .compile(),
    ],
    ['insert', insert],
    ['update', update],
    ['raw sql (refused)', sql`select 1`.compile(db)],
  ]
  const bench = new Bench({
    now: cpuNow,
    time: GUARD.timeMs,
    warmupTime: GUARD.warmupMs,
    retainSamples: true,
    throws: true,
  })
  let sink = 0
  for (const [shape, query] of shapes) {
    const node = query.query
    bench.add(shape, () => {
      const start = bench.now()
      // As the read guard calls it: with the compiled text, which lets most reads skip the tree walk.
      for (let i = 0; i < GUARD.classifyBatch; i++) if (classify(node, 'postgres', query.sql).write) sink++
      const elapsed = bench.now() - start
      return { overriddenDuration: elapsed / GUARD.classifyBatch, overriddenIterationCost: elapsed }
    })
  }
  await bench.run()
  if (sink < 0) log('unreachable')
  const rows = shapes.map(([shape, query]) => {
    const result = bench.getTask(shape)?.result
    if (result?.state !== 'completed') throw new Error(`classify ${shape}: ${result?.state}`)
    return { shape, nodes: countNodes(query.query), meanNs: result.latency.mean * 1e6, p99Ns: result.latency.p99 * 1e6 }
  })
  await db.destroy()
  log(`guard classify: ${rows.map((r) => `${r.shape} ${fmt(r.meanNs, 0)} ns`).join(', ')}`)
  return rows
}

/** The compiled query a query function sends first, caught by a Kysely on a DummyDriver. */
async function capture(run: (db: Kysely<BenchDB>) => Promise<unknown>): Promise<CompiledQuery> {
  let caught: CompiledQuery | undefined
  const spy = new Kysely<BenchDB>({
    dialect: dialect(() => {
      const driver = new DummyDriver()
      driver.acquireConnection = async () => ({
        async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
          caught ??= query
          return { rows: [ROW as R] }
        },
        async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {},
      })
      return driver
    }),
  })
  await run(spy)
  await spy.destroy()
  if (!caught) throw new Error('no query captured')
  return caught
}

function countNodes(root: unknown): number {
  let n = 0
  const stack: unknown[] = [root]
  while (stack.length) {
    const value = stack.pop()
    if (typeof value !== 'object' || value === null) continue
    if (Array.isArray(value)) {
      stack.push(...value)
      continue
    }
    if (typeof (value as { kind?: unknown }).kind === 'string') n++
    stack.push(...Object.values(value))
  }
  return n
}

async function runInProcess(): Promise<InProcessRow[]> {
  const plain = new Kysely<BenchDB>({ dialect: dialect(() => new AnsweringDriver()) })
  const db: Backends<BenchDB> = createBackends<BenchDB>({
    dialect: 'postgres',
    primary: dialect(() => new AnsweringDriver()),
    replicas: [dialect(() => new AnsweringDriver())],
  })
  try {
    await until(
      'the first health check',
      10_000,
      () => db.replicas()[0]?.state === 'up' && db.replicas()[0]?.lastCheck != null,
    )
    const readSession = db.session()
    await readSession.write.updateTable('counters').set({ value: 1 }).where('user_id', '=', 1).execute()
    const writeSession = db.session()
    const k = (backend: unknown) => backend as Kysely<BenchDB>
    const cases = [
      {
        query: QUERIES[0],
        clients: [
          ['plain Kysely', plain],
          ['kysely-rw `db.read`', k(db.read)],
          ['kysely-rw `session.read`', k(readSession.read)],
        ],
      },
      {
        query: QUERIES[2],
        clients: [
          ['plain Kysely', plain],
          ['kysely-rw `db.write`', k(db.write)],
          ['kysely-rw `session.write`', k(writeSession.write)],
        ],
      },
      {
        query: QUERIES[4],
        clients: [
          ['plain Kysely', plain],
          ['kysely-rw `db.write`', k(db.write)],
          ['kysely-rw `session.write`', k(writeSession.write)],
        ],
      },
    ] as const
    const rows: InProcessRow[] = []
    for (const { query, clients } of cases) {
      if (!query) continue
      const batches = clients.map(([label, client]) => {
        const run = async () => {
          const start = cpuNow()
          for (let j = 0; j < GUARD.queryBatch; j++) await query.run(client as Kysely<BenchDB>)
          const elapsed = cpuNow() - start
          return { overriddenDuration: elapsed / GUARD.queryBatch, overriddenIterationCost: elapsed }
        }
        return [label, run] as const
      })
      const means = await interleavedMeans(batches, query.name)
      const base = means.get('plain Kysely') ?? Number.NaN
      for (const [label] of clients) {
        const mean = means.get(label) ?? Number.NaN
        rows.push({ query: query.name, label, meanUs: mean, deltaUs: mean - base, ratio: mean / base })
      }
    }
    log(`guard in-process: ${rows.map((r) => `${r.query}/${r.label} ${fmt(r.meanUs, 1)} µs`).join(', ')}`)
    return rows
  } finally {
    await Promise.all([plain.destroy(), db.destroy()])
  }
}

export function renderGuard(result: GuardResult): string {
  const out: string[] = []
  out.push(
    'Every time in this section is CPU time of the benchmark process (tinybench with `process.cpuUsage()` as its ' +
      "clock: user + system, all threads, GC included), which other processes' load does not inflate.\n\n" +
      `Classification alone, as the read guard calls it: \`classify(node, lexing, sql)\` on operation trees compiled ` +
      `by a Kysely on its \`DummyDriver\` (a select whose text has no write or lock word skips the tree walk); ` +
      `tinybench, ${GUARD.timeMs} ms per shape, each sample the mean of ${GUARD.classifyBatch} calls. Goal: under ${GUARD.goalUs} µs per query.\n`,
  )
  out.push(
    table(
      ['query shape', 'operation nodes', 'mean ns', 'p99 ns (of batch means)', `goal < ${GUARD.goalUs} µs`],
      result.classify.map((r) => [
        r.shape,
        String(r.nodes),
        fmtInt(r.meanNs),
        fmtInt(r.p99Ns),
        goal(r.meanNs < GUARD.goalUs * 1000),
      ]),
    ),
  )
  out.push(
    `\nThe whole in-process path per query, no network: plain Kysely vs kysely-rw on a driver that answers at once ` +
      `(DummyDriver's no-ops, reused connections, one row per query so that health checks find the replica caught up). ` +
      `${GUARD.rounds} interleaved rounds × ${GUARD.timeMs} ms, samples are means of ${GUARD.queryBatch} awaited queries; median of rounds. ` +
      "This is kysely-rw's own CPU cost per query (routing, guard, telemetry); a session write also " +
      'asks for its position here, which on PostgreSQL is the extra round trip shown in benchmark 1.\n',
  )
  out.push(
    table(
      ['query', 'client', 'µs per query', 'extra µs vs plain', 'ratio'],
      result.inProcess.map((r) => [
        r.query,
        r.label,
        fmt(r.meanUs, 2),
        r.label === 'plain Kysely' ? '' : fmt(r.deltaUs, 2),
        fmt(r.ratio, 2),
      ]),
    ),
  )

  out.push(
    `\nMaking a session: a session is made per request, so what \`db.session()\` costs is paid per request (it opens ` +
      `no connection). Same method, each sample one call; a plain Kysely made on the same dialect beside it.\n`,
  )
  out.push(
    table(
      ['made', 'µs of CPU each'],
      result.making.map((r) => [r.label, fmt(r.meanUs, 2)]),
    ),
  )

  return out.join('\n')
}

export function guardMisses(result: GuardResult): string[] {
  return result.classify
    .filter((r) => r.meanNs >= GUARD.goalUs * 1000)
    .map((r) => `guard classification of "${r.shape}": ${fmt(r.meanNs / 1000, 2)} µs (goal < ${GUARD.goalUs} µs)`)
}

export function guardHeadlines(result: GuardResult): Headline[] {
  return [
    {
      benchmark: 'guard: classification per query (CPU)',
      measured: result.classify.map((r) => `${r.shape}: ${fmt(r.meanNs / 1000, 2)} µs`).join('; '),
      goal: `< ${GUARD.goalUs} µs`,
      met: result.classify.every((r) => r.meanNs < GUARD.goalUs * 1000),
    },
  ]
}

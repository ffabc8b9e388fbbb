// In-process CPU per query (issue #12): a client against its baseline on a driver that answers at once, in
// batches of queries, the two alternated many times (the order flips every alternation), each batch timed in
// this process's CPU time; the result is the ratio of the median batch times. An A/A row (two plain Kysely
// instances) shows what the method itself reads as a difference. kysely-replication 0.3 runs on its own
// Kysely 0.28 (bench/peers), against a plain Kysely 0.28 on the same driver, with the same method.
import { Kysely } from 'kysely'
import { AnsweringDriver, answeringDialect, cpuNow } from './answering.js'
import type { BenchDB } from './db.js'
import { type Backends, createBackends } from './kysely-rw.js'
import { QUERIES, type QuerySpec } from './queries.js'
import { fmt, goal, type Headline, log, median, ratio, table, until } from './util.js'

export const COST = {
  /** Queries per timed batch (write transactions: a quarter of it, for the same batch duration). */
  batch: 100,
  /** Alternations of baseline and client batches per row. */
  alternations: 1500,
  /** Untimed batches of each before the first timed one. */
  warmupBatches: 100,
  /** kysely-rw with default options, at most this multiple of plain Kysely. */
  goal: 1.1,
}

export interface CostRow {
  readonly query: string
  readonly client: string
  readonly baseline: string
  readonly baseUs: number
  readonly clientUs: number
  readonly ratio: number
  /** Ratio of the batches' first and third quartiles, for how wide the batch times spread. */
  readonly q1Ratio: number
  readonly q3Ratio: number
}

export interface CostResult {
  readonly rows: CostRow[]
  readonly batch: number
  readonly alternations: number
}

type Run = (db: Kysely<BenchDB>) => Promise<unknown>

const quantile = (values: readonly number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo)
}

async function timedBatch(db: Kysely<BenchDB>, run: Run, size: number): Promise<number> {
  const start = cpuNow()
  for (let i = 0; i < size; i++) await run(db)
  return cpuNow() - start
}

/** The baseline and the client alternated, batch by batch; µs per query from the median batch. */
async function compare(
  query: string,
  run: Run,
  baseline: [string, Kysely<BenchDB>],
  client: [string, Kysely<BenchDB>],
  size: number,
): Promise<CostRow> {
  const base: number[] = []
  const other: number[] = []
  for (let i = 0; i < COST.warmupBatches; i++) {
    await timedBatch(baseline[1], run, size)
    await timedBatch(client[1], run, size)
  }
  for (let i = 0; i < COST.alternations; i++) {
    if (i % 2 === 0) {
      base.push(await timedBatch(baseline[1], run, size))
      other.push(await timedBatch(client[1], run, size))
    } else {
      other.push(await timedBatch(client[1], run, size))
      base.push(await timedBatch(baseline[1], run, size))
    }
  }
  const baseUs = (median(base) * 1000) / size
  const clientUs = (median(other) * 1000) / size
  const row = {
    query,
    client: client[0],
    baseline: baseline[0],
    baseUs,
    clientUs,
    ratio: clientUs / baseUs,
    q1Ratio: quantile(other, 0.25) / quantile(base, 0.25),
    q3Ratio: quantile(other, 0.75) / quantile(base, 0.75),
  }
  log(`cost ${query}: ${client[0]} ${fmt(clientUs, 2)} µs vs ${baseline[0]} ${fmt(baseUs, 2)} µs (${ratio(row.ratio)})`)
  return row
}

export async function runCost(): Promise<CostResult> {
  const plain = new Kysely<BenchDB>({ dialect: answeringDialect() })
  const plain2 = new Kysely<BenchDB>({ dialect: answeringDialect() })
  const db: Backends<BenchDB> = createBackends<BenchDB>({
    dialect: 'postgres',
    primary: answeringDialect(),
    replicas: [answeringDialect(), answeringDialect()],
  })
  // bench/peers: kysely-replication and the Kysely 0.28 it runs on, on the same answering driver.
  const { createOnDrivers } = await import('../peers/kysely-replication.mjs')
  const peers = createOnDrivers({ makeDriver: () => new AnsweringDriver() })
  const k = (backend: unknown) => backend as Kysely<BenchDB>
  try {
    await until('the first health checks', 10_000, () =>
      db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null),
    )
    const readSession = db.session()
    await readSession.write.updateTable('counters').set({ value: 1 }).where('user_id', '=', 1).execute()
    const writeSession = db.session()
    const [pk, , insert, , tx] = QUERIES as [QuerySpec, QuerySpec, QuerySpec, QuerySpec, QuerySpec]
    const plain29: [string, Kysely<BenchDB>] = ['plain Kysely 0.29', plain]
    const plain28: [string, Kysely<BenchDB>] = ['plain Kysely 0.28', k(peers.plain)]
    const replication: [string, Kysely<BenchDB>] = ['kysely-replication 0.3 (Kysely 0.28)', k(peers.replication)]
    const rows: CostRow[] = []
    const read = `read (${pk.name})`
    const write = `write (${insert.name})`
    const txName = tx.name
    rows.push(await compare(read, pk.run, plain29, ['A/A: another plain Kysely 0.29', plain2], COST.batch))
    rows.push(await compare(read, pk.run, plain29, ['kysely-rw `db.read`', k(db.read)], COST.batch))
    rows.push(await compare(read, pk.run, plain29, ['kysely-rw `session.read`', k(readSession.read)], COST.batch))
    rows.push(await compare(read, pk.run, plain28, replication, COST.batch))
    rows.push(await compare(write, insert.run, plain29, ['A/A: another plain Kysely 0.29', plain2], COST.batch))
    rows.push(await compare(write, insert.run, plain29, ['kysely-rw `db.write`', k(db.write)], COST.batch))
    // A session write on PostgreSQL, on a driver that cannot pipeline (this one; a pool handed in), has its
    // position read once the session has no write in flight and the event loop turns (one read for a run of writes, shared by the sessions that wrote in that turn). On a
    // real server every write's result arrives in a turn of its own; here nothing would ever turn, and the
    // reads would fall outside the timed batches. So this row lets the loop turn after every write, for both
    // clients: each write is followed by its own position read, inside the time (the worst case).
    const insertThenTurn: Run = async (db) => {
      await insert.run(db)
      await new Promise((resolve) => setImmediate(resolve))
    }
    rows.push(
      await compare(
        `${write}, ${SESSION_WRITE_ROW}`,
        insertThenTurn,
        plain29,
        ['kysely-rw `session.write`', k(writeSession.write)],
        COST.batch,
      ),
    )
    rows.push(await compare(write, insert.run, plain28, replication, COST.batch))
    rows.push(await compare(txName, tx.run, plain29, ['kysely-rw `db.write`', k(db.write)], COST.batch / 4))
    rows.push(await compare(txName, tx.run, plain28, replication, COST.batch / 4))
    return { rows, batch: COST.batch, alternations: COST.alternations }
  } finally {
    await Promise.all([
      plain.destroy(),
      plain2.destroy(),
      db.destroy(),
      peers.replication.destroy(),
      peers.plain.destroy(),
    ])
  }
}

const isRw = (row: CostRow) => row.client.startsWith('kysely-rw')
// The goal rows: kysely-rw's reads and writes against kysely-replication's. Write transactions and the
// PostgreSQL session write (one more query, for the position, which kysely-replication never asks) are context.
const SESSION_WRITE_ROW = 'a turn of the event loop after each'
const isGoalRow = (row: CostRow) =>
  isRw(row) && row.query !== 'write tx + read back' && !row.query.includes(SESSION_WRITE_ROW)
const peerRatio = (result: CostResult, query: string) =>
  result.rows.find((r) => r.query === query && r.client.startsWith('kysely-replication'))?.ratio ?? Number.NaN

export function renderCost(result: CostResult): string {
  const out: string[] = []
  out.push(
    `A driver that answers every query at once with one row (no network, no server): what is left is each ` +
      `client's own CPU per query. Each row alternates its baseline and its client, ${result.batch} awaited queries ` +
      `a batch (write transactions: ${result.batch / 4}), ${result.alternations} times (the order flips each time; ` +
      `${COST.warmupBatches} untimed batches of each first); each batch is timed in this process's CPU time ` +
      '(user + system); **ratio** is the median client batch over the median baseline batch, and the quartile ' +
      'ratios say how far the batches spread. kysely-rw runs with its defaults (guard, read-only sessions, ' +
      'escape detection, health checks, schema floor all on), with a primary and two replicas; kysely-replication ' +
      '0.3 with a primary and two replicas (round-robin), against a plain Kysely 0.28 (its Kysely) on the same driver. ' +
      `Goal: kysely-rw at most ${COST.goal}× plain Kysely, and below kysely-replication's ratio. The session write ` +
      'row is context: on PostgreSQL, where the driver cannot pipeline (as this one; a pool handed in), a session ' +
      'asks the primary for the position of its writes with one more query once it has no write in flight (one for ' +
      'a run of writes, shared by the sessions that wrote in the same turn of the event loop); this row lets the ' +
      'loop turn after every write, so each write pays a whole query, the worst case. On the pg pools kysely-rw ' +
      "makes, that statement is pipelined behind the write, in its round trip; MariaDB reports the position in the write's own reply.\n",
  )
  out.push(
    table(
      [
        'query',
        'client',
        'baseline',
        'baseline µs/query',
        'client µs/query',
        'extra µs',
        'ratio',
        'Q1–Q3 ratios',
        'goal',
      ],
      result.rows.map((r) => [
        r.query,
        r.client,
        r.baseline,
        fmt(r.baseUs, 2),
        fmt(r.clientUs, 2),
        fmt(r.clientUs - r.baseUs, 2),
        ratio(r.ratio),
        `${fmt(r.q1Ratio, 3)}–${fmt(r.q3Ratio, 3)}`,
        isGoalRow(r) ? goal(r.ratio <= COST.goal && r.ratio < peerRatio(result, r.query)) : isRw(r) ? '(context)' : '',
      ]),
    ),
  )
  return out.join('\n')
}

function goalRows(result: CostResult): CostRow[] {
  return result.rows.filter(isGoalRow)
}

export function costMisses(result: CostResult): string[] {
  return goalRows(result)
    .filter((r) => !(r.ratio <= COST.goal && r.ratio < peerRatio(result, r.query)))
    .map(
      (r) =>
        `in-process ${r.query} via ${r.client}: ${ratio(r.ratio)} (goal ≤ ${COST.goal}× and below kysely-replication's ${ratio(peerRatio(result, r.query))})`,
    )
}

export function costHeadlines(result: CostResult): Headline[] {
  const aa = result.rows.filter((r) => r.client.startsWith('A/A'))
  const rows = goalRows(result)
  return [
    {
      benchmark: 'in-process CPU per query, defaults: kysely-rw ÷ plain Kysely (kysely-replication ÷ its plain Kysely)',
      measured:
        rows.map((r) => `${r.client} ${ratio(r.ratio, 3)}`).join(', ') +
        `; kysely-replication: reads ${ratio(peerRatio(result, rows[0]?.query ?? ''), 3)}, writes ${ratio(peerRatio(result, rows[rows.length - 1]?.query ?? ''), 3)}` +
        `; A/A ${aa.map((r) => ratio(r.ratio, 3)).join(', ')}`,
      goal: `≤ ${COST.goal}× and below kysely-replication`,
      met: rows.every((r) => r.ratio <= COST.goal && r.ratio < peerRatio(result, r.query)),
    },
  ]
}

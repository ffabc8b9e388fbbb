// Reads pipelined on a replica's connections (pipelineReads, PostgreSQL with pg 8.23+): under a burst of
// concurrent reads, each still gets its own answer or its own error, a slow read holds up only the reads sent
// right behind it, sessions still read their writes, a replica that hangs under pipelined reads is left for
// the other, and `pipelineReads: false` sends none.

import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type BackendEvent, type Backends, createBackends, readSql } from '../src/index.js'
import { type Family, postgresFamily, type TestDB } from './support/databases.js'
import { until } from './support/load.js'

const ROWS = 500
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('PostgreSQL pipelined reads', () => {
  let family: Family
  const opened: Backends<TestDB>[] = []

  function backends(
    options: { pipelineReads?: boolean; replicas?: string[]; onEvent?: (event: BackendEvent) => void } = {},
  ): Backends<TestDB> {
    const db = createBackends<TestDB>({
      dialect: 'postgres',
      primary: family.primaryUrl,
      replicas: options.replicas ?? [family.replicaUrl],
      pipelineReads: options.pipelineReads,
      healthCheckIntervalMs: 200,
      onEvent: options.onEvent,
    })
    opened.push(db)
    return db
  }

  const upIn = (db: Backends<TestDB>) =>
    until(() => db.replicas().every((replica) => replica.state === 'up'), 'replicas up', 10_000)

  /**
   * `n` reads of single rows by 100 workers, each awaiting its reads one after another (the lane takes
   * connections as the first reads go out, so the reads after them pipeline): what each answered, by index.
   */
  async function burst(db: Backends<TestDB>, n: number): Promise<{ qty: number }[]> {
    const rows: { qty: number }[] = []
    let next = 0
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        rows[i] = await db.read
          .selectFrom('items')
          .select('qty')
          .where('qty', '=', i % ROWS)
          .executeTakeFirstOrThrow()
      }
    }
    await Promise.all(Array.from({ length: 100 }, worker))
    return rows
  }

  /** Each of `n` items of `run`, by 100 workers as in `burst`, settled. */
  async function settled<T>(n: number, run: (i: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
    const outcomes: PromiseSettledResult<T>[] = []
    let next = 0
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        ;[outcomes[i]] = await Promise.allSettled([run(i)])
      }
    }
    await Promise.all(Array.from({ length: 100 }, worker))
    return outcomes
  }

  beforeAll(async () => {
    family = postgresFamily()
    const setup = backends({ pipelineReads: false })
    await family.createItems(setup.write, 'items')
    await setup.write
      .insertInto('items')
      .values(Array.from({ length: ROWS }, (_, i) => ({ name: `row ${i}`, qty: i })))
      .execute()
    await family.control.waitForReplicaCatchUp()
  })

  afterEach(async () => {
    await family.control.thawReplica()
    await family.control2.thawReplica()
  })

  afterAll(async () => {
    await Promise.all(opened.map((db) => db.destroy()))
  })

  it('answers each read of a burst with its own row, pipelined on the replica', async () => {
    const db = backends()
    await upIn(db)
    const rows = await burst(db, 600)
    for (const [i, row] of rows.entries()) expect(row.qty).toBe(i % ROWS)
    const stats = db.stats()
    expect(stats.pipelinedReads).toBeGreaterThan(0)
    // Every read ran on the replica; none fell back.
    expect(Object.entries(stats.readsByNode).filter(([name]) => name.startsWith('replica'))[0]?.[1]).toBe(600)
    expect(stats.fallbacks).toBe(0)
  })

  it('fails only the reads that fail: a failing read pipelined among others touches none of them', async () => {
    const db = backends()
    await upIn(db)
    const outcomes = await settled(400, (i) =>
      readSql<{ q: number }>`select ${i}::int / ${i % 7 === 0 ? 0 : 1}::int as q`.execute(db.read),
    )
    for (const [i, outcome] of outcomes.entries()) {
      if (i % 7 === 0) {
        expect(outcome.status).toBe('rejected')
        expect(String((outcome as PromiseRejectedResult).reason)).toMatch(/division by zero/)
      } else {
        expect(outcome.status).toBe('fulfilled')
        expect((outcome as PromiseFulfilledResult<{ rows: { q: number }[] }>).value.rows[0]?.q).toBe(i)
      }
    }
    expect(db.stats().pipelinedReads).toBeGreaterThan(0)
    // The replica was not taken for down by the failed reads.
    expect(db.replicas()[0]?.state).toBe('up')
  })

  it('holds up only the reads sent right behind a slow one', async () => {
    const db = backends()
    await upIn(db)
    // The slow read goes out while other reads keep the lane's connections busy, so that it is pipelined.
    const background = burst(db, 20_000)
    await until(() => db.stats().pipelinedReads > 200, 'reads pipelined', 10_000)
    const pipelinedBefore = db.stats().pipelinedReads
    const slow = readSql<{ n: string }>`select count(*) as n from generate_series(1, 40000000) g`.execute(db.read)
    const slowDone = slow.then(() => Date.now())
    await sleep(200)
    const quickStarted = Date.now()
    // Reads sent once the slow one has run for a while go on connections that are answering.
    const quickDone = (
      await settled(300, (i) =>
        db.read
          .selectFrom('items')
          .select('qty')
          .where('qty', '=', i % ROWS)
          .executeTakeFirstOrThrow(),
      )
    ).map(() => Date.now())
    const quickLast = Date.now()
    const slowEnded = await slowDone
    await background
    expect(quickDone).toHaveLength(300)
    expect(db.stats().pipelinedReads).toBeGreaterThan(pipelinedBefore)
    expect(slowEnded - quickStarted).toBeGreaterThan(400)
    expect(quickLast).toBeLessThan(slowEnded)
  })

  it('keeps read-your-writes exact for sessions whose reads are pipelined', async () => {
    const db = backends()
    await upIn(db)
    const sessions = 60
    const background = burst(db, 600)
    const seen = await Promise.all(
      Array.from({ length: sessions }, async (_, i) => {
        const session = db.session()
        const { id } = await session.write
          .insertInto('items')
          .values({ name: `session ${i}`, qty: 10_000 + i })
          .returning('id')
          .executeTakeFirstOrThrow()
        // Reads after the write, among the others in flight.
        const rows = await Promise.all(
          Array.from({ length: 5 }, () =>
            session.read.selectFrom('items').select('qty').where('id', '=', id).executeTakeFirst(),
          ),
        )
        return rows.map((row) => row?.qty)
      }),
    )
    await background
    for (const [i, rows] of seen.entries()) expect(rows).toEqual(Array(5).fill(10_000 + i))
    expect(db.stats().pipelinedReads).toBeGreaterThan(0)
  })

  it('leaves a replica that hangs under pipelined reads for the other, and every read is answered', async () => {
    const down: string[] = []
    const db = backends({
      replicas: [family.replicaUrl, family.replica2Url],
      onEvent: (event) => {
        if (event.type === 'down') down.push(event.replica)
      },
    })
    await upIn(db)
    await burst(db, 400)
    const reads = burst(db, 6_000)
    // Frozen while reads are pipelined on it.
    await until(() => (db.stats().readsByNode[db.replicas()[0]?.name ?? ''] ?? 0) > 600, 'reads on replica 1', 10_000)
    await family.control.freezeReplica()
    const started = Date.now()
    const settled = await Promise.race([
      reads.then(
        (rows) => ({ rows, error: undefined }),
        (error: unknown) => ({ rows: undefined, error }),
      ),
      sleep(15_000).then(() => 'pending' as const),
    ])
    await family.control.thawReplica()
    expect(settled).not.toBe('pending')
    const { rows, error } = settled as { rows?: { qty: number }[]; error: unknown }
    expect(error).toBeUndefined()
    for (const [i, row] of (rows ?? []).entries()) expect(row.qty).toBe(i % ROWS)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(db.stats().pipelinedReads).toBeGreaterThan(0)
    // The freeze hit: replica 1 was cut and taken out of rotation.
    expect(down).toContain(db.replicas()[0]?.name)
  })

  it('leaves every connection read-only after pipelined reads of a view that turns read-only off', async () => {
    const db = backends()
    await upIn(db)
    // A view the guard cannot see into: its read looks like any other, so it takes the lane.
    await sql`create or replace view lane_ro_off as select set_config('default_transaction_read_only', 'off', false) as x`.execute(
      db.write,
    )
    await family.control.waitForReplicaCatchUp()
    const outcomes = await settled(600, (i) =>
      i % 50 === 0
        ? db.read
            .selectFrom('lane_ro_off' as 'items')
            .selectAll()
            .execute()
        : db.read
            .selectFrom('items')
            .select('qty')
            .where('qty', '=', i % ROWS)
            .execute(),
    )
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toEqual([])
    expect(db.stats().pipelinedReads).toBeGreaterThan(0)
    // Each session's default was put back before its connection served another read of its own.
    const settings = await settled(600, () =>
      readSql<{ ro: string }>`select current_setting('default_transaction_read_only') as ro`.execute(db.read),
    )
    const values = settings.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.rows[0]?.ro : 'failed'))
    const first = values.findIndex((value) => value !== 'on')
    // Reads sent behind the view's read on its connection, before its answer came, may see 'off' (on a
    // replica, which refuses every write regardless); none sent after the burst does.
    expect({ first, value: values[first] }).toEqual({ first: -1, value: undefined })
  })

  it('sends no read behind another with pipelineReads: false', async () => {
    const db = backends({ pipelineReads: false })
    await upIn(db)
    const rows = await burst(db, 600)
    for (const [i, row] of rows.entries()) expect(row.qty).toBe(i % ROWS)
    expect(db.stats().pipelinedReads).toBe(0)
  })
})

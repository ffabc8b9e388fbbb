// PostgreSQL reports no position in a write's reply. On the pools kysely-rw makes, the statement that reads it
// is pipelined behind an autocommit write, in the write's own round trip. Where pg cannot pipeline (a pool handed
// in, or pg before 8.23), a session reads it with a query of its own right after: off the write's latency path,
// and never skipped by the session's next read. Real replication, replay paused on the replica, so that a read
// without the position would return stale rows.
import { PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, createBackends } from '../src/index.js'
import { replication } from './harness/control.js'
import { type Family, postgresFamily, type TestDB } from './support/databases.js'
import { pipelinedBehind, queryText } from './support/round-trips.js'

const POSITION_SQL = 'select pg_current_wal_insert_lsn()::text as pos'

type Query = (this: unknown, ...args: unknown[]) => unknown

/**
 * Holds every position query sent on its own while closed, until opened: a slow answer, made on purpose.
 * Counts the ones pipelined behind a write (in the write's round trip), which it lets through.
 */
class PositionGate {
  readonly #proto = pg.Client.prototype as unknown as { query: Query }
  readonly #original = this.#proto.query
  #opened: Promise<void> = Promise.resolve()
  #open: () => void = () => {}
  held = 0
  pipelined = 0

  install(): void {
    const gate = this
    const original = this.#original
    this.#proto.query = function (this: unknown, ...args: unknown[]) {
      if (queryText(args[0]) !== POSITION_SQL) return original.apply(this, args)
      if (pipelinedBehind(this)) {
        gate.pipelined++
        return original.apply(this, args)
      }
      gate.held++
      return gate.#opened.then(() => original.apply(this, args))
    }
  }

  close(): void {
    this.#opened = new Promise((resolve) => {
      this.#open = resolve
    })
  }

  open(): void {
    this.#open()
  }

  uninstall(): void {
    this.open()
    this.#proto.query = this.#original
  }
}

const settledWithin = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), ms))])

const gate = new PositionGate()
let family: Family

beforeAll(() => {
  family = postgresFamily()
  gate.install()
})

afterEach(async () => {
  gate.open()
  await family.control.resumeReplay()
})

afterAll(() => {
  gate.uninstall()
})

const readName = (backend: Backends<TestDB>['read'], name: string) =>
  backend
    .selectFrom('position_items' as 'items')
    .select('qty')
    .where('name', '=', name)
    .executeTakeFirst()

/** Reads served by replicas so far, from `db.stats()`. */
const onReplicas = (stats: ReturnType<Backends<TestDB>['stats']>) =>
  Object.entries(stats.readsByNode)
    .filter(([node]) => node.startsWith('replica'))
    .reduce((n, [, count]) => n + count, 0)

/** Backends on `primary` and the replica, with the test table, once the replica has it and a check saw it. */
async function openBackends(primary: string | PostgresDialect): Promise<Backends<TestDB>> {
  const db = createBackends<TestDB>({
    dialect: 'postgres',
    primary,
    replicas: [family.replicaUrl],
    healthCheckIntervalMs: 100,
    maxReplicaLagMs: 600_000,
    readYourWrites: { maxWaitMs: 100 },
  })
  await family.createItems(db.write, 'position_items')
  await family.control.waitForReplicaCatchUp()
  for (let i = 0; i < 100 && !db.replicas()[0]?.position; i++) await new Promise((r) => setTimeout(r, 20))
  expect(db.replicas()[0]?.position).toBeTruthy()
  return db
}

/** Each session writes its own row (`prefix-i`, qty i), all at once. */
const writeEach = (sessions: readonly ReturnType<Backends<TestDB>['session']>[], prefix: string) =>
  Promise.all(
    sessions.map((session, i) =>
      session.write
        .insertInto('position_items' as 'items')
        .values({ name: `${prefix}-${i}`, qty: i })
        .execute(),
    ),
  )

describe("PostgreSQL session positions, on kysely-rw's own pools: in the write's round trip", () => {
  let db: Backends<TestDB>

  beforeAll(async () => {
    db = await openBackends(family.primaryUrl)
  })

  afterAll(async () => {
    await db?.destroy()
  })

  it('an autocommit write after a read brings its position back with it: no query of its own, and the next read needs no wait for it', async () => {
    await family.control.pauseReplay()
    const session = db.session()
    gate.close()
    const [held, pipelined] = [gate.held, gate.pipelined]
    for (let i = 0; i < 5; i++) {
      await session.write
        .insertInto('position_items' as 'items')
        .values({ name: `pipelined-${i}`, qty: i })
        .execute()
      // Position queries sent on their own are held: a read that needed one would not settle.
      const read = readName(session.read, `pipelined-${i}`)
      expect(await settledWithin(read, 2000)).toBe(true)
      // Replay is paused: only the primary has the row, and the read, which knows the position, went there.
      expect(await read).toEqual({ qty: i })
    }
    expect(gate.pipelined - pipelined).toBe(5)
    expect(gate.held).toBe(held)
    expect(await readName(db.read, 'pipelined-4')).toBeUndefined()
    // A token made at once is settled: it carries the position, and the next session reads the row too.
    expect(await readName(db.session(session.token()).read, 'pipelined-4')).toEqual({ qty: 4 })
    expect(gate.held).toBe(held)
  })

  it('a run of writes: the first brings its position, the others share one read after the run', async () => {
    await family.control.pauseReplay()
    const session = db.session()
    gate.close()
    const [held, pipelined] = [gate.held, gate.pipelined]
    for (let i = 0; i < 5; i++) {
      await session.write
        .insertInto('position_items' as 'items')
        .values({ name: `run-of-own-${i}`, qty: i })
        .execute()
    }
    expect(gate.pipelined - pipelined).toBe(1)
    const read = readName(session.read, 'run-of-own-4')
    // The read waits for the position of the run's last writes, held here.
    expect(await settledWithin(read, 300)).toBe(false)
    expect(gate.held - held).toBe(1)
    gate.open()
    expect(await read).toEqual({ qty: 4 })
    expect(await readName(db.read, 'run-of-own-4')).toBeUndefined()
  })

  it('a write that fails rejects with its own error, and its connection answers the next queries in order', async () => {
    const session = db.session()
    for (let i = 0; i < 10; i++) {
      // A value the column cannot take: refused when bound, the pipelined position statement still runs.
      const bad = sql`insert into position_items (name, qty) values (${`bad-${i}`}, ${'not a number'})`.execute(
        session.write,
      )
      await expect(bad).rejects.toThrow(/invalid input syntax for type integer/)
      const good = await session.write
        .insertInto('position_items' as 'items')
        .values({ name: `good-${i}`, qty: i })
        .returning('qty')
        .executeTakeFirstOrThrow()
      expect(good).toEqual({ qty: i })
      expect(await readName(session.read, `good-${i}`)).toEqual({ qty: i })
    }
    const rows = await db.write
      .selectFrom('position_items' as 'items')
      .select('name')
      .where('name', 'like', 'bad-%')
      .execute()
    expect(rows).toEqual([])
  })

  it('concurrent session writes each read their own write back with replay paused', async () => {
    await family.control.pauseReplay()
    const sessions = Array.from({ length: 20 }, () => db.session())
    const held = gate.held
    gate.close()
    await writeEach(sessions, 'concurrent')
    expect(await Promise.all(sessions.map((session, i) => readName(session.read, `concurrent-${i}`)))).toEqual(
      sessions.map((_, i) => ({ qty: i })),
    )
    expect(await readName(db.read, 'concurrent-0')).toBeUndefined()
    expect(gate.held).toBe(held)
  })
})

describe('PostgreSQL session positions, on a pool handed in: a query of their own, after the write', () => {
  let db: Backends<TestDB>

  beforeAll(async () => {
    db = await openBackends(new PostgresDialect({ pool: new pg.Pool({ connectionString: family.primaryUrl }) }))
  })

  afterAll(async () => {
    // Ends the pool handed in too, as Kysely's destroy() does.
    await db?.destroy()
  })

  it("an autocommit write returns before its position is read; the session's next read waits for it", async () => {
    await family.control.pauseReplay()
    const session = db.session()
    gate.close()
    const held = gate.held
    const write = session.write
      .insertInto('position_items' as 'items')
      .values({ name: 'unsettled', qty: 7 })
      .execute()
    // The write resolves while its position query is still held: it is not on the write's latency path.
    expect(await settledWithin(write, 5000)).toBe(true)
    // The position is asked for once the event loop has run what the write's result set off.
    await new Promise((resolve) => setImmediate(resolve))
    expect(gate.held).toBe(held + 1)
    const read = readName(session.read, 'unsettled')
    // The read does not run without the position: it waits for it, however long it takes.
    expect(await settledWithin(read, 300)).toBe(false)
    gate.open()
    // Replay is paused: only the primary has the row, and a read that knows the position goes there.
    expect(await read).toEqual({ qty: 7 })
    // A plain read, on the paused replica, does not have it.
    expect(await readName(db.read, 'unsettled')).toBeUndefined()
  })

  it('a token made while the position is being read makes the next session learn one from the primary', async () => {
    await family.control.pauseReplay()
    const session = db.session()
    gate.close()
    await session.write
      .insertInto('position_items' as 'items')
      .values({ name: 'token-unsettled', qty: 8 })
      .execute()
    const token = session.token()
    gate.open()
    const continued = db.session(token)
    expect(await readName(continued.read, 'token-unsettled')).toEqual({ qty: 8 })
    expect(await readName(db.read, 'token-unsettled')).toBeUndefined()
  })

  it('once the position is in, session reads go back to a replica that has it', async () => {
    const session = db.session()
    await session.write
      .insertInto('position_items' as 'items')
      .values({ name: 'settled', qty: 9 })
      .execute()
    await family.control.waitForReplicaCatchUp()
    // A replica on which an earlier test's wait timed out is skipped until a health check sees it move:
    // "in" means the checker has seen the replayed position, one round (100 ms here) after the replay.
    // Two rounds ending after the catch-up: the second one started after it.
    let seen = Date.now()
    for (let rounds = 0, i = 0; rounds < 2 && i < 250; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      const last = db.replicas()[0]?.lastCheck?.getTime() ?? 0
      if (last > seen) [seen, rounds] = [last, rounds + 1]
    }
    expect(db.replicas()[0]?.state).toBe('up')
    const before = db.stats()
    expect(await readName(session.read, 'settled')).toEqual({ qty: 9 })
    const after = db.stats()
    expect(after.fallbacks).toBe(before.fallbacks)
    expect(onReplicas(after) - onReplicas(before)).toBe(1)
  })

  it('session writes acknowledged while a position read is under way share the next one, and each session still reads its own write', async () => {
    await family.control.pauseReplay()
    const sessions = Array.from({ length: 20 }, () => db.session())
    const held = gate.held
    // Position reads are held: the first one sent stays in flight while all twenty writes are acknowledged.
    gate.close()
    await writeEach(sessions, 'batched')
    await new Promise((resolve) => setImmediate(resolve))
    // At most one in flight (sent before some writes were acknowledged) and one queued behind it for the rest.
    expect(gate.held - held).toBeLessThanOrEqual(2)
    const reading = Promise.all(sessions.map((session, i) => readName(session.read, `batched-${i}`)))
    gate.open()
    // Every session reads its own row back although the replica's replay is paused: each position covers
    // its write, or the read would have gone to the replica, which does not have the row.
    expect(await reading).toEqual(sessions.map((_, i) => ({ qty: i })))
    expect(await readName(db.read, 'batched-0')).toBeUndefined()
    expect(gate.held - held).toBeLessThanOrEqual(2)
  })

  it("a run of one session's writes is followed by one position read, which its next read waits for", async () => {
    await family.control.pauseReplay()
    const session = db.session()
    const held = gate.held
    for (let i = 0; i < 10; i++) {
      await session.write
        .insertInto('position_items' as 'items')
        .values({ name: `run-${i}`, qty: i })
        .execute()
    }
    expect(await readName(session.read, 'run-9')).toEqual({ qty: 9 })
    expect(await readName(db.read, 'run-9')).toBeUndefined()
    // Each write hands its position read to the next one still in flight: one read for the run.
    expect(gate.held - held).toBe(1)
  })
})

describe('PostgreSQL session positions at a WAL page boundary', () => {
  let db: Backends<TestDB>
  let admin: pg.Client

  beforeAll(async () => {
    db = await openBackends(family.primaryUrl)
    admin = new pg.Client(replication().postgres.adminPrimaryUrl)
    await admin.connect()
  })

  afterAll(async () => {
    await admin?.end()
    await db?.destroy()
  })

  const insertPosition = async () =>
    BigInt(
      (await admin.query<{ n: string }>(`select (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text as n`)).rows[0]
        ?.n ?? '0',
    )
  /** WAL the primary inserts for a non-transactional message of `bytes` (its record, aligned). */
  const pad = (bytes: number) =>
    admin.query(`select pg_logical_emit_message(false, 'kysely-rw-pad', repeat('x', $1))`, [bytes])
  const write = (session: ReturnType<Backends<TestDB>['session']>, name: string) =>
    session.write
      .insertInto('position_items' as 'items')
      .values({ name, qty: 1 })
      .execute()

  it("a write whose commit ends a page is read back on the replica at once: the primary's position past the next page's header is where the replica stops", async () => {
    const { rows } = await admin.query<{ page: number; segment: string }>(
      'select wal_block_size as page, bytes_per_wal_segment::text as segment from pg_control_init()',
    )
    const page = BigInt(rows[0]?.page ?? 0)
    const segment = BigInt(rows[0]?.segment ?? 0)
    const session = db.session()
    // The size of one session write's WAL: the second of two, once its heap page needs no full-page image. Names
    // of one length, so that every row, and every write's WAL, has the same size.
    const name = (kind: string, i: number) => `${kind}-${String(i).padStart(3, '0')}`
    let size = 0n
    for (let i = 0; i < 20 && size === 0n; i++) {
      await write(session, name('a', i))
      const before = await insertPosition()
      await write(session, name('b', i))
      const after = await insertPosition()
      if (before / page === after / page) size = after - before
    }
    expect(size).toBeGreaterThan(0n)
    const minPad = await (async () => {
      for (;;) {
        const before = await insertPosition()
        await pad(1)
        const after = await insertPosition()
        if (before / page === after / page) return after - before
      }
    })()
    // Pads the WAL until a write of that size ends exactly at a page's end, then writes; other WAL (a checkpoint,
    // autovacuum) can move the position between the steps, hence the attempts.
    let landed: bigint | undefined
    for (let attempt = 0; attempt < 50 && landed === undefined; attempt++) {
      const at = await insertPosition()
      const toEnd = page - (at % page)
      if (toEnd - size < minPad || (at + toEnd) % segment === 0n) {
        // Too close to the end for a pad, or a segment's end (its next page has the longer header): to the next page.
        await pad(Number(toEnd))
        continue
      }
      await pad(Number(1n + (toEnd - size - minPad)))
      if ((await insertPosition()) !== at + toEnd - size) continue
      await write(session, name('c', attempt))
      const after = await insertPosition()
      // The write's record ends the page: the primary's insert position is past the next page's header.
      if (after === at + toEnd + 24n) landed = BigInt(attempt)
    }
    expect(landed).toBeDefined()
    const before = db.stats()
    expect(await readName(session.read, name('c', Number(landed)))).toEqual({ qty: 1 })
    const after = db.stats()
    // Served by the replica within its replay's time, not by the primary once the wait budget ran out.
    expect(after.fallbacks - before.fallbacks).toBe(0)
    expect(after.waitMs - before.waitMs).toBeLessThan(100)
    expect(onReplicas(after) - onReplicas(before)).toBe(1)
  })
})

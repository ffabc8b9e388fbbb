// Read-your-writes sessions on real replication, with real lag: replay paused on the replica
// (pg_wal_replay_pause() / STOP SLAVE SQL_THREAD).
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BackendEvent, type Backends, createBackends, InvalidSessionTokenError, readSql } from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'
import { pipelinedBehind } from './support/round-trips.js'

const MAX_WAIT_MS = 100
const INTERVAL_MS = 100

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<TestDB>
  const events: BackendEvent[] = []

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      healthCheckIntervalMs: INTERVAL_MS,
      // Lag alone must not drain the replica here: these tests are about sessions.
      maxReplicaLagMs: 600_000,
      readYourWrites: { maxWaitMs: MAX_WAIT_MS },
      onEvent: (event) => events.push(event),
    })
    await family.createItems(db.write, 'items')
    await family.control.waitForReplicaCatchUp()
    await until(() => db.replicas()[0]?.position !== null, 'the first health check')
  })

  afterAll(async () => {
    await family.control.resumeReplay()
    await db?.destroy()
  })

  const servedBy = async (backend: Parameters<ReturnType<typeof readSql>['execute']>[0]) =>
    (await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(backend)).rows[0]?.where

  it('returns 0 stale rows over 1000 write-then-read pairs while replay is paused', async () => {
    await family.control.pauseReplay()
    const statsBefore = db.stats()
    let stale = 0
    let slowest = 0
    // 10 users at a time, 100 pairs each; every user reads back what it just wrote.
    await Promise.all(
      Array.from({ length: 10 }, async (_, user) => {
        const session = db.session()
        for (let i = 0; i < 100; i++) {
          const name = `pair-${user}-${i}`
          await session.write.insertInto('items').values({ name, qty: i }).execute()
          const started = Date.now()
          const row = await session.read
            .selectFrom('items')
            .select(['name', 'qty'])
            .where('name', '=', name)
            .executeTakeFirst()
          slowest = Math.max(slowest, Date.now() - started)
          if (row?.qty !== i) stale++
        }
      }),
    )
    expect(stale).toBe(0)
    // Never blocked past maxWaitMs (plus the read itself on the primary, on a loaded 2-core machine).
    expect(slowest).toBeLessThan(MAX_WAIT_MS + 400)
    const stats = db.stats()
    expect(stats.fallbacks - statsBefore.fallbacks).toBeGreaterThan(0)
    // A stopped replica costs one wait, not one per read.
    expect(stats.waits - statsBefore.waits).toBeLessThan(50)
    // The replica really is behind: a plain read does not see the rows.
    expect(await db.read.selectFrom('items').select('id').where('name', '=', 'pair-0-0').execute()).toEqual([])
  })

  it('sends session reads back to the replica once replay resumes', async () => {
    await family.control.resumeReplay()
    await family.control.waitForReplicaCatchUp()
    const session = db.session()
    await session.write.insertInto('items').values({ name: 'after-resume', qty: 1 }).execute()
    await until(async () => (await servedBy(session.read)) === 'replica', 'a session read served by the replica')
    expect(await session.read.selectFrom('items').select('name').where('name', '=', 'after-resume').execute()).toEqual([
      { name: 'after-resume' },
    ])
  })

  it('waits for a replica that replays within maxWaitMs instead of falling back', async () => {
    const session = db.session()
    await session.write.insertInto('items').values({ name: 'waited', qty: 1 }).execute()
    const before = db.stats()
    const row = await session.read.selectFrom('items').select('name').where('name', '=', 'waited').executeTakeFirst()
    expect(row).toEqual({ name: 'waited' })
    const after = db.stats()
    // Served by the replica, after at most one wait, with no fallback.
    expect(after.fallbacks).toBe(before.fallbacks)
    expect((after.readsByNode[replicaName(after)] ?? 0) - (before.readsByNode[replicaName(after)] ?? 0)).toBe(1)
  })

  it('keeps concurrent session reads on the replica while it keeps up', async () => {
    await family.control.resumeReplay()
    await family.control.waitForReplicaCatchUp()
    const before = db.stats()
    let stale = 0
    // 20 users at once, each writing then reading back: every read needs a position newer than any health
    // check saw, so each one either waits for the replica (shared polls of its position) or falls back.
    await Promise.all(
      Array.from({ length: 20 }, async (_, user) => {
        const session = db.session()
        for (let i = 0; i < 25; i++) {
          const name = `busy-${user}-${i}`
          await session.write.insertInto('items').values({ name, qty: i }).execute()
          const row = await session.read.selectFrom('items').select('qty').where('name', '=', name).executeTakeFirst()
          if (row?.qty !== i) stale++
        }
      }),
    )
    const after = db.stats()
    expect(stale).toBe(0)
    const replicaReads = (after.readsByNode[replicaName(after)] ?? 0) - (before.readsByNode[replicaName(after)] ?? 0)
    const fallbacks = after.fallbacks - before.fallbacks
    console.info(`${family.dialect}: ${fallbacks} of 500 session reads on the primary`)
    // A replica that keeps up serves its sessions: measured 0 to 4 of the 500 reads on the primary. A replay that
    // stalls past replay-waits.ts's JOIN_WINDOW_MS (25 ms) sends the reads of that moment there: 38 and 40 of 500
    // while another process wrote to the disk with O_DSYNC, when MariaDB's test servers still synced each commit.
    // Waits that each held a pooled connection, at most two at once, sent 316 of them there on MariaDB.
    expect(replicaReads + fallbacks).toBe(500)
    expect(fallbacks).toBeLessThanOrEqual(50)
  })

  it('gives read-your-writes across requests through the token', async () => {
    await family.control.pauseReplay()
    try {
      const a = db.session()
      await a.write.transaction().execute(async (tx) => {
        await tx.insertInto('items').values({ name: 'from-a', qty: 42 }).execute()
      })
      const token = a.token()
      expect(typeof token).toBe('string')
      expect(token).not.toContain('apppw')
      const b = db.session(token)
      expect(await b.read.selectFrom('items').select('qty').where('name', '=', 'from-a').executeTakeFirst()).toEqual({
        qty: 42,
      })
      // A fresh session has no such guarantee: the paused replica does not have the row.
      expect(await db.session().read.selectFrom('items').select('qty').where('name', '=', 'from-a').execute()).toEqual(
        [],
      )
    } finally {
      await family.control.resumeReplay()
    }
  })

  it('runs reads on the primary for malformed and foreign tokens, and refuses a non-string', async () => {
    const fallbacks = db.stats().fallbacks
    for (const token of ['garbage', 'rw1.not-base64-json', foreignToken(family)]) {
      const session = db.session(token)
      expect(await servedBy(session.read)).toBe('primary')
    }
    expect(db.stats().fallbacks - fallbacks).toBe(3)
    expect(events.some((e) => e.type === 'fallback' && e.reason === 'foreign-token')).toBe(true)
    expect(() => db.session(42 as unknown as string)).toThrow(InvalidSessionTokenError)
  })

  it('records positions with the round trips the issue allows', async () => {
    const counted = await countRoundTrips(family, async (session) => {
      await session.write.insertInto('items').values({ name: 'rt-auto', qty: 1 }).execute()
    })
    const inTransaction = await countRoundTrips(family, async (session) => {
      await session.write.transaction().execute(async (tx) => {
        await tx.insertInto('items').values({ name: 'rt-tx', qty: 1 }).execute()
      })
    })
    const plainTransaction = await countRoundTrips(family, async (_session, backends) => {
      await backends.write.transaction().execute(async (tx) => {
        await tx.insertInto('items').values({ name: 'rt-plain', qty: 1 }).execute()
      })
    })
    // 0 extra on either: PostgreSQL's position statement is pipelined behind an autocommit write (see
    // session-position.integration.test.ts) and sent with COMMIT in a transaction; MariaDB's OK packet carries it.
    expect(counted).toBe(1)
    expect(inTransaction).toBe(plainTransaction)
    console.log(
      `[${family.dialect}] round trips: session autocommit write ${counted}, session transaction ${inTransaction}, plain transaction ${plainTransaction}`,
    )
  })
})

function replicaName(stats: { readsByNode: Record<string, number> }): string {
  return Object.keys(stats.readsByNode).find((name) => name.startsWith('replica')) ?? 'replica'
}

// A well-formed token whose cluster is not this one (as after a failover, or from another database).
function foreignToken(family: Family): string {
  const position = family.dialect === 'postgres' ? '0/1' : '0-1-1'
  return `rw1.${Buffer.from(JSON.stringify({ c: 'another-cluster:1', p: position })).toString('base64url')}`
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Counts the statements the primary's driver sends while `run` executes, on fresh backends with one
 * connection. Only that connection's statements count: the suite's other backends run health checks
 * in the background on other connections of the same process.
 */
async function countRoundTrips(
  family: Family,
  run: (session: ReturnType<Backends<TestDB>['session']>, backends: Backends<TestDB>) => Promise<void>,
): Promise<number> {
  const poolSize = family.dialect === 'postgres' ? { max: 1 } : { connectionLimit: 1 }
  const primary =
    family.dialect === 'postgres'
      ? { connectionString: family.primaryUrl, ...poolSize }
      : { uri: family.primaryUrl, ...poolSize }
  const backends = createBackends<TestDB>({ dialect: family.dialect, primary })
  const proto =
    family.dialect === 'postgres'
      ? ((await import('pg')).default.Client.prototype as unknown as { query: (...args: unknown[]) => unknown })
      : ((await import('mysql2')).Connection.prototype as unknown as { query: (...args: unknown[]) => unknown })
  const original = proto.query
  // `rides`: pipelined behind a query in flight, in its round trip.
  const calls: { client: unknown; text: unknown; rides: boolean }[] = []
  proto.query = function (this: unknown, ...args: unknown[]) {
    calls.push({ client: this, text: args[0], rides: pipelinedBehind(this) })
    return original.apply(this, args)
  }
  try {
    // Opens the one connection (set-up statements excluded) and marks it as the one to count on:
    // the connection that sent this marker.
    const marker = 'select 42 as kysely_rw_round_trip_marker'
    await sql.raw(marker).execute(backends.write)
    const ours = calls.find((call) => call.text === marker)?.client
    expect(ours).toBeDefined()
    const roundTripsOf = (list: typeof calls) => list.filter((call) => call.client === ours && !call.rides).length
    const before = roundTripsOf(calls)
    await run(backends.session(), backends)
    // What the write set off after it returned counts too: a session reads its position once the event loop
    // turns with no write in flight, on the pool's one connection, so the closing marker asked for after that
    // turn is served once the read is done.
    await new Promise((resolve) => setImmediate(resolve))
    const closing = 'select 43 as kysely_rw_round_trip_marker'
    await sql.raw(closing).execute(backends.write)
    const after = calls.findIndex((call) => call.text === closing)
    return roundTripsOf(calls.slice(0, after)) - before
  } finally {
    proto.query = original
    await backends.destroy()
  }
}

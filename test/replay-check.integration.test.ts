// A session read that reaches a replica before the replica is known to have replayed the session's last
// write checks the replica's replay position in its own round trip, and is trusted only when the replica
// replayed it; otherwise its connection goes back to the pool and the read waits or falls back as before.
// Real PostgreSQL streaming replication, replay really paused (pg_wal_replay_pause()).
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, createBackends, readSql } from '../src/index.js'
import { type Family, postgresFamily, type TestDB } from './support/databases.js'
import { queryText } from './support/round-trips.js'

type Query = (this: unknown, ...args: unknown[]) => unknown

describe('postgres: the replay check in a read’s own round trip', () => {
  let family: Family
  const opened: Backends<TestDB>[] = []
  // The `route` events of session handles, by the first word of the node's name: 'primary' or 'replica'.
  const routes: string[] = []

  const backends = (options: {
    maxWaitMs: number
    replicaPoolSize?: number
    healthCheckIntervalMs?: number
    log?: (event: unknown) => void
  }) => {
    const db = createBackends<TestDB>({
      dialect: 'postgres',
      primary: family.primaryUrl,
      replicas: [
        options.replicaPoolSize === undefined
          ? family.replicaUrl
          : { connectionString: family.replicaUrl, max: options.replicaPoolSize },
      ],
      healthCheckIntervalMs: options.healthCheckIntervalMs ?? 100,
      maxReplicaLagMs: 600_000,
      readYourWrites: { maxWaitMs: options.maxWaitMs },
      ...(options.log ? { log: options.log } : {}),
      onEvent: (event) => {
        if (event.type === 'route' && event.session) routes.push(event.node.split(' ')[0] ?? '')
      },
    })
    opened.push(db)
    return db
  }

  const servedBy = async (backend: Parameters<ReturnType<typeof readSql>['execute']>[0]) =>
    (await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(backend)).rows[0]?.where

  /** A session that read from the replica once, then wrote a row with replay paused: its next read needs it. */
  const writeWhilePaused = async (db: Backends<TestDB>, name: string, qty: number) => {
    const session = db.session()
    // Also warms the replica's pool: a new connection is verified first, which takes its read out of the check.
    expect(await servedBy(session.read)).toBe('replica')
    await family.control.pauseReplay()
    await session.write.insertInto('items').values({ name, qty }).execute()
    return { session, before: mark(db) }
  }

  const mark = (db: Backends<TestDB>) => ({ ...db.stats(), routeEvents: routes.length })

  /** What routing did for the reads since `before`. */
  const routedSince = (db: Backends<TestDB>, before: ReturnType<typeof mark>) => {
    const after = db.stats()
    return {
      routes: routes.slice(before.routeEvents),
      checks: after.replayChecks - before.replayChecks,
      misses: after.replayCheckMisses - before.replayCheckMisses,
      waits: after.waits - before.waits,
      waitTimeouts: after.fallbacksByReason['wait-timeout'] - before.fallbacksByReason['wait-timeout'],
    }
  }

  beforeAll(async () => {
    family = postgresFamily()
    const setup = createBackends<TestDB>({ dialect: 'postgres', primary: family.primaryUrl })
    await family.createItems(setup.write, 'items')
    await setup.destroy()
    await family.control.waitForReplicaCatchUp()
  })

  afterEach(async () => {
    await family.control.resumeReplay()
    await Promise.all(opened.splice(0).map((db) => db.destroy()))
  })

  afterAll(async () => {
    await family.control.resumeReplay()
  })

  /**
   * A session writes `name`, the replica replays it, and the session reads it back: one check, which
   * confirms it, with no wait and no fallback. Returns the session, and what the replica's clients sent and
   * received during the read: query calls, and ReadyForQuery messages (one per Sync, so one per exchange).
   */
  const readConfirmedByCheck = async (name: string, qty: number) => {
    // No health check after the first: only the read's own check can tell the pool the replica replayed the write.
    const db = backends({ maxWaitMs: 1000, healthCheckIntervalMs: 60_000 })
    // The first check done before the write, so that it cannot see the write replayed.
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first health check')
    const session = db.session()
    // Warms the replica's pool: a new connection is verified first, which takes its read out of the check.
    expect(await servedBy(session.read)).toBe('replica')
    const replica = recordReplica(family)
    try {
      await session.write.insertInto('items').values({ name, qty }).execute()
      // The replica replays within milliseconds: wait until it did, so that the check confirms it.
      await family.control.waitForReplicaCatchUp()
      replica.reset()
      const before = mark(db)
      expect(await session.read.selectFrom('items').select('qty').where('name', '=', name).execute()).toEqual([{ qty }])
      expect(routedSince(db, before)).toEqual({ routes: ['replica'], checks: 1, misses: 0, waits: 0, waitTimeouts: 0 })
      expect(db.stats().fallbacks).toBe(before.fallbacks)
      return { db, session, calls: [...replica.calls], readyForQuery: replica.readyForQuery() }
    } finally {
      replica.restore()
    }
  }

  it('serves a session read from the replica after a check in the same exchange, with no wait', async () => {
    const { db, session, calls, readyForQuery } = await readConfirmedByCheck('checked', 7)
    // One query call, the read, and one Sync answered: the check went in front of the read, in its messages.
    expect(calls).toEqual([expect.stringContaining('"items"')])
    expect(readyForQuery).toBe(1)
    // What the check answered is known to the pool: the session's next read needs no check.
    const before = db.stats()
    expect(await session.read.selectFrom('items').select('qty').where('name', '=', 'checked').execute()).toEqual([
      { qty: 7 },
    ])
    expect(db.stats().replayChecks).toBe(before.replayChecks)
  })

  it('where pg cannot pipeline (before 8.23), the check still goes in the same exchange as the read', async () => {
    const restore = withoutPipelining()
    try {
      const { calls, readyForQuery } = await readConfirmedByCheck('unpipelined', 5)
      expect(calls).toEqual([expect.stringContaining('"items"')])
      expect(readyForQuery).toBe(1)
    } finally {
      restore()
    }
  })

  it.each([
    ['pipelined', false],
    ['queued, where pg cannot pipeline', true],
  ])(
    'under REPEATABLE READ, does not trust a check in the read’s transaction; later checks go %s, and confirm',
    async (how, unpipelined) => {
      // The read's snapshot would be the check's, taken before the position is read: a check there proves nothing.
      const restore = unpipelined ? withoutPipelining() : () => {}
      try {
        const db = createBackends<TestDB>({
          dialect: 'postgres',
          primary: family.primaryUrl,
          replicas: [
            {
              connectionString: family.replicaUrl,
              max: 1,
              options: '-c default_transaction_isolation=repeatable\\ read',
            },
          ],
          healthCheckIntervalMs: 60_000,
          maxReplicaLagMs: 600_000,
          readYourWrites: { maxWaitMs: 2000 },
        })
        opened.push(db)
        await until(() => db.replicas()[0]?.lastCheck != null, 'the first health check')
        const session = db.session()
        const isolation = await readSql<{
          level: string
        }>`select current_setting('transaction_isolation') as level`.execute(session.read)
        expect(isolation.rows).toEqual([{ level: 'repeatable read' }])
        for (const [i, expected] of [
          [1, { checks: 1, misses: 1, waits: 1 }],
          [2, { checks: 1, misses: 0, waits: 0 }],
        ] as const) {
          await session.write
            .insertInto('items')
            .values({ name: `rr ${how} ${i}`, qty: i })
            .execute()
          await family.control.waitForReplicaCatchUp()
          const before = mark(db)
          expect(
            await session.read.selectFrom('items').select('qty').where('name', '=', `rr ${how} ${i}`).execute(),
          ).toEqual([{ qty: i }])
          const { checks, misses, waits } = routedSince(db, before)
          expect({ checks, misses, waits }).toEqual(expected)
        }
      } finally {
        restore()
      }
    },
  )

  it('discards a read the replica answered before replaying the write, and serves it once replay resumes', async () => {
    const db = backends({ maxWaitMs: 5000 })
    const { session, before } = await writeWhilePaused(db, 'missed', 3)
    const reading = session.read.selectFrom('items').select('qty').where('name', '=', 'missed').execute()
    await until(() => db.stats().replayCheckMisses > before.replayCheckMisses, 'the check to miss')
    // The stale answer (no row) was not returned: the read now waits for the replica.
    let settled = false
    void reading.finally(() => {
      settled = true
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(settled).toBe(false)
    await family.control.resumeReplay()
    expect(await reading).toEqual([{ qty: 3 }])
    // Served by the replica once it replayed the write, not by the primary.
    // One route event, for the node that served the read.
    expect(routedSince(db, before)).toEqual({ routes: ['replica'], checks: 1, misses: 1, waits: 1, waitTimeouts: 0 })
    expect(db.stats().fallbacks - before.fallbacks).toBe(0)
  })

  it('holds no replica connection while a read whose check missed waits', async () => {
    // One connection to the replica: were the missed read to keep it while it waits, a plain read would queue.
    const db = backends({ maxWaitMs: 3000, replicaPoolSize: 1 })
    const { session, before } = await writeWhilePaused(db, 'held', 1)
    const reading = session.read.selectFrom('items').select('qty').where('name', '=', 'held').execute()
    await until(() => db.stats().replayCheckMisses > before.replayCheckMisses, 'the check to miss')
    const started = Date.now()
    expect(await servedBy(db.read)).toBe('replica')
    expect(Date.now() - started).toBeLessThan(1000)
    await family.control.resumeReplay()
    expect(await reading).toEqual([{ qty: 1 }])
  })

  it('falls back to the primary for a read whose check missed and whose wait timed out', async () => {
    const db = backends({ maxWaitMs: 100 })
    const { session, before } = await writeWhilePaused(db, 'timed-out', 9)
    expect(await session.read.selectFrom('items').select('qty').where('name', '=', 'timed-out').execute()).toEqual([
      { qty: 9 },
    ])
    expect(routedSince(db, before)).toEqual({ routes: ['primary'], checks: 1, misses: 1, waits: 1, waitTimeouts: 1 })
  })

  it('does not trust an error the lagging replica answered: a column it has not replayed yet', async () => {
    const db = backends({ maxWaitMs: 100 })
    const { session } = await writeWhilePaused(db, 'uncoloured', 0)
    await sql`alter table items add column if not exists colour text`.execute(session.write)
    try {
      await sql`insert into items (name, qty, colour) values ('coloured', 1, 'red')`.execute(session.write)
      const before = mark(db)
      const rows = await readSql<{ colour: string }>`select colour from items where name = 'coloured'`.execute(
        session.read,
      )
      expect(rows.rows).toEqual([{ colour: 'red' }])
      expect(routedSince(db, before)).toEqual({ routes: ['primary'], checks: 1, misses: 1, waits: 1, waitTimeouts: 1 })
    } finally {
      await family.control.resumeReplay()
      await sql`alter table items drop column if exists colour`.execute(db.write)
    }
  })

  // Each of these reads is routed again before it sends anything: a wait, which times out, then the primary.
  const withoutCheck = { routes: ['primary'], checks: 0, misses: 0, waits: 1, waitTimeouts: 1 }

  it('routes a stream again before it starts, without a check', async () => {
    const db = backends({ maxWaitMs: 100 })
    const { session, before } = await writeWhilePaused(db, 'streamed', 5)
    const streamed: unknown[] = []
    for await (const row of session.read.selectFrom('items').select('qty').where('name', '=', 'streamed').stream()) {
      streamed.push(row)
    }
    expect(streamed).toEqual([{ qty: 5 }])
    expect(routedSince(db, before)).toEqual(withoutCheck)
  })

  it('routes a read transaction again before its BEGIN, without a check', async () => {
    const db = backends({ maxWaitMs: 100 })
    const { session, before } = await writeWhilePaused(db, 'in-transaction', 6)
    const rows = await session.read
      .transaction()
      .execute((tx) => tx.selectFrom('items').select('qty').where('name', '=', 'in-transaction').execute())
    expect(rows).toEqual([{ qty: 6 }])
    expect(routedSince(db, before)).toEqual(withoutCheck)
  })

  it('checks logged reads too: a miss that falls back is logged once, on the primary, with the stale answer dropped', async () => {
    const logged: { level?: unknown; node?: unknown; query?: { sql?: unknown } }[] = []
    const db = backends({ maxWaitMs: 100, log: (event) => logged.push(event as (typeof logged)[number]) })
    const { session, before } = await writeWhilePaused(db, 'logged', 4)
    const from = logged.length
    expect(await session.read.selectFrom('items').select('qty').where('name', '=', 'logged').execute()).toEqual([
      { qty: 4 },
    ])
    expect(routedSince(db, before)).toEqual({ routes: ['primary'], checks: 1, misses: 1, waits: 1, waitTimeouts: 1 })
    const entries = logged.slice(from).filter((event) => String(event.query?.sql).includes('"items"'))
    expect(entries.map((event) => [event.level, String(event.node).split(' ')[0]])).toEqual([['query', 'primary']])
  })

  it('checks logged reads too: a hit is logged on the replica', async () => {
    const logged: { node?: unknown; query?: { sql?: unknown } }[] = []
    const db = backends({
      maxWaitMs: 1000,
      healthCheckIntervalMs: 60_000,
      log: (event) => logged.push(event as (typeof logged)[number]),
    })
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first health check')
    const session = db.session()
    expect(await servedBy(session.read)).toBe('replica')
    await session.write.insertInto('items').values({ name: 'logged hit', qty: 2 }).execute()
    await family.control.waitForReplicaCatchUp()
    const before = mark(db)
    const from = logged.length
    expect(await session.read.selectFrom('items').select('qty').where('name', '=', 'logged hit').execute()).toEqual([
      { qty: 2 },
    ])
    expect(routedSince(db, before)).toEqual({ routes: ['replica'], checks: 1, misses: 0, waits: 0, waitTimeouts: 0 })
    expect(logged.slice(from).map((event) => String(event.node).split(' ')[0])).toEqual(['replica'])
  })
})

/**
 * Makes every pg Client made from now on behave as before pg 8.23, which had no pipeline mode: its
 * `pipeline` property reads undefined, whatever the constructor sets.
 */
function withoutPipelining(): () => void {
  const proto = pg.Client.prototype as unknown as { pipeline?: unknown }
  Object.defineProperty(proto, 'pipeline', { configurable: true, get: () => undefined, set: () => {} })
  return () => {
    delete proto.pipeline
  }
}

/**
 * Records the query calls on clients of the replica (by port), by SQL text, and counts the ReadyForQuery
 * messages those clients receive: one per Sync the server answered.
 */
function recordReplica(family: Family) {
  const proto = pg.Client.prototype as unknown as { query: Query }
  const original = proto.query
  const port = Number(new URL(family.replicaUrl).port)
  const calls: string[] = []
  const heard = new WeakSet<object>()
  let readyForQuery = 0
  proto.query = function (this: unknown, ...args: unknown[]) {
    const client = this as { port?: number; connection?: { on(event: string, listener: () => void): void } }
    if (client.port === port) {
      const [first] = args
      calls.push(queryText(first))
      if (client.connection && !heard.has(client)) {
        heard.add(client)
        client.connection.on('readyForQuery', () => {
          readyForQuery++
        })
      }
    }
    return original.apply(this, args)
  }
  return {
    calls,
    readyForQuery: () => readyForQuery,
    reset() {
      calls.length = 0
      readyForQuery = 0
    },
    restore() {
      proto.query = original
    },
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

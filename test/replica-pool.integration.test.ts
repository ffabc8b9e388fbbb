// The replica pool on real replication: lag drains a replica, a killed replica loses no read, and the
// selection strategies spread reads as documented.
import { sql } from 'kysely'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type BackendEvent,
  type Backends,
  type BackendsConfig,
  createBackends,
  NoReplicaAvailableError,
  PrimaryUnavailableError,
  readSql,
} from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

const INTERVAL_MS = 100

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  const opened: Backends<TestDB>[] = []

  beforeAll(async () => {
    family = familyOf()
    const setup = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl })
    await family.createItems(setup.write, 'items')
    await setup.destroy()
    await family.control.waitForReplicaCatchUp()
  })

  afterEach(async () => {
    await family.control.resumeReplay()
    await Promise.all(opened.splice(0).map((db) => db.destroy()))
  })

  function open(config: Partial<BackendsConfig>, events: BackendEvent[] = []): Backends<TestDB> {
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      healthCheckIntervalMs: INTERVAL_MS,
      onEvent: (event) => events.push(event),
      ...config,
    })
    opened.push(db)
    return db
  }

  it('drains a replica whose lag passes the budget within one interval, and readmits it once caught up', async () => {
    const events: BackendEvent[] = []
    const maxReplicaLagMs = 300
    const db = open({ maxReplicaLagMs }, events)
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first check')
    expect(db.replicas()[0]?.state).toBe('up')

    await family.control.pauseReplay()
    const writes = writeSteadily(db)
    const lagStarted = Date.now()
    await until(() => events.some((e) => e.type === 'drain'), 'the drain event', 5000)
    const drainedAfter = Date.now() - lagStarted
    // Lag passes the budget at maxReplicaLagMs; the next check (one interval later) drains it.
    expect(drainedAfter).toBeLessThan(maxReplicaLagMs + 2 * INTERVAL_MS + 200)
    expect(db.replicas()[0]).toMatchObject({ state: 'lagging' })
    expect(db.replicas()[0]?.lagMs).toBeGreaterThan(maxReplicaLagMs)

    // A drained replica serves no plain read: they run on the primary.
    const before = db.stats()
    for (let i = 0; i < 20; i++) await db.read.selectFrom('items').select('id').limit(1).execute()
    const after = db.stats()
    expect(readsOn(after, 'replica') - readsOn(before, 'replica')).toBe(0)
    expect(after.fallbacks - before.fallbacks).toBe(20)

    await writes.stop()
    await family.control.resumeReplay()
    await until(() => events.some((e) => e.type === 'readmit'), 'the readmit event', 5000)
    expect(db.replicas()[0]?.state).toBe('up')
    const readmitted = db.stats()
    await db.read.selectFrom('items').select('id').limit(1).execute()
    expect(readsOn(db.stats(), 'replica') - readsOn(readmitted, 'replica')).toBe(1)
  })

  it('loses no read when the replica is killed during a stream of reads, and readmits it after restart', async () => {
    const events: BackendEvent[] = []
    const db = open({}, events)
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first check')
    const failures: unknown[] = []
    let served = 0
    const reading = readSteadily(db, (error) => (error ? failures.push(error) : served++))
    await sleep(200)
    await family.control.killReplica()
    await sleep(300)
    await reading.stop()
    expect(failures).toEqual([])
    expect(served).toBeGreaterThan(50)
    expect(db.replicas()[0]?.state).toBe('down')
    expect(events.some((e) => e.type === 'down')).toBe(true)
    // Reads caught by the kill were retried on the primary, and say so.
    expect(events.some((e) => e.type === 'fallback' && e.reason === 'replica-error')).toBe(true)
    expect(events.some((e) => e.type === 'route' && e.session)).toBe(false)
    // No secrets in what events carry.
    expect(JSON.stringify(events)).not.toMatch(/apppw|postgres:\/\/app@/)

    await family.control.startReplica()
    await until(() => db.replicas()[0]?.state === 'up', 'the replica to be readmitted', 15_000)
    expect(events.some((e) => e.type === 'readmit')).toBe(true)
  })

  it("fails reads with NoReplicaAvailableError when the replica dies and whenNoReplica is 'error'", async () => {
    const db = open({ whenNoReplica: 'error' })
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first check')
    await db.read.selectFrom('items').select('id').limit(1).execute()
    await family.control.killReplica()
    try {
      const error = await db.read
        .selectFrom('items')
        .select('id')
        .limit(1)
        .execute()
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(NoReplicaAvailableError)
      expect((error as Error).message).toMatch(/whenNoReplica/)
    } finally {
      await family.control.startReplica()
    }
  })

  it("sends a session with a foreign token to the primary even under whenNoReplica: 'error'", async () => {
    const events: BackendEvent[] = []
    const db = open({ whenNoReplica: 'error' }, events)
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first check')
    const session = db.session('rw1.tampered')
    const { rows } = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(session.read)
    expect(rows[0]?.where).toBe('primary')
    expect(events.some((e) => e.type === 'fallback' && e.reason === 'foreign-token')).toBe(true)
    expect(events.some((e) => e.type === 'route' && e.session)).toBe(true)
  })

  it.each([
    ['round-robin', (counts: number[]) => expect(counts).toEqual([50, 50])],
    ['random', (counts: number[]) => expect(Math.min(...counts)).toBeGreaterThan(20)],
  ] as const)('spreads reads over two replicas with %s', async (selection, check) => {
    const db = open({ replicas: [family.replicaUrl, family.replicaUrl], replicaSelection: selection })
    for (let i = 0; i < 100; i++) await db.read.selectFrom('items').select('id').limit(1).execute()
    const stats = db.stats()
    const counts = ['replica 1', 'replica 2'].map((prefix) => readsOn(stats, prefix))
    expect(counts[0]! + counts[1]!).toBe(100)
    check(counts)
  })

  it('sends every read to the replica a custom selection returns', async () => {
    const seen: string[][] = []
    const custom = open({
      replicas: [family.replicaUrl, family.replicaUrl],
      replicaSelection: (candidates) => {
        seen.push(candidates.map((c) => c.name))
        return candidates[candidates.length - 1]!
      },
    })
    for (let i = 0; i < 10; i++) await custom.read.selectFrom('items').select('id').limit(1).execute()
    expect(readsOn(custom.stats(), 'replica 2')).toBe(10)
    expect(seen).toHaveLength(10)
    expect(seen[0]?.map((name) => name.split(' ').slice(0, 2).join(' '))).toEqual(['replica 1', 'replica 2'])
  })

  it('gives a drained (dead) replica no reads while the other serves them', async () => {
    const db = open({ replicas: [family.replicaUrl, deadUrl(family)] })
    await until(() => db.replicas()[1]?.state === 'down', 'the dead replica to be marked down')
    for (let i = 0; i < 20; i++) await db.read.selectFrom('items').select('id').limit(1).execute()
    const stats = db.stats()
    expect(readsOn(stats, 'replica 2')).toBe(0)
    expect(readsOn(stats, 'replica 1')).toBe(20)
    expect(db.replicas().map((r) => r.state)).toEqual(['up', 'down'])
    // Names carry host, port and database, never the password.
    expect(JSON.stringify(db.replicas())).not.toMatch(/apppw/)
  })
})

function readsOn(stats: { readsByNode: Record<string, number> }, prefix: string): number {
  return Object.entries(stats.readsByNode)
    .filter(([name]) => name.startsWith(prefix))
    .reduce((sum, [, count]) => sum + count, 0)
}

// Port 1 on loopback: nothing listens there, connections are refused at once.
function deadUrl(family: Family): string {
  const url = new URL(family.replicaUrl)
  url.port = '1'
  return url.toString()
}

function writeSteadily(db: Backends<TestDB>) {
  let running = true
  const loop = (async () => {
    for (let i = 0; running; i++) {
      await db.write
        .insertInto('items')
        .values({ name: `steady-${i}`, qty: i })
        .execute()
      await sleep(20)
    }
  })()
  return {
    async stop() {
      running = false
      await loop
    },
  }
}

function readSteadily(db: Backends<TestDB>, done: (error?: unknown) => void) {
  let running = true
  const worker = async () => {
    while (running) {
      await db.read
        .selectFrom('items')
        .select('id')
        .limit(1)
        .execute()
        .then(
          () => done(),
          (error: unknown) => done(error),
        )
      await sleep(2)
    }
  }
  const loops = Promise.all([worker(), worker(), worker(), worker()])
  return {
    async stop() {
      running = false
      await loops
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await sleep(10)
  }
}

describe.each(families)('%s, primary down', (_name, familyOf) => {
  it('fails writes fast with PrimaryUnavailableError and keeps reads on the healthy replica', async () => {
    const family = familyOf()
    const primary = new URL(family.primaryUrl)
    primary.port = '1'
    primary.password = 'topsecret'
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: primary.toString(),
      replicas: [family.replicaUrl],
      healthCheckIntervalMs: INTERVAL_MS,
    })
    try {
      await sleep(3 * INTERVAL_MS)
      const started = Date.now()
      const error = await db.write
        .insertInto('items')
        .values({ name: 'x', qty: 1 })
        .execute()
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PrimaryUnavailableError)
      expect(Date.now() - started).toBeLessThan(1000)
      expect((error as Error).message).toMatch(/unreachable/)
      expect((error as Error).message).not.toMatch(/topsecret/)
      expect(db.replicas()[0]?.state).toBe('up')
      const { rows } = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(db.read)
      expect(rows[0]?.where).toBe('replica')
    } finally {
      await db.destroy()
    }
  })
})

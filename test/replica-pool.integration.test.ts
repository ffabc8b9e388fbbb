// The replica pool on real replication: lag drains a replica, a killed replica loses no read, and the
// selection strategies spread reads over two real replicas of one primary as documented. Which server
// served a read is asked of the server itself (`serverSql`), not only of `db.stats()`.
import { sql } from 'kysely'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type BackendEvent,
  type BackendStats,
  type Backends,
  type BackendsConfig,
  type CanRead,
  createBackends,
  NoReplicaAvailableError,
  PrimaryUnavailableError,
  type ReplicaCandidate,
  type ReplicaStatus,
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
    await Promise.all([family.control.waitForReplicaCatchUp(), family.control2.waitForReplicaCatchUp()])
  })

  afterEach(async () => {
    // Both, whatever failed: a replica left paused would lag in every later test and file.
    const resumed = await Promise.allSettled([family.control.resumeReplay(), family.control2.resumeReplay()])
    await Promise.all(opened.splice(0).map((db) => db.destroy()))
    for (const result of resumed) if (result.status === 'rejected') throw result.reason
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

  const bothReplicas = () => [family.replicaUrl, family.replica2Url]

  /** Runs `count` reads one after another on `backend`; who served each, as the server says. */
  async function serversOf(backend: CanRead<TestDB>, count: number): Promise<string[]> {
    const servers: string[] = []
    for (let i = 0; i < count; i++) {
      const { rows } = await readSql<{ server: string }>`${sql.raw(family.serverSql)}`.execute(backend)
      servers.push(String(rows[0]?.server))
    }
    return servers
  }

  async function bothCheckedAndUp(db: Backends<TestDB>): Promise<void> {
    await until(
      () => db.replicas().every((r) => r.lastCheck !== null && r.lagMs !== null && r.state === 'up'),
      'both replicas to be measured and up',
    )
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

  it("never sends a session with a foreign token to the primary under whenNoReplica: 'error'", async () => {
    // The token is a value the client controls (a cookie): it must not move reads onto the primary.
    const events: BackendEvent[] = []
    const db = open({ whenNoReplica: 'error' }, events)
    await until(() => db.replicas()[0]?.lastCheck != null, 'the first check')
    const session = db.session('rw1.tampered')
    const error = await readSql`${sql.raw(family.whereSql)}`.execute(session.read).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NoReplicaAvailableError)
    expect(events.some((e) => e.type === 'route' && e.session)).toBe(false)
    expect(db.stats().readsByNode).toEqual({})
  })

  it('round-robin alternates 100 reads over the two replicas, 50 on each, as the servers tell', async () => {
    const db = open({ replicas: bothReplicas(), replicaSelection: 'round-robin' })
    await bothCheckedAndUp(db)
    const servers = await serversOf(db.read, 100)
    expect(tally(servers)).toEqual({ 'replica 1': 50, 'replica 2': 50 })
    expect(servers.filter((server, i) => server === servers[i - 1])).toEqual([])
    expect(readsByReplica(db.stats())).toEqual([50, 50])
    // Each node name carries the port of its own replica.
    expect(db.replicas().map((r) => r.name)).toEqual([
      expect.stringMatching(new RegExp(`^replica 1 .*:${new URL(family.replicaUrl).port}/`)),
      expect.stringMatching(new RegExp(`^replica 2 .*:${new URL(family.replica2Url).port}/`)),
    ])
  })

  it('random gives each of the two replicas more than 20 of 100 reads, as the servers tell', async () => {
    const db = open({ replicas: bothReplicas(), replicaSelection: 'random' })
    await bothCheckedAndUp(db)
    const servers = await serversOf(db.read, 100)
    const counts = tally(servers)
    expect(Object.keys(counts).sort()).toEqual(['replica 1', 'replica 2'])
    expect(counts['replica 1']).toBeGreaterThan(20)
    expect(counts['replica 2']).toBeGreaterThan(20)
    expect(readsByReplica(db.stats())).toEqual([counts['replica 1'], counts['replica 2']])
  })

  it('spreads the session reads that follow a write over both replicas, each read seeing its write', async () => {
    // Polls far apart: the replicas' measured lags stay tied, and only the reads themselves learn positions.
    const db = open({ replicas: bothReplicas(), replicaSelection: 'round-robin', healthCheckIntervalMs: 60_000 })
    await bothCheckedAndUp(db)
    const session = db.session()
    for (let i = 0; i < 20; i++) {
      await session.write
        .insertInto('items')
        .values({ name: `spread ${i}`, qty: i })
        .execute()
      const row = await session.read
        .selectFrom('items')
        .select('qty')
        .where('name', '=', `spread ${i}`)
        .executeTakeFirst()
      expect(row).toEqual({ qty: i })
    }
    const [first, second] = readsByReplica(db.stats())
    expect(first).toBeGreaterThanOrEqual(5)
    expect(second).toBeGreaterThanOrEqual(5)
    expect(db.stats().fallbacks).toBe(0)
  })

  it.each([1, 2])('sends every read to replica %i when a custom selection picks it among both', async (chosen) => {
    const seen: ReplicaCandidate[][] = []
    const db = open({
      replicas: bothReplicas(),
      replicaSelection: (candidates) => {
        seen.push([...candidates])
        return candidates.find((c) => c.name.startsWith(`replica ${chosen} `)) ?? candidates[0]!
      },
    })
    await bothCheckedAndUp(db)
    const servers = await serversOf(db.read, 20)
    expect(tally(servers)).toEqual({ [`replica ${chosen}`]: 20 })
    expect(readsByReplica(db.stats())).toEqual(chosen === 1 ? [20, 0] : [0, 20])
    expect(seen).toHaveLength(20)
    for (const candidates of seen) {
      expect(candidates.map((c) => c.name)).toEqual(db.replicas().map((r) => r.name))
      expect(candidates.every((c) => typeof c.lagMs === 'number')).toBe(true)
    }
  })

  it.each([
    [2, 1],
    [1, 2],
  ] as const)(
    'least-lag sends every read to replica %i while replica %i lags further behind',
    async (other, paused) => {
      const events: BackendEvent[] = []
      // A budget nothing reaches: both replicas stay eligible, only their lag tells them apart.
      const db = open({ replicas: bothReplicas(), replicaSelection: 'least-lag', maxReplicaLagMs: 600_000 }, events)
      await bothCheckedAndUp(db)
      await (paused === 1 ? family.control : family.control2).pauseReplay()
      const writes = writeSteadily(db)
      try {
        // Well past what a streaming replica shows, so the other one stays measured below it.
        await until(() => {
          const lag = db.replicas().map((r) => r.lagMs ?? 0)
          return lag[paused - 1]! > 5 * INTERVAL_MS && lag[paused - 1]! > lag[other - 1]!
        }, `replica ${paused} to be measured further behind than replica ${other}`)
        const before = db.stats()
        const servers = await serversOf(db.read, 20)
        expect(tally(servers)).toEqual({ [`replica ${other}`]: 20 })
        const moved = readsByReplica(db.stats()).map((n, i) => n - readsByReplica(before)[i]!)
        expect(moved).toEqual(other === 2 ? [0, 20] : [20, 0])
      } finally {
        await writes.stop()
      }
      expect(db.replicas().map((r) => r.state)).toEqual(['up', 'up'])
      expect(events.filter((e) => e.type === 'drain' || e.type === 'fallback')).toEqual([])
    },
  )

  it('gives a replica drained for lag no reads while the other serves them, and spreads reads again once readmitted', async () => {
    const events: BackendEvent[] = []
    const db = open({ replicas: bothReplicas(), maxReplicaLagMs: 300, healthCheckIntervalMs: INTERVAL_MS }, events)
    await bothCheckedAndUp(db)
    const [replica1] = db.replicas().map((r) => r.name)

    await family.control.pauseReplay()
    const writes = writeSteadily(db)
    try {
      await until(() => events.some((e) => e.type === 'drain' && e.replica === replica1), 'the drain of replica 1')
    } finally {
      await writes.stop()
    }
    // Paused, replica 1 only falls further behind; replica 2 replays the last writes and stays up.
    await until(() => sameStates(db, ['lagging', 'up']), 'replica 1 drained and replica 2 up')
    const before = db.stats()
    const servers = await serversOf(db.read, 20)
    expect(tally(servers)).toEqual({ 'replica 2': 20 })
    const after = db.stats()
    expect(readsByReplica(after).map((n, i) => n - readsByReplica(before)[i]!)).toEqual([0, 20])
    expect(after.fallbacks - before.fallbacks).toBe(0)

    await family.control.resumeReplay()
    await until(() => events.some((e) => e.type === 'readmit' && e.replica === replica1), 'the readmit of replica 1')
    await until(() => sameStates(db, ['up', 'up']), 'both replicas up')
    expect(tally(await serversOf(db.read, 20))).toEqual({ 'replica 1': 10, 'replica 2': 10 })
  })

  it('gives a dead replica no reads while the other serves them', async () => {
    const db = open({ replicas: [family.replicaUrl, deadUrl(family)] })
    await until(() => db.replicas()[1]?.state === 'down', 'the dead replica to be marked down')
    expect(tally(await serversOf(db.read, 20))).toEqual({ 'replica 1': 20 })
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

/** Reads on replica 1 and on replica 2, by `db.stats()`. */
function readsByReplica(stats: BackendStats): [number, number] {
  return [readsOn(stats, 'replica 1 '), readsOn(stats, 'replica 2 ')]
}

/** How many times each server appears. */
function tally(servers: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const server of servers) counts[server] = (counts[server] ?? 0) + 1
  return counts
}

function sameStates(db: Backends<TestDB>, states: ReplicaStatus['state'][]): boolean {
  const now = db.replicas().map((r) => r.state)
  return now.length === states.length && now.every((state, i) => state === states[i])
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

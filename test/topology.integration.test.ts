// The topology on real PostgreSQL clusters: a replica of an unrelated cluster listed by mistake serves
// nothing, and a failover (primary killed, replica promoted with pg_ctl promote) moves writes to the
// promoted node with no restart. These tests start a second cluster of their own, since they kill and
// promote its servers.
import { type RawBuilder, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BackendEvent,
  type Backends,
  createBackends,
  PrimaryUnavailableError,
  readSql,
  WriteOutcomeUnknownError,
} from '../src/index.js'
import { type MariaDbPair, type PostgresPair, startMariaDbPair, startPostgresPair } from './harness/replication.js'
import { type Family, type Item, postgresFamily } from './support/databases.js'
import { restartMariaDbPrimary, restartPostgresPrimary } from './support/fault-scenarios.js'
import { until } from './support/load.js'

interface DB {
  topo_items: Item
}

/** A transaction in flight (a write, then `sleeping`) when `kill` takes the primary down: what it fails with. */
async function lostInFlight(db: Backends<DB>, sleeping: RawBuilder<unknown>, kill: () => Promise<void>) {
  const inFlight = db.write
    .transaction()
    .execute(async (tx) => {
      await tx.insertInto('topo_items').values({ name: 'in flight', qty: 2 }).execute()
      await sleeping.execute(tx)
    })
    .catch((error: unknown) => error)
  await new Promise((resolve) => setTimeout(resolve, 300))
  await kill()
  return inFlight
}

/** Where `count` writes ran, by the answer of `serverSql` (a `server` column naming the server). */
async function writesGoTo(db: Backends<DB>, serverSql: string, count = 10): Promise<Record<string, number>> {
  const servers: Record<string, number> = {}
  for (let i = 0; i < count; i++) {
    const { rows } = await sql<{ server: string }>`${sql.raw(serverSql)}`.execute(db.write)
    const server = String(rows[0]?.server)
    servers[server] = (servers[server] ?? 0) + 1
  }
  return servers
}

/** Milliseconds from now until a write succeeds (tried every 50 ms, for 10 s at most); undefined if none did. */
async function msUntilWritable(db: Backends<DB>): Promise<number | undefined> {
  const started = Date.now()
  while (Date.now() - started < 10_000) {
    try {
      await db.write.insertInto('topo_items').values({ name: 'after', qty: 4 }).execute()
      return Date.now() - started
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return undefined
}

describe('PostgreSQL topology', () => {
  let family: Family
  let other: PostgresPair

  beforeAll(async () => {
    family = postgresFamily()
    other = await startPostgresPair()
  })

  afterAll(async () => {
    await other?.stop()
  })

  const portOf = (url: string) => Number(new URL(url).port)

  it('gives a replica of another cluster no reads, from the first round on, and says why', async () => {
    const events: BackendEvent[] = []
    const db = createBackends<DB>({
      dialect: 'postgres',
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, other.replicaUrl],
      onEvent: (event) => events.push(event),
    })
    try {
      await until(() => db.replicas().every((r) => r.lastCheck !== null), 'the first round')
      const ports: number[] = []
      for (let i = 0; i < 100; i++) {
        const { rows } = await readSql<{ port: number }>`select inet_server_port() as port`.execute(db.read)
        ports.push(Number(rows[0]?.port))
      }
      expect(ports.filter((port) => port === portOf(other.replicaUrl))).toHaveLength(0)
      expect(ports.filter((port) => port === portOf(family.replicaUrl))).toHaveLength(100)
      const [, foreign] = db.replicas()
      expect(foreign?.state).toBe('not-a-replica')
      expect(foreign?.problem).toMatch(/not a replica of this primary: its system identifier \d+ is not the primary's/)
      expect(events).toContainEqual(expect.objectContaining({ type: 'misconfigured', state: 'not-a-replica' }))
      expect(JSON.stringify(events)).not.toContain('@')
    } finally {
      await db.destroy()
    }
  })

  it('moves writes to the promoted replica within 3 s of its promotion, with no restart', async () => {
    const events: BackendEvent[] = []
    const db = createBackends<DB>({
      dialect: 'postgres',
      primary: [other.primaryUrl, other.replicaUrl],
      replicas: [other.replicaUrl, other.replica2Url],
      onEvent: (event) => events.push(event),
    })
    try {
      await sql`create table topo_items (id serial primary key, name text not null, qty int not null)`.execute(db.write)
      const session = db.session()
      await session.write.insertInto('topo_items').values({ name: 'before', qty: 1 }).execute()
      const token = session.token()
      await other.waitForReplicaCatchUp()
      await until(() => db.replicas().every((r) => r.state === 'up'), 'both replicas up')
      expect(db.replicas()[0]?.state).toBe('up')

      // A write in flight when the primary dies: its outcome is unknown, and it is not retried.
      expect(await lostInFlight(db, sql`select pg_sleep(10)`, () => other.killPrimary())).toBeInstanceOf(
        WriteOutcomeUnknownError,
      )
      const down = await db.write
        .insertInto('topo_items')
        .values({ name: 'while down', qty: 3 })
        .execute()
        .catch((error: unknown) => error)
      expect(down).toBeInstanceOf(PrimaryUnavailableError)

      await other.promoteReplica(1)
      const writtenAfterMs = await msUntilWritable(db)
      console.info(`writes succeeded again ${writtenAfterMs} ms after the promotion`)
      expect(writtenAfterMs).toBeDefined()
      expect(writtenAfterMs).toBeLessThanOrEqual(3_000)

      // The token from before the failover is from another timeline: its reads go to the new primary,
      // which has the write.
      const continued = db.session(token)
      const row = await continued.read
        .selectFrom('topo_items')
        .select('qty')
        .where('name', '=', 'before')
        .executeTakeFirst()
      expect(row?.qty).toBe(1)
      const after = db.session()
      await after.write.insertInto('topo_items').values({ name: 'new session', qty: 5 }).execute()
      expect(after.token()).not.toBe(token)
      const served = await readSql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`.execute(after.read)
      expect(served.rows[0]?.recovery).toBe(false)

      await until(() => db.replicas()[0]?.state === 'primary', 'the promoted replica to serve no replica reads')
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['primary-down', 'primary-changed']))
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'primary-changed', to: expect.stringContaining('primary 2') }),
      )
    } finally {
      await db.destroy()
    }
  })

  // Runs after the failover above: the old primary (A) is dead, replica 1 (B) promoted.
  it('never writes to the old primary restarted after the failover (split brain), in a running or a new process', async () => {
    const port = (url: string) => `port ${portOf(url)}`
    const serverSql = "select 'port ' || inet_server_port() as server"
    const config = {
      dialect: 'postgres',
      primary: [other.primaryUrl, other.replicaUrl],
      replicas: [other.replica2Url],
    } as const
    const events: BackendEvent[] = []
    const running = createBackends<DB>({ ...config, onEvent: (event) => events.push(event) })
    try {
      expect(await writesGoTo(running, serverSql)).toEqual({ [port(other.replicaUrl)]: 10 })
      // Restarted, A takes writes again, on the timeline the promotion left behind.
      await restartPostgresPrimary(other)
      await until(() => events.some((e) => e.type === 'split-brain'), 'a split-brain event')
      expect(await writesGoTo(running, serverSql)).toEqual({ [port(other.replicaUrl)]: 10 })
      expect(events).toContainEqual(
        expect.objectContaining({
          type: 'split-brain',
          node: expect.stringContaining('primary 1'),
          primary: expect.stringContaining('primary 2'),
          detail: expect.stringMatching(/timeline 1, an earlier history/),
        }),
      )

      // A process started now, with A listed first and answering first, never writes to it either.
      const fresh = createBackends<DB>(config)
      try {
        expect(await writesGoTo(fresh, serverSql)).toEqual({ [port(other.replicaUrl)]: 10 })
      } finally {
        await fresh.destroy()
      }
    } finally {
      await running.destroy()
    }
  })
})

describe('MariaDB failover', () => {
  let pair: MariaDbPair

  beforeAll(async () => {
    pair = await startMariaDbPair()
  })

  afterAll(async () => {
    await pair?.stop()
  })

  it('moves writes to a replica promoted by STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0', async () => {
    const events: BackendEvent[] = []
    const db = createBackends<DB>({
      dialect: 'mysql',
      primary: [pair.primaryUrl, pair.replicaUrl],
      replicas: [pair.replicaUrl, pair.replica2Url],
      onEvent: (event) => events.push(event),
    })
    try {
      await sql`create table topo_items (id int auto_increment primary key, name varchar(50) not null, qty int not null)`.execute(
        db.write,
      )
      const session = db.session()
      await session.write.insertInto('topo_items').values({ name: 'before', qty: 1 }).execute()
      const token = session.token()
      await pair.waitForReplicaCatchUp()
      await until(() => db.replicas().every((r) => r.state === 'up'), 'both replicas up')

      expect(await lostInFlight(db, sql`select sleep(10)`, () => pair.killPrimary())).toBeInstanceOf(
        WriteOutcomeUnknownError,
      )

      await pair.promoteReplica(1)
      const writtenAfterMs = await msUntilWritable(db)
      console.info(`MariaDB: writes succeeded again ${writtenAfterMs} ms after the promotion`)
      expect(writtenAfterMs).toBeDefined()
      expect(writtenAfterMs).toBeLessThanOrEqual(3_000)
      const row = await db
        .session(token)
        .read.selectFrom('topo_items')
        .select('qty')
        .where('name', '=', 'before')
        .executeTakeFirst()
      expect(row?.qty).toBe(1)
      await until(() => db.replicas()[0]?.state === 'primary', 'the promoted replica to serve no replica reads')
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'primary-changed', to: expect.stringContaining('primary 2') }),
      )

      // The old primary restarted, writable (split brain): writes stay on the promoted server.
      const serverSql = "select concat('server id ', @@server_id) as server"
      await restartMariaDbPrimary(pair)
      await until(() => events.some((e) => e.type === 'split-brain'), 'a split-brain event')
      expect(await writesGoTo(db, serverSql)).toEqual({ 'server id 2': 10 })
      expect(events).toContainEqual(
        expect.objectContaining({
          type: 'split-brain',
          node: expect.stringContaining('primary 1'),
          detail: expect.stringMatching(/a failover replaced it with primary 2/),
        }),
      )
    } finally {
      await db.destroy()
    }
  })
})

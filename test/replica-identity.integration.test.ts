// What the health checks say about who each replica is, on the shared pairs: a MariaDB replica reached as
// a user that can write past read_only, or with read_only switched off, serves no reads from the first
// round on (reads do not fail on it either); and replicas that replicate quickly under a write load are
// never taken for replicas of another cluster (their positions are compared only with a primary position
// read after theirs, also when the primary's check reports late).
import { sql } from 'kysely'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { type BackendEvent, createBackends, readSql } from '../src/index.js'
import { replication } from './harness/control.js'
import { type Family, families, type Item, mariadbFamily, type TestDB } from './support/databases.js'
import { startLoad, until } from './support/load.js'

/** Which server answers 100 plain reads, and how many of them fail. */
async function hundredReads(read: Parameters<ReturnType<typeof readSql>['execute']>[0], serverSql: string) {
  const servers: Record<string, number> = {}
  let failed = 0
  for (let i = 0; i < 100; i++) {
    try {
      const { rows } = await readSql<{ server: string }>`${sql.raw(serverSql)}`.execute(read)
      const server = String(rows[0]?.server)
      servers[server] = (servers[server] ?? 0) + 1
    } catch {
      failed++
    }
  }
  return { servers, failed }
}

describe('MariaDB replicas that would take writes', () => {
  it('gives a replica whose user has SUPER (ALL PRIVILEGES) no reads, and says why', async () => {
    const family = mariadbFamily()
    const events: BackendEvent[] = []
    const db = createBackends<TestDB>({
      dialect: 'mysql',
      primary: family.primaryUrl,
      // root has ALL PRIVILEGES on *.*: read_only does not hold its writes.
      replicas: [family.replica2Url, replication().mariadb.adminReplicaUrl],
      onEvent: (event) => events.push(event),
    })
    try {
      await until(() => db.replicas().every((r) => r.lastCheck !== null), 'the first round')
      const { servers, failed } = await hundredReads(db.read, family.serverSql)
      expect(failed).toBe(0)
      expect(servers).toEqual({ 'replica 2': 100 })
      const [, bypassing] = db.replicas()
      expect(bypassing?.state).toBe('writable')
      expect(bypassing?.problem).toMatch(/its user has ALL PRIVILEGES, which bypasses read_only/)
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'misconfigured', state: 'writable', replica: bypassing?.name }),
      )
      expect(JSON.stringify(events)).not.toContain('@')
    } finally {
      await db.destroy()
    }
  })

  it('gives a replica with read_only off no reads until it is read-only again', async () => {
    const family = mariadbFamily()
    const admin = await mysql.createConnection({ uri: replication().mariadb.adminReplicaUrl })
    const db = createBackends<TestDB>({
      dialect: 'mysql',
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, family.replica2Url],
    })
    try {
      await admin.query('set global read_only = 0')
      await until(() => db.replicas()[0]?.state === 'writable', 'replica 1 to be found writable')
      const { servers, failed } = await hundredReads(db.read, family.serverSql)
      expect(failed).toBe(0)
      expect(servers).toEqual({ 'replica 2': 100 })
      expect(db.replicas()[0]?.problem).toMatch(/takes writes/)
      await admin.query('set global read_only = 1')
      await until(() => db.replicas()[0]?.state === 'up', 'replica 1 readmitted')
    } finally {
      await admin.query('set global read_only = 1')
      await admin.end()
      await db.destroy()
    }
  })
})

/**
 * A migration table (a view) that answers 300 ms late on the primary and at once on replicas: the primary's
 * check then reports well after replicas probed later than it, which is when positions compared by report
 * time race. Made with the admin user: MariaDB lets only SUPER create functions with the binary log on.
 */
async function slowOnPrimary(family: Family): Promise<void> {
  if (family.dialect === 'postgres') {
    const client = new pg.Client({ connectionString: replication().postgres.adminPrimaryUrl })
    await client.connect()
    try {
      await client.query(
        'create or replace view slow_migrations as select \'m1\'::text as name, now() as "timestamp" ' +
          'from (select pg_sleep(case when pg_is_in_recovery() then 0 else 0.3 end)) as slow',
      )
      await client.query('grant select on slow_migrations to app')
    } finally {
      await client.end()
    }
    return
  }
  const admin = await mysql.createConnection({ uri: replication().mariadb.adminPrimaryUrl })
  try {
    // Views may not read system variables; a function may.
    await admin.query(
      'create or replace function slow_on_primary() returns int not deterministic no sql sql security invoker ' +
        'begin if @@read_only = 0 then do sleep(0.3); end if; return 0; end',
    )
    await admin.query(
      "create or replace sql security invoker view slow_migrations as select 'm1' as name, now() as `timestamp` " +
        'from dual where slow_on_primary() = 0',
    )
  } finally {
    await admin.end()
  }
}

describe.each(families)('%s', (_name, familyOf) => {
  it('never takes replicas that keep up with a write load for replicas of another cluster', async () => {
    const family = familyOf()
    await slowOnPrimary(family)
    const events: BackendEvent[] = []
    const db = createBackends<{ identity_items: Item }>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, family.replica2Url],
      migrationTable: 'slow_migrations',
      onEvent: (event) => events.push(event),
    })
    try {
      await family.createItems(db.write, 'identity_items')
      await family.control.waitForReplicaCatchUp()
      await family.control2.waitForReplicaCatchUp()
      await until(() => db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')
      const load = startLoad(
        20,
        async (worker, i) => {
          await db.write
            .insertInto('identity_items')
            .values({ name: `w${worker}-${i}`, qty: i })
            .execute()
          return 'write'
        },
        { maxMs: 4_000 },
      )
      await new Promise((resolve) => setTimeout(resolve, 4_000))
      const operations = await load.stop()
      expect(operations.filter((op) => op.error)).toEqual([])
      expect(operations.length).toBeGreaterThan(500)
      expect(events.filter((e) => e.type === 'misconfigured')).toEqual([])
      expect(db.replicas().map((r) => r.state)).toEqual(['up', 'up'])
      expect(db.stats().fallbacksByReason['unknown-position']).toBe(0)
    } finally {
      await db.destroy()
    }
  })
})

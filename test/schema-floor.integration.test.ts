// Schema changes behind lagging replicas, on real replication with replay paused: no read meets a
// schema its replica has not applied.
import { Kysely, MysqlDialect, PostgresDialect, sql } from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import mysql2 from 'mysql2'
import pg from 'pg'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { type BackendEvent, type Backends, createBackends, readSql } from '../src/index.js'
import { type Family, families } from './support/databases.js'

interface Gadget {
  id: number
  name: string
  status: string | null
}
// Each test creates its own table under a random name.
type GadgetDB = Record<string, Gadget>

const INTERVAL_MS = 100

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<GadgetDB>
  const events: BackendEvent[] = []
  let table = ''

  beforeEach(async () => {
    family = familyOf()
    await family.control.resumeReplay()
    await db?.destroy()
    events.length = 0
    table = `gadgets_${Math.random().toString(36).slice(2, 8)}`
    db = createBackends<GadgetDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      healthCheckIntervalMs: INTERVAL_MS,
      // Lag alone never drains here: what keeps reads off the replica is the schema.
      maxReplicaLagMs: 600_000,
      readYourWrites: { maxWaitMs: 100 },
      migrationTable: `${table}_migrations`,
      onEvent: (event) => events.push(event),
    })
    await sql`create table ${sql.table(table)} (id int primary key, name varchar(50) not null)`.execute(db.write)
    await sql`insert into ${sql.table(table)} (id, name) values (1, 'a'), (2, 'b'), (3, 'c')`.execute(db.write)
    await family.control.waitForReplicaCatchUp()
    await until(() => (db.replicas()[0]?.lastCheck?.getTime() ?? 0) > Date.now() - INTERVAL_MS, 'a fresh health check')
  })

  afterAll(async () => {
    await family.control.resumeReplay()
    await db?.destroy()
  })

  const addStatus = (target: string): Record<string, Migration> => ({
    '0001_add_status': {
      async up(m) {
        await m.schema.alterTable(target).addColumn('status', 'varchar(20)').execute()
        await sql`update ${sql.table(target)} set status = 'ready'`.execute(m)
      },
    },
  })

  const readStatus = (backend: Backends<GadgetDB>['read']) =>
    backend.selectFrom(table).select(['id', 'status']).orderBy('id').execute()

  it('a migration through db.migrator(): 500 reads of the new column, plain and in a session, 0 errors and 0 stale', async () => {
    await family.control.pauseReplay()
    const result = await db.migrator({ provider: { getMigrations: async () => addStatus(table) } }).migrateToLatest()
    expect(result.error).toBeUndefined()
    expect(result.results?.map((r) => r.status)).toEqual(['Success'])

    const outcome = await readMany(500, (i) => readStatus(i % 2 === 0 ? db.read : db.session().read))
    expect(outcome.errors).toEqual([])
    expect(outcome.stale).toBe(0)
    // The replica really lacks the column: reading it there directly fails.
    await expect(readStatusOn(family, family.replicaUrl, table)).rejects.toThrow(/status|column/i)

    await family.control.resumeReplay()
    await family.control.waitForReplicaCatchUp()
    await until(async () => (await servedBy(db)) === 'replica', 'reads to return to the replica', 15_000)
    const before = db.stats()
    expect(await readStatus(db.read)).toHaveLength(3)
    expect(db.stats().fallbacks).toBe(before.fallbacks)
  })

  it('raw DDL through db.write raises the floor as well', async () => {
    await family.control.pauseReplay()
    await sql`alter table ${sql.table(table)} add column status varchar(20)`.execute(db.write)
    await sql`update ${sql.table(table)} set status = 'ready'`.execute(db.write)
    const outcome = await readMany(100, () => readStatus(db.read))
    expect(outcome.errors).toEqual([])
    expect(outcome.stale).toBe(0)
  })

  it('a migration run by another process is caught through the migration table', async () => {
    await family.control.pauseReplay()
    const other = otherProcess(family)
    try {
      const result = await new Migrator({
        db: other,
        provider: { getMigrations: async () => addStatus(table) },
        migrationTableName: `${table}_migrations`,
      }).migrateToLatest()
      expect(result.error).toBeUndefined()
    } finally {
      await other.destroy()
    }
    // kysely-rw did not see the DDL; the health check does, within one interval.
    await until(() => events.some((e) => e.type === 'drain' && e.reason === 'migration'), 'a drain for the migration')
    expect(db.replicas()[0]?.state).toBe('lagging')
    const outcome = await readMany(500, (i) => readStatus(i % 2 === 0 ? db.read : db.session().read))
    expect(outcome.errors).toEqual([])
    expect(outcome.stale).toBe(0)

    await family.control.resumeReplay()
    await until(() => db.replicas()[0]?.state === 'up', 'the replica to be readmitted', 10_000)
    expect(events.some((e) => e.type === 'readmit')).toBe(true)
  })

  async function servedBy(backends: Backends<GadgetDB>): Promise<string | undefined> {
    return (await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(backends.read)).rows[0]?.where
  }
})

async function readMany(count: number, read: (i: number) => Promise<{ status: string | null }[]>) {
  const errors: string[] = []
  let stale = 0
  for (let i = 0; i < count; i++) {
    try {
      const rows = await read(i)
      if (rows.length !== 3 || rows.some((row) => row.status !== 'ready')) stale++
    } catch (error) {
      errors.push(error instanceof Error ? error.message : String(error))
    }
  }
  return { errors: [...new Set(errors)], stale }
}

/** What a separate deploy job sees: its own plain Kysely on the primary. */
function otherProcess(family: Family): Kysely<unknown> {
  return new Kysely({
    dialect:
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: family.primaryUrl }) })
        : new MysqlDialect({ pool: mysql2.createPool({ uri: family.primaryUrl }) }),
  })
}

async function readStatusOn(family: Family, url: string, table: string): Promise<unknown> {
  const plain = new Kysely<any>({
    dialect:
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) })
        : new MysqlDialect({ pool: mysql2.createPool({ uri: url }) }),
  })
  try {
    return await plain.selectFrom(table).select('status').execute()
  } finally {
    await plain.destroy()
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

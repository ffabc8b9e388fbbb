// fromKysely: an existing Kysely instance as backends of one node, on the real primaries of the harness.
import { CamelCasePlugin, Kysely, type LogEvent, MysqlDialect, PostgresDialect, sql } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import Cursor from 'pg-cursor'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  type CanRead,
  ConfigurationError,
  fromKysely,
  readSql,
  WriteOnReadBackendError,
} from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let kysely: Kysely<TestDB>
  let db: Backends<TestDB>

  beforeAll(async () => {
    family = familyOf()
    const dialect =
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: family.primaryUrl }) })
        : new MysqlDialect({ pool: mysql2.createPool({ uri: family.primaryUrl }) })
    kysely = new Kysely<TestDB>({ dialect, plugins: [new CamelCasePlugin()] })
    db = fromKysely(kysely, { dialect: family.dialect, migrationTable: false })
    await family.createItems(db.write, 'from_kysely_items')
  })

  afterAll(async () => {
    await db?.destroy()
    await kysely?.destroy()
  })

  const table = 'from_kysely_items' as 'items'

  it('writes through write and reads the write back through read, on the one server', async () => {
    await db.write.insertInto(table).values({ name: 'wrapped', qty: 3 }).execute()
    const rows = await db.read.selectFrom(table).select(['name', 'qty']).where('name', '=', 'wrapped').execute()
    expect(rows).toEqual([{ name: 'wrapped', qty: 3 }])
    const { rows: where } = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(db.read)
    expect(where[0]?.where).toBe('primary')
  })

  it('refuses a write forced through read before it is sent', async () => {
    const read = db.read as any
    await expect(read.insertInto(table).values({ name: 'x', qty: 1 }).execute()).rejects.toMatchObject({
      name: 'WriteOnReadBackendError',
      kind: 'insert',
    })
    await expect(sql`delete from ${sql.table(table)}`.execute(read)).rejects.toBeInstanceOf(WriteOnReadBackendError)
    const count = await kysely
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst()
    expect(Number(count?.n)).toBeGreaterThan(0)
  })

  it('runs reads in read-only sessions: the database refuses what the guard cannot see', async () => {
    const writing = (backend: CanRead<TestDB>) => backend.selectNoFrom(sql.raw<number>(family.writingSelect).as('n'))
    // On MySQL the guard refuses it first: a function call may change a session that, on a pool handed
    // in, kysely-rw cannot reset afterwards.
    await expect(writing(db.read).execute()).rejects.toMatchObject({
      name: 'WriteOnReadBackendError',
      kind: family.dialect === 'postgres' ? 'database refusal' : 'side-effect function',
    })
    await expect(writing(db.write).execute()).resolves.toHaveLength(1)
  })

  it("keeps the wrapped instance's plugins on both backends", async () => {
    const row = await db.read.selectNoFrom((eb) => eb.val(1).as('snake_case_name' as 'x')).executeTakeFirstOrThrow()
    expect(Object.keys(row)).toEqual(['snakeCaseName'])
  })

  it('runs write transactions with savepoints and read snapshots on the wrapped connections', async () => {
    await db.write.transaction().execute(async (tx) => {
      await tx.insertInto(table).values({ name: 'in-tx', qty: 1 }).execute()
      const seen = await tx.selectFrom(table).select('name').where('name', '=', 'in-tx').execute()
      expect(seen).toEqual([{ name: 'in-tx' }])
    })
    const ctx = await db.write.startTransaction().execute()
    await ctx.insertInto(table).values({ name: 'kept', qty: 1 }).execute()
    const sp = await ctx.savepoint('before').execute()
    await sp.insertInto(table).values({ name: 'undone', qty: 1 }).execute()
    await (await sp.rollbackToSavepoint('before').execute()).commit().execute()
    const names = await db.read
      .transaction()
      .execute((tx) =>
        tx.selectFrom(table).select('name').where('name', 'in', ['in-tx', 'kept', 'undone']).orderBy('name').execute(),
      )
    expect(names.map((r) => r.name)).toEqual(['in-tx', 'kept'])
  })

  it('leaves the wrapped instance open on destroy', async () => {
    const other = fromKysely(kysely, { dialect: family.dialect, migrationTable: false })
    await other.read.selectFrom(table).select('id').limit(1).execute()
    await other.destroy()
    await expect(other.read.selectFrom(table).select('id').execute()).rejects.toThrow(/destroyed/i)
    const rows = await kysely.selectFrom(table).select('id').limit(1).execute()
    expect(rows).toHaveLength(1)
  })

  it("streams on both backends through the instance's dialect (its cursor on PostgreSQL), counted in stats()", async () => {
    const logged: LogEvent[] = []
    const dialect =
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: family.primaryUrl }), cursor: Cursor })
        : new MysqlDialect({ pool: mysql2.createPool({ uri: family.primaryUrl }) })
    const own = new Kysely<TestDB>({ dialect, log: (event) => void logged.push(event) })
    try {
      await using streaming = fromKysely(own, { dialect: family.dialect, migrationTable: false })
      await streaming.write.insertInto(table).values({ name: 'streamed', qty: 7 }).execute()
      const seen: string[] = []
      for (const backend of [streaming.read, streaming.write]) {
        for await (const row of backend.selectFrom(table).select('name').where('name', '=', 'streamed').stream(1)) {
          seen.push(row.name)
        }
      }
      expect(seen).toEqual(['streamed', 'streamed'])
      expect(streaming.stats().readsByNode).toEqual({ 'primary (read-only)': 1 })
      // The instance's own Kysely log still sees what runs on its connections, streams included.
      expect(logged.filter((e) => e.level === 'query' && e.isStream)).toHaveLength(2)
    } finally {
      await own.destroy()
    }
  })

  it("refuses a cursor of its own: streams use the instance's dialect", () => {
    expect(() => fromKysely(kysely, { dialect: family.dialect, cursor: Cursor } as never)).toThrow(ConfigurationError)
    expect(() => fromKysely(kysely, { dialect: family.dialect, cursor: Cursor } as never)).toThrow(/cursor: Cursor/)
  })

  it('introspects, as Kysely does, on both backends', async () => {
    // On MySQL too: Kysely's MySQL introspector calls database(), a built-in that changes nothing, so a read on a
    // pool kysely-rw did not make (and cannot reset) runs it.
    for (const backend of [db.read, db.write]) {
      const tables = await backend.introspection.getTables()
      expect(tables.map((t) => t.name)).toContain('from_kysely_items')
    }
  })

  it("refuses a dialect that is not the instance's", () => {
    const other = family.dialect === 'postgres' ? 'mysql' : 'postgres'
    expect(() => fromKysely(kysely, { dialect: other })).toThrow(ConfigurationError)
    expect(() => fromKysely(kysely, { dialect: other })).toThrow(`pass { dialect: '${family.dialect}' }`)
  })

  it('refuses a transaction, whose BEGIN and COMMIT it would take over', async () => {
    await kysely.transaction().execute(async (trx) => {
      expect(() => fromKysely<TestDB>(trx, { dialect: family.dialect })).toThrow(ConfigurationError)
      expect(() => fromKysely<TestDB>(trx, { dialect: family.dialect })).toThrow(/given a transaction/)
    })
  })
})

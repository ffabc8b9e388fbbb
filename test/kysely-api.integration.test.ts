// Kysely API on the backends at run time: pools handed in, await using, reshaped backends keep their
// guard, access modes, and nested transactions refused as Kysely refuses them.
import { sql } from 'kysely'
import mysql2 from 'mysql2'
import mysqlPromise from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  BackendsDestroyedError,
  createBackends,
  readSql,
  WriteOnReadBackendError,
} from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<TestDB>

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl, replicas: [family.replicaUrl] })
    await family.createItems(db.write, 'api_items')
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await db?.destroy()
  })

  const table = 'api_items' as 'items'
  const server = async (backend: Parameters<ReturnType<typeof readSql>['execute']>[0]) => {
    const { rows } = await readSql<{ server: string }>`${sql.raw(family.serverSql)}`.execute(backend)
    return rows[0]?.server
  }

  it("takes pools the application made as nodes, and ends them on destroy as Kysely's dialects do", async () => {
    const pools =
      family.dialect === 'postgres'
        ? [new pg.Pool({ connectionString: family.primaryUrl }), new pg.Pool({ connectionString: family.replicaUrl })]
        : [mysql2.createPool({ uri: family.primaryUrl }), mysql2.createPool({ uri: family.replicaUrl })]
    const [primary, replica] = pools as [never, never]
    const pooled = createBackends<TestDB>({ dialect: family.dialect, primary, replicas: [replica] })
    await pooled.write.insertInto(table).values({ name: 'via-pool', qty: 1 }).execute()
    expect(await server(pooled.write)).toBe('primary')
    expect(await server(pooled.read)).toBe('replica 1')
    await expect((pooled.read as any).deleteFrom(table).execute()).rejects.toBeInstanceOf(WriteOnReadBackendError)
    await pooled.destroy()
    if (family.dialect === 'postgres') {
      expect((primary as pg.Pool).ended).toBe(true)
    } else {
      await expect((primary as mysql2.Pool).promise().query('select 1')).rejects.toThrow(/closed/i)
    }
  })

  it("takes mysql2's promise pool too (MySQL), and a pg.Pool (PostgreSQL)", async () => {
    const pool =
      family.dialect === 'postgres'
        ? new pg.Pool({ connectionString: family.primaryUrl })
        : mysqlPromise.createPool({ uri: family.primaryUrl })
    const pooled = createBackends<TestDB>({ dialect: family.dialect, primary: pool as never })
    try {
      expect(await server(pooled.read)).toBe('primary')
      const rows = await pooled.read.selectFrom(table).select('name').where('name', '=', 'via-pool').execute()
      expect(rows).toEqual([{ name: 'via-pool' }])
    } finally {
      await pooled.destroy()
    }
  })

  it('destroys the backends at the end of an await using block', async () => {
    let scoped: Backends<TestDB> | undefined
    {
      await using inner = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl })
      scoped = inner
      expect(await server(inner.read)).toBe('primary')
    }
    await expect(scoped.read.selectFrom(table).select('id').execute()).rejects.toBeInstanceOf(BackendsDestroyedError)
  })

  it('keeps the guard and the routing on reshaped backends ($pickTables, $omitTables, $extendTables)', async () => {
    const picked = db.read.$pickTables<'items'>()
    expect(await server(db.read.$omitTables<never>())).toBe('replica 1')
    expect(await server(db.write.$pickTables<'items'>())).toBe('primary')
    await expect((picked as any).insertInto(table).values({ name: 'x', qty: 1 }).execute()).rejects.toMatchObject({
      kind: 'insert',
    })
    await expect(
      (db.read.$extendTables<{ t: { id: number } }>() as any).deleteFrom(table).execute(),
    ).rejects.toBeInstanceOf(WriteOnReadBackendError)
    await db.read.transaction().execute(async (tx) => {
      await expect(
        (tx.$pickTables<'items'>() as any).updateTable(table).set({ qty: 9 }).execute(),
      ).rejects.toBeInstanceOf(WriteOnReadBackendError)
    })
  })

  it('runs a write transaction set read-only as read-only: the database refuses its writes', async () => {
    const attempt = db.write
      .transaction()
      .setAccessMode('read only')
      .execute((tx) => tx.insertInto(table).values({ name: 'ro', qty: 1 }).execute())
    await expect(attempt).rejects.toThrow(/read-only|read only/i)
    const written = await db.write
      .transaction()
      .setAccessMode('read write')
      .execute((tx) => tx.insertInto(table).values({ name: 'rw', qty: 1 }).execute())
    expect(written).toHaveLength(1)
    const ctx = await db.write.startTransaction().setAccessMode('read only').execute()
    await expect(ctx.insertInto(table).values({ name: 'ro', qty: 1 }).execute()).rejects.toThrow(/read-only|read only/i)
    await ctx.rollback().execute()
    const rows = await db.write.selectFrom(table).select('name').where('name', '=', 'ro').execute()
    expect(rows).toEqual([])
  })

  it('refuses nested transactions at run time, as their never types say', async () => {
    await db.write.transaction().execute(async (tx) => {
      expect(() => (tx.transaction as () => unknown)()).toThrow()
      expect(() => (tx.startTransaction as () => unknown)()).toThrow()
    })
    await db.read.transaction().execute(async (tx) => {
      expect(() => (tx.transaction as () => unknown)()).toThrow()
    })
  })
})

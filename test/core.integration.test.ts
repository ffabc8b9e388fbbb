// The typed core on real replication: a PostgreSQL primary + streaming replica and a MariaDB primary +
// GTID replica, started by the harness.
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  type CanRead,
  createBackends,
  NotAReadStatementError,
  readSql,
  TransactionEscapeError,
  WriteOnReadBackendError,
} from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<TestDB>

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl, replicas: [family.replicaUrl] })
    await family.createItems(db.write, 'items')
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await db?.destroy()
  })

  const where = async (backend: CanRead<TestDB>) => {
    const { rows } = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(backend)
    return rows[0]?.where
  }

  it('serves reads from the replica and writes on the primary, as the servers themselves report', async () => {
    expect(await where(db.read)).toBe('replica')
    expect(await where(db.write)).toBe('primary')
    await db.write.insertInto('items').values({ name: 'on-primary', qty: 1 }).execute()
    await family.control.waitForReplicaCatchUp()
    const onReplica = await db.read.selectFrom('items').select('name').where('name', '=', 'on-primary').execute()
    expect(onReplica).toEqual([{ name: 'on-primary' }])
  })

  it('keeps read sessions read-only in the database', async () => {
    const { rows } = await readSql<{ ro: unknown }>`${sql.raw(family.readOnlySql)}`.execute(db.read)
    expect(Boolean(Number(rows[0]?.ro) || rows[0]?.ro === true)).toBe(true)
  })

  it.each([
    ['insert', (r: any) => r.insertInto('items').values({ name: 'x', qty: 1 }).execute()],
    ['update', (r: any) => r.updateTable('items').set({ qty: 2 }).execute()],
    ['delete', (r: any) => r.deleteFrom('items').execute()],
    ['ddl', (r: any) => r.schema.createTable('evil').addColumn('id', 'integer').execute()],
    ['locking read', (r: any) => r.selectFrom('items').selectAll().forUpdate().execute()],
    ['raw sql', (r: any) => sql`delete from items`.execute(r)],
  ])('refuses a %s forced onto the read backend before the replica sees it', async (kind, misuse) => {
    const sent: string[] = []
    const recorded = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.recordingReplica(sent)],
    })
    try {
      await recorded.read.selectFrom('items').select('id').limit(1).execute()
      const before = sent.length
      const error = await misuse(recorded.read).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WriteOnReadBackendError)
      expect((error as WriteOnReadBackendError).kind).toBe(kind)
      expect((error as Error).message).toMatch(/write backend/)
      expect(sent.slice(before)).toEqual([])
    } finally {
      await recorded.destroy()
    }
  })

  it('refuses a data-modifying CTE on the read backend before sending it', async () => {
    const read = db.read as any
    const error = await read
      .with('x', (qc: any) => qc.deleteFrom('items').returning('id'))
      .selectFrom('x')
      .selectAll()
      .execute()
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WriteOnReadBackendError)
    expect((error as WriteOnReadBackendError).kind).toBe('data-modifying cte')
  })

  it("surfaces the database's own refusal of a writing SELECT as WriteOnReadBackendError", async () => {
    const error = await db.read
      .selectNoFrom(sql.raw<number>(family.writingSelect).as('n'))
      .execute()
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WriteOnReadBackendError)
    expect((error as WriteOnReadBackendError).kind).toBe('database refusal')
    expect((error as Error).message).toMatch(/read.only|read-only|--read-only/i)
  })

  it('runs readSql reads on either backend and refuses readSql writes', async () => {
    const { rows } = await readSql<{ n: number }>`select count(*) as n from items`.execute(db.read)
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(1)
    await expect(readSql`delete from items`.execute(db.read)).rejects.toBeInstanceOf(NotAReadStatementError)
    await expect(readSql`select 1; delete from items`.execute(db.write)).rejects.toBeInstanceOf(NotAReadStatementError)
  })

  it('reads its own writes inside a write transaction', async () => {
    await family.control.pauseReplay()
    try {
      const seen = await db.write.transaction().execute(async (tx) => {
        await tx.insertInto('items').values({ name: 'in-tx', qty: 7 }).execute()
        return tx.selectFrom('items').select(['name', 'qty']).where('name', '=', 'in-tx').execute()
      })
      expect(seen).toEqual([{ name: 'in-tx', qty: 7 }])
      // The replica has not replayed it: the point of reading inside the transaction.
      expect(await db.read.selectFrom('items').select('name').where('name', '=', 'in-tx').execute()).toEqual([])
    } finally {
      await family.control.resumeReplay()
    }
  })

  it('gives a read transaction one snapshot on the replica', async () => {
    const count = async (backend: typeof db.read) =>
      Number(
        (
          await backend
            .selectFrom('items')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      )
    // The test before this one resumes replay without waiting for it: a replica still replaying that test's row
    // when `first` is read replays it with this one's, and the count after the transaction is off by one.
    await family.control.waitForReplicaCatchUp()
    const result = await db.read.transaction().execute(async (tx) => {
      const first = await count(tx)
      const where = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(tx)
      await db.write.insertInto('items').values({ name: 'during-snapshot', qty: 1 }).execute()
      await family.control.waitForReplicaCatchUp()
      return { first, second: await count(tx), where: where.rows[0]?.where }
    })
    expect(result.where).toBe('replica')
    expect(result.second).toBe(result.first)
    expect(await count(db.read)).toBe(result.first + 1)
  })

  it('refuses a query on the outer backends inside a write transaction, and tells to use tx', async () => {
    const escaped = await db.write
      .transaction()
      .execute(async (tx) => {
        await tx.insertInto('items').values({ name: 'escape', qty: 1 }).execute()
        return db.read.selectFrom('items').selectAll().execute()
      })
      .catch((e: unknown) => e)
    expect(escaped).toBeInstanceOf(TransactionEscapeError)
    expect((escaped as Error).message).toMatch(/tx/)
    // The transaction rolled back, and the outer backends work again afterwards.
    expect(await db.write.selectFrom('items').select('id').where('name', '=', 'escape').execute()).toEqual([])
    await expect(
      db.write.transaction().execute(async () => db.write.selectFrom('items').selectAll().execute()),
    ).rejects.toBeInstanceOf(TransactionEscapeError)
  })

  it('pins one replica connection with connection() and keeps the guard on it', async () => {
    await db.read.connection().execute(async (conn) => {
      expect(await where(conn)).toBe('replica')
      await expect((conn as any).deleteFrom('items').execute()).rejects.toBeInstanceOf(WriteOnReadBackendError)
    })
  })

  it('runs controlled transactions with savepoints on the primary, read-only ones on the replica', async () => {
    const trx = await db.write.startTransaction().execute()
    await trx.insertInto('items').values({ name: 'controlled', qty: 1 }).execute()
    const afterSavepoint = await trx.savepoint('s1').execute()
    await afterSavepoint.insertInto('items').values({ name: 'rolled-back', qty: 1 }).execute()
    await afterSavepoint.rollbackToSavepoint('s1').execute()
    await trx.commit().execute()
    const names = await db.write
      .selectFrom('items')
      .select('name')
      .where('name', 'in', ['controlled', 'rolled-back'])
      .execute()
    expect(names).toEqual([{ name: 'controlled' }])

    const readTrx = await db.read.startTransaction().execute()
    expect(await where(readTrx)).toBe('replica')
    await expect((readTrx as any).insertInto('items').values({ name: 'x', qty: 1 }).execute()).rejects.toBeInstanceOf(
      WriteOnReadBackendError,
    )
    await readTrx.rollback().execute()
  })

  it('with no replica, reads run on the primary in read-only sessions', async () => {
    const solo = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl })
    try {
      expect(await where(solo.read)).toBe('primary')
      const { rows } = await readSql<{ ro: unknown }>`${sql.raw(family.readOnlySql)}`.execute(solo.read)
      expect(Boolean(Number(rows[0]?.ro) || rows[0]?.ro === true)).toBe(true)
      const refused = await solo.read
        .selectNoFrom(sql.raw<number>(family.writingSelect).as('n'))
        .execute()
        .catch((e: unknown) => e)
      expect((refused as WriteOnReadBackendError).kind).toBe('database refusal')
      // The write backend's sessions are unaffected.
      await solo.write.insertInto('items').values({ name: 'solo', qty: 1 }).execute()
    } finally {
      await solo.destroy()
    }
  })
})

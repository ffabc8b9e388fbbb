// What results look like on each database, as README.md and docs/choosing-a-backend.md tell users: count(*) is a
// string on PostgreSQL and a number on MariaDB, and on MariaDB `.returning()` does not return the rows (Kysely's
// MySQL dialect reads no rows from a write), so the docs point to insertId and to reading back in the transaction.
// If Kysely changes either, these fail and the docs need changing with them.
import { InsertResult } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, createBackends, readSql } from '../src/index.js'
import { type Family, families, mariadbFamily, postgresFamily, type TestDB } from './support/databases.js'

interface ShapesDB {
  shapes: TestDB['items']
}

async function backendsOf(family: Family): Promise<Backends<ShapesDB>> {
  const db = createBackends<ShapesDB>({ dialect: family.dialect, primary: family.primaryUrl })
  await family.createItems(db.write, 'shapes')
  return db
}

describe.each(families)('%s: count(*)', (_name, familyOf) => {
  let family: Family
  let db: Backends<ShapesDB>
  beforeAll(async () => {
    family = familyOf()
    db = await backendsOf(family)
    await db.write.insertInto('shapes').values({ name: 'one', qty: 1 }).execute()
  })
  afterAll(async () => {
    await db?.destroy()
  })

  it('is a string from pg and a number from mysql2, and Number() reads both', async () => {
    const { rows } = await readSql<{ n: string | number }>`select count(*) as n from shapes`.execute(db.read)
    expect(typeof rows[0]?.n).toBe(family.dialect === 'postgres' ? 'string' : 'number')
    expect(Number(rows[0]?.n)).toBe(1)
    const built = await db.read
      .selectFrom('shapes')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    expect(Number(built.n)).toBe(1)
  })
})

describe('PostgreSQL: .returning()', () => {
  let db: Backends<ShapesDB>
  beforeAll(async () => {
    db = await backendsOf(postgresFamily())
  })
  afterAll(async () => {
    await db?.destroy()
  })

  it('returns the written rows', async () => {
    const row = await db.write
      .insertInto('shapes')
      .values({ name: 'pg', qty: 1 })
      .returning(['id', 'name'])
      .executeTakeFirstOrThrow()
    expect(row).toEqual({ id: expect.any(Number), name: 'pg' })
  })
})

describe('MariaDB: .returning()', () => {
  let db: Backends<ShapesDB>
  beforeAll(async () => {
    db = await backendsOf(mariadbFamily())
  })
  afterAll(async () => {
    await db?.destroy()
  })

  it('on an insert, writes the row but returns no row: no id, a count of 0', async () => {
    const result: unknown = await db.write
      .insertInto('shapes')
      .values({ name: 'returning', qty: 1 })
      .returning(['id', 'name'])
      .executeTakeFirstOrThrow()
    expect(result).toBeInstanceOf(InsertResult)
    expect(result).toEqual(new InsertResult(undefined, 0n))
    const written = await db.write.selectFrom('shapes').select('name').where('name', '=', 'returning').execute()
    expect(written).toEqual([{ name: 'returning' }])
  })

  it('on an update, is refused by the server', async () => {
    await expect(
      db.write.updateTable('shapes').set({ qty: 2 }).where('name', '=', 'returning').returning('id').execute(),
    ).rejects.toThrow(/syntax/)
  })

  it('is replaced by insertId from executeTakeFirst(), and by reading back in the same transaction', async () => {
    const row = await db.write.transaction().execute(async (tx) => {
      const { insertId } = await tx.insertInto('shapes').values({ name: 'read back', qty: 3 }).executeTakeFirst()
      expect(typeof insertId).toBe('bigint')
      return tx.selectFrom('shapes').selectAll().where('id', '=', Number(insertId)).executeTakeFirstOrThrow()
    })
    expect(row).toEqual({ id: expect.any(Number), name: 'read back', qty: 3 })
  })
})

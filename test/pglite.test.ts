// PGlite has one connection, which the write backend and the primary's read-only view share: reads
// wrapped in their own read-only transaction must never take a concurrent write in with them.
import { PGlite } from '@electric-sql/pglite'
import { Kysely, PGliteDialect, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, createBackends, fromKysely, WriteOnReadBackendError } from '../src/index.js'

interface DB {
  counters: { id: number; n: number }
}

describe('on PGlite, with no replica', () => {
  let db: Backends<DB>

  beforeAll(async () => {
    db = createBackends<DB>({ dialect: 'postgres', primary: new PGliteDialect({ pglite: new PGlite() }) })
    await sql`create table counters (id int primary key, n int not null)`.execute(db.write)
    await db.write.insertInto('counters').values({ id: 1, n: 0 }).execute()
    // PGlite compiles its WebAssembly on start: seconds, more on a loaded 2-core machine.
  }, 60_000)

  afterAll(async () => {
    await db.destroy()
  })

  it('runs interleaved reads and writes without a write landing in a read-only transaction', async () => {
    const reads = Array.from({ length: 50 }, () => db.read.selectFrom('counters').select('n').execute())
    const writes = Array.from({ length: 50 }, () =>
      db.write
        .updateTable('counters')
        .set((eb) => ({ n: eb('n', '+', 1) }))
        .execute(),
    )
    const results = await Promise.allSettled([...reads, ...writes])
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    expect(await db.write.selectFrom('counters').select('n').executeTakeFirst()).toEqual({ n: 50 })
  })

  it('still refuses writes on the read backend, in the guard and in the database', async () => {
    await expect((db.read as any).deleteFrom('counters').execute()).rejects.toBeInstanceOf(WriteOnReadBackendError)
    // nextval advances a sequence outside the transaction's rules: refused by name, before it is sent.
    const byName = await db.read
      .selectNoFrom(sql<number>`nextval('counters_seq')`.as('n'))
      .execute()
      .catch((e: unknown) => e)
    expect((byName as WriteOnReadBackendError).kind).toBe('side-effect function')
    expect((byName as Error).message).toMatch(/nextval/)
    // A function of the app's own that writes is not known to the guard: the read-only session refuses it.
    await sql`create function bump() returns int language sql as 'update counters set n = n + 1 returning n'`.execute(
      db.write,
    )
    const byDatabase = await db.read
      .selectNoFrom(sql<number>`bump()`.as('n'))
      .execute()
      .catch((e: unknown) => e)
    expect((byDatabase as WriteOnReadBackendError).kind).toBe('database refusal')
  })
})

// PGlite's adapter is a PostgreSQL one: the wrapped instance's connections are PGlite's, and take its own
// transactions and query text, not pg's.
describe('fromKysely over a Kysely on PGlite', () => {
  let kysely: Kysely<DB>
  let db: Backends<DB>

  beforeAll(async () => {
    kysely = new Kysely<DB>({ dialect: new PGliteDialect({ pglite: new PGlite() }) })
    await sql`create table counters (id int primary key, n int not null)`.execute(kysely)
    await kysely.insertInto('counters').values({ id: 1, n: 0 }).execute()
    db = fromKysely(kysely, { dialect: 'postgres' })
  }, 60_000)

  afterAll(async () => {
    await db?.destroy()
    await kysely?.destroy()
  })

  it('reads, writes and runs write transactions on the instance', async () => {
    expect(await db.read.selectFrom('counters').select(['id', 'n']).execute()).toEqual([{ id: 1, n: 0 }])
    const updated = await db.write.updateTable('counters').set({ n: 1 }).where('id', '=', 1).executeTakeFirst()
    expect(updated.numUpdatedRows).toBe(1n)
    const seen = await db.write.transaction().execute(async (tx) => {
      await tx.insertInto('counters').values({ id: 2, n: 5 }).execute()
      return tx.selectFrom('counters').select('id').orderBy('id').execute()
    })
    expect(seen).toEqual([{ id: 1 }, { id: 2 }])
    await expect(
      db.write.transaction().execute(async (tx) => {
        await tx.updateTable('counters').set({ n: 99 }).execute()
        throw new Error('roll back')
      }),
    ).rejects.toThrow('roll back')
    expect(
      await db.read.transaction().execute((tx) => tx.selectFrom('counters').select('n').orderBy('id').execute()),
    ).toEqual([{ n: 1 }, { n: 5 }])
    // The instance is still the caller's, and sees what went through the backends.
    expect(await kysely.selectFrom('counters').select('n').where('id', '=', 2).executeTakeFirst()).toEqual({ n: 5 })
  })

  it('still refuses writes on the read backend, in the guard and in the read-only transaction', async () => {
    await expect((db.read as any).deleteFrom('counters').execute()).rejects.toBeInstanceOf(WriteOnReadBackendError)
    await sql`create function reset_counters() returns int language sql as 'update counters set n = 0 returning n'`.execute(
      kysely,
    )
    const byDatabase = await db.read
      .selectNoFrom(sql<number>`reset_counters()`.as('n'))
      .execute()
      .catch((e: unknown) => e)
    expect((byDatabase as WriteOnReadBackendError).kind).toBe('database refusal')
    expect(await db.write.selectFrom('counters').select('n').orderBy('id').execute()).toEqual([{ n: 1 }, { n: 5 }])
  })
})

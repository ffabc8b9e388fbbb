// The Kysely a Kysely user writes, on the backends at run time: plugins (CamelCasePlugin, ParseJSONResultsPlugin),
// withSchema, expression helpers, dynamic references, introspection on both backends, NoResultError, and Kysely's
// own Migrator handed `db.kysely` (the primary as a plain Kysely<DB>) with the replica paused: the schema floor
// still keeps reads of the new table off the replica that has not replayed it.
import {
  CamelCasePlugin,
  type ExpressionBuilder,
  type Generated,
  type Kysely,
  NoResultError,
  ParseJSONResultsPlugin,
  sql,
} from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, createBackends, readSql, WriteOnReadBackendError } from '../src/index.js'
import { type Family, families } from './support/databases.js'

interface CitizenDB {
  citizen_items: { id: Generated<number>; item_name: string; qty: number }
}
// What CamelCasePlugin makes of it.
interface CamelDB {
  citizenItems: { id: Generated<number>; itemName: string; qty: number }
}

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<CitizenDB>
  let camel: Backends<CamelDB>

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<CitizenDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
    })
    camel = createBackends<CamelDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      plugins: [new CamelCasePlugin()],
    })
    const id = family.dialect === 'postgres' ? 'serial primary key' : 'int auto_increment primary key'
    await sql`drop table if exists citizen_items`.execute(db.write)
    await sql`create table citizen_items (id ${sql.raw(id)}, item_name varchar(50) not null, qty int not null)`.execute(
      db.write,
    )
    await db.write
      .insertInto('citizen_items')
      .values([
        { item_name: 'apple', qty: 3 },
        { item_name: 'pear', qty: 5 },
      ])
      .execute()
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await family?.control.resumeReplay()
    if (db) {
      await sql`drop table if exists citizen_items, citizen_migrated, kysely_migration, kysely_migration_lock`.execute(
        db.write,
      )
    }
    await camel?.destroy()
    await db?.destroy()
  })

  it('CamelCasePlugin on both backends, and withPlugin on one', async () => {
    await camel.write.insertInto('citizenItems').values({ itemName: 'plum', qty: 1 }).execute()
    await family.control.waitForReplicaCatchUp()
    const rows = await camel.read.selectFrom('citizenItems').select(['itemName', 'qty']).orderBy('itemName').execute()
    expect(rows.map((r) => r.itemName)).toEqual(['apple', 'pear', 'plum'])
    const added = await db.read
      .withPlugin(new CamelCasePlugin())
      .selectFrom('citizen_items')
      .select('item_name')
      .where('item_name', '=', 'plum')
      .execute()
    expect(added).toEqual([{ itemName: 'plum' }])
    // A plugin does not take the guard away.
    await expect(
      (camel.read.withPlugin(new ParseJSONResultsPlugin()) as any).deleteFrom('citizenItems').execute(),
    ).rejects.toBeInstanceOf(WriteOnReadBackendError)
  })

  it('ParseJSONResultsPlugin parses what the database returns as JSON text', async () => {
    const json =
      family.dialect === 'postgres'
        ? sql<
            { name: string }[]
          >`(select json_agg(json_build_object('name', item_name) order by item_name)::text from citizen_items)`
        : sql<{ name: string }[]>`(select json_arrayagg(json_object('name', item_name)) from citizen_items)`
    const [row] = await db.read.withPlugin(new ParseJSONResultsPlugin()).selectNoFrom(json.as('names')).execute()
    expect(row?.names.map((n) => n.name).sort()).toEqual(['apple', 'pear', 'plum'])
  })

  it('withSchema, dynamic references, fn, case, $if and $call, reusable expression helpers', async () => {
    const schema = family.dialect === 'postgres' ? 'public' : 'app'
    const column: string = 'item_name'
    const isFruit = (eb: ExpressionBuilder<CitizenDB, 'citizen_items'>) => eb('qty', '>', 0)
    const rows = await db.read
      .withSchema(schema)
      .selectFrom(db.read.dynamic.table('citizen_items').as('c'))
      .select((eb) => [
        db.read.dynamic.ref<'item_name'>(column),
        eb.case().when('qty', '>', 4).then('many').else('few').end().as('amount'),
      ])
      .$if(true, (qb) => qb.orderBy('item_name'))
      .$call((qb) => qb.limit(2))
      .execute()
    expect(rows).toEqual([
      { item_name: 'apple', amount: 'few' },
      { item_name: 'pear', amount: 'many' },
    ])
    const total = await db.read
      .selectFrom('citizen_items')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('qty'), eb.lit(0)).as('total'))
      .where(isFruit)
      .executeTakeFirstOrThrow()
    expect(Number(total.total)).toBe(9)
    await expect(
      db.read.selectFrom('citizen_items').selectAll().where('item_name', '=', 'kiwi').executeTakeFirstOrThrow(),
    ).rejects.toBeInstanceOf(NoResultError)
  })

  it('introspects on the replica and on the primary', async () => {
    for (const backend of [db.read, db.write]) {
      const tables = await backend.introspection.getTables()
      const table = tables.find((t) => t.name === 'citizen_items')
      expect(table?.columns.map((c) => c.name)).toEqual(['id', 'item_name', 'qty'])
    }
  })

  it("Kysely's Migrator on db.kysely runs on the primary and keeps reads off a replica without the migration", async () => {
    const migration: Migration = {
      async up(kysely: Kysely<any>) {
        await kysely.schema.createTable('citizen_migrated').addColumn('id', 'integer').execute()
        await kysely.insertInto('citizen_migrated').values({ id: 1 }).execute()
      },
    }
    const migrator = new Migrator({ db: db.kysely, provider: { getMigrations: async () => ({ '0001': migration }) } })
    await family.control.pauseReplay()
    try {
      const { error, results } = await migrator.migrateToLatest()
      expect(error).toBeUndefined()
      expect(results?.map((r) => r.status)).toEqual(['Success'])
      // The replica has not replayed the table: the read goes to the primary (after waiting for the replica).
      const { rows } = await readSql<{ id: number }>`select id from citizen_migrated`.execute(db.read)
      expect(rows).toEqual([{ id: 1 }])
    } finally {
      await family.control.resumeReplay()
    }
    expect((await migrator.getMigrations()).map((m) => m.executedAt !== undefined)).toEqual([true])
  })
})

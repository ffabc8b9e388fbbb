/**
 * The read surface: both backends (and CanRead) read with Kysely's own builders; the handles
 * derived with withPlugin/withoutPlugins/withSchema keep their capability; nothing that writes is
 * on a replica handle or on a CanRead.
 */
import { CamelCasePlugin, sql } from 'kysely'
import { expectError, expectType } from 'tsd'
import type { CanRead, ReadBackend, WriteBackend } from '../src/index.js'
import { type AppDB, canRead, read, write } from './schema.js'

const plugin = new CamelCasePlugin()

// --- reads compile on both backends --------------------------------------------------------------

// The same queries, spelled out on each kind of handle (a loop over a union would only check the
// union's common supertype).
export function readsOnRead(db: ReadBackend<AppDB>) {
  // joins and where
  expectType<Promise<{ name: string; title: string; text: string }[]>>(
    db
      .selectFrom('users')
      .innerJoin('posts', 'posts.user_id', 'users.id')
      .leftJoin('comments', (join) => join.onRef('comments.post_id', '=', 'posts.id'))
      .select(['users.name', 'posts.title'])
      .select((eb) => eb.fn.coalesce('comments.text', eb.val('')).as('text'))
      .where('users.id', '>', 10)
      .where((eb) => eb.or([eb('posts.title', 'like', '%a%'), eb('users.email', 'is', null)]))
      .orderBy('users.name')
      .execute(),
  )

  // selectNoFrom
  expectType<Promise<{ one: number }[]>>(db.selectNoFrom(sql<number>`1`.as('one')).execute())

  // fn.count
  expectType<Promise<{ n: number } | undefined>>(
    db.selectFrom('posts').select(db.fn.count<number>('posts.id').as('n')).executeTakeFirst(),
  )

  // case()
  expectType<Promise<{ label: string }[]>>(
    db
      .selectFrom('users')
      .select(db.case().when('users.email', 'is', null).then('anonymous').else('known').end().as('label'))
      .execute(),
  )

  // dynamic.ref (as with Kysely itself, a dynamic reference selects an optional column)
  const column: string = 'name'
  expectType<Promise<{ name: string | undefined }[]>>(
    db.selectFrom('users').select(db.dynamic.ref<'name'>(column)).execute(),
  )

  // read-only with
  expectType<Promise<{ id: number; name: string }[]>>(
    db
      .with('named', (qc) => qc.selectFrom('users').select(['id', 'name']).where('name', 'is not', null))
      .selectFrom('named')
      .selectAll()
      .execute(),
  )

  // read-only withRecursive
  expectType<Promise<{ id: number; parent_id: number | null }[]>>(
    db
      .withRecursive('thread(id, parent_id)', (qc) =>
        qc
          .selectFrom('comments')
          .select(['id', 'parent_id'])
          .where('id', '=', 1)
          .unionAll(
            qc
              .selectFrom('comments')
              .innerJoin('thread', 'thread.id', 'comments.parent_id')
              .select(['comments.id', 'comments.parent_id']),
          ),
      )
      .selectFrom('thread')
      .selectAll()
      .execute(),
  )

  expectType<boolean>(db.isTransaction)
}

export function readsOnWrite(db: WriteBackend<AppDB>) {
  // joins and where
  expectType<Promise<{ name: string; title: string; text: string }[]>>(
    db
      .selectFrom('users')
      .innerJoin('posts', 'posts.user_id', 'users.id')
      .leftJoin('comments', (join) => join.onRef('comments.post_id', '=', 'posts.id'))
      .select(['users.name', 'posts.title'])
      .select((eb) => eb.fn.coalesce('comments.text', eb.val('')).as('text'))
      .where('users.id', '>', 10)
      .where((eb) => eb.or([eb('posts.title', 'like', '%a%'), eb('users.email', 'is', null)]))
      .orderBy('users.name')
      .execute(),
  )

  // selectNoFrom
  expectType<Promise<{ one: number }[]>>(db.selectNoFrom(sql<number>`1`.as('one')).execute())

  // fn.count
  expectType<Promise<{ n: number } | undefined>>(
    db.selectFrom('posts').select(db.fn.count<number>('posts.id').as('n')).executeTakeFirst(),
  )

  // case()
  expectType<Promise<{ label: string }[]>>(
    db
      .selectFrom('users')
      .select(db.case().when('users.email', 'is', null).then('anonymous').else('known').end().as('label'))
      .execute(),
  )

  // dynamic.ref (as with Kysely itself, a dynamic reference selects an optional column)
  const column: string = 'name'
  expectType<Promise<{ name: string | undefined }[]>>(
    db.selectFrom('users').select(db.dynamic.ref<'name'>(column)).execute(),
  )

  // read-only with
  expectType<Promise<{ id: number; name: string }[]>>(
    db
      .with('named', (qc) => qc.selectFrom('users').select(['id', 'name']).where('name', 'is not', null))
      .selectFrom('named')
      .selectAll()
      .execute(),
  )

  // read-only withRecursive
  expectType<Promise<{ id: number; parent_id: number | null }[]>>(
    db
      .withRecursive('thread(id, parent_id)', (qc) =>
        qc
          .selectFrom('comments')
          .select(['id', 'parent_id'])
          .where('id', '=', 1)
          .unionAll(
            qc
              .selectFrom('comments')
              .innerJoin('thread', 'thread.id', 'comments.parent_id')
              .select(['comments.id', 'comments.parent_id']),
          ),
      )
      .selectFrom('thread')
      .selectAll()
      .execute(),
  )

  expectType<boolean>(db.isTransaction)
}

export function readsOnCanRead(db: CanRead<AppDB>) {
  // joins and where
  expectType<Promise<{ name: string; title: string; text: string }[]>>(
    db
      .selectFrom('users')
      .innerJoin('posts', 'posts.user_id', 'users.id')
      .leftJoin('comments', (join) => join.onRef('comments.post_id', '=', 'posts.id'))
      .select(['users.name', 'posts.title'])
      .select((eb) => eb.fn.coalesce('comments.text', eb.val('')).as('text'))
      .where('users.id', '>', 10)
      .where((eb) => eb.or([eb('posts.title', 'like', '%a%'), eb('users.email', 'is', null)]))
      .orderBy('users.name')
      .execute(),
  )

  // selectNoFrom
  expectType<Promise<{ one: number }[]>>(db.selectNoFrom(sql<number>`1`.as('one')).execute())

  // fn.count
  expectType<Promise<{ n: number } | undefined>>(
    db.selectFrom('posts').select(db.fn.count<number>('posts.id').as('n')).executeTakeFirst(),
  )

  // case()
  expectType<Promise<{ label: string }[]>>(
    db
      .selectFrom('users')
      .select(db.case().when('users.email', 'is', null).then('anonymous').else('known').end().as('label'))
      .execute(),
  )

  // dynamic.ref (as with Kysely itself, a dynamic reference selects an optional column)
  const column: string = 'name'
  expectType<Promise<{ name: string | undefined }[]>>(
    db.selectFrom('users').select(db.dynamic.ref<'name'>(column)).execute(),
  )

  // read-only with
  expectType<Promise<{ id: number; name: string }[]>>(
    db
      .with('named', (qc) => qc.selectFrom('users').select(['id', 'name']).where('name', 'is not', null))
      .selectFrom('named')
      .selectAll()
      .execute(),
  )

  // read-only withRecursive
  expectType<Promise<{ id: number; parent_id: number | null }[]>>(
    db
      .withRecursive('thread(id, parent_id)', (qc) =>
        qc
          .selectFrom('comments')
          .select(['id', 'parent_id'])
          .where('id', '=', 1)
          .unionAll(
            qc
              .selectFrom('comments')
              .innerJoin('thread', 'thread.id', 'comments.parent_id')
              .select(['comments.id', 'comments.parent_id']),
          ),
      )
      .selectFrom('thread')
      .selectAll()
      .execute(),
  )

  expectType<boolean>(db.isTransaction)
}

// --- derived handles keep the capability ---------------------------------------------------------

expectType<ReadBackend<AppDB>>(read.withSchema('reporting'))
expectType<ReadBackend<AppDB>>(read.withPlugin(plugin))
expectType<ReadBackend<AppDB>>(read.withoutPlugins())
expectType<ReadBackend<AppDB>>(read.withPlugin(plugin).withSchema('reporting').withoutPlugins())

expectType<WriteBackend<AppDB>>(write.withSchema('reporting'))
expectType<WriteBackend<AppDB>>(write.withPlugin(plugin))
expectType<WriteBackend<AppDB>>(write.withoutPlugins())
write.withPlugin(plugin).insertInto('users').values({ name: 'Ada' })
write.withSchema('tenant_1').updateTable('users').set({ name: 'Ada' })
write.withoutPlugins().deleteFrom('users').where('id', '=', 1)

expectType<CanRead<AppDB>>(canRead.withSchema('reporting'))
expectType<CanRead<AppDB>>(canRead.withPlugin(plugin))
expectType<CanRead<AppDB>>(canRead.withoutPlugins())

// --- nothing that writes on a replica handle or a CanRead ----------------------------------------
// (each line has a compiling twin on `write` in write-surface.test-d.ts)

expectError(read.insertInto('users').values({ name: 'Ada' }))
expectError(read.replaceInto('users').values({ name: 'Ada' }))
expectError(read.updateTable('users').set({ name: 'Ada' }))
expectError(read.deleteFrom('users').where('id', '=', 1))
expectError(read.mergeInto('users'))
expectError(read.schema.createTable('audit'))

expectError(canRead.insertInto('users').values({ name: 'Ada' }))
expectError(canRead.replaceInto('users').values({ name: 'Ada' }))
expectError(canRead.updateTable('users').set({ name: 'Ada' }))
expectError(canRead.deleteFrom('users').where('id', '=', 1))
expectError(canRead.mergeInto('users'))
expectError(canRead.schema.createTable('audit'))

// Derived handles do not regain writes.
expectError(read.withPlugin(plugin).insertInto('users').values({ name: 'Ada' }))
expectError(read.withSchema('tenant_1').deleteFrom('users'))
expectError(read.withoutPlugins().updateTable('users').set({ name: 'Ada' }))

// As a parameter.
export function onCanRead(db: CanRead<AppDB>) {
  expectError(db.insertInto('users').values({ name: 'Ada' }))
  expectError(db.replaceInto('users').values({ name: 'Ada' }))
  expectError(db.updateTable('users').set({ name: 'Ada' }))
  expectError(db.deleteFrom('users'))
  expectError(db.mergeInto('users'))
  expectError(db.schema.createTable('audit'))
}
export function onRead(db: ReadBackend<AppDB>) {
  expectError(db.insertInto('users').values({ name: 'Ada' }))
  expectError(db.replaceInto('users').values({ name: 'Ada' }))
  expectError(db.updateTable('users').set({ name: 'Ada' }))
  expectError(db.deleteFrom('users'))
  expectError(db.mergeInto('users'))
  expectError(db.schema.createTable('audit'))
}

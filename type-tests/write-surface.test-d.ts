/**
 * The write surface: only the primary inserts, replaces, updates, deletes, merges and changes the
 * schema. (That a replica handle or a CanRead has none of these is checked in
 * read-surface.test-d.ts, transactions.test-d.ts and brands.test-d.ts.)
 */
import { CamelCasePlugin, type DeleteResult, type InsertResult, type MergeResult, type UpdateResult } from 'kysely'
import { expectError, expectType } from 'tsd'
import type { WriteBackend } from '../src/index.js'
import { type AppDB, kysely, read, write } from './schema.js'

expectType<Promise<InsertResult[]>>(write.insertInto('users').values({ name: 'Ada' }).execute())
expectType<Promise<InsertResult[]>>(write.replaceInto('users').values({ name: 'Ada' }).execute())
expectType<Promise<UpdateResult[]>>(write.updateTable('users').set({ name: 'Ada' }).where('id', '=', 1).execute())
expectType<Promise<DeleteResult[]>>(write.deleteFrom('users').where('id', '=', 1).execute())

// RETURNING
expectType<Promise<{ id: number; created_at: Date }>>(
  write.insertInto('users').values({ name: 'Ada' }).returning(['id', 'created_at']).executeTakeFirstOrThrow(),
)

// Kysely's own checks still apply to values: a missing required column, an unknown one.
expectError(write.insertInto('posts').values({ title: 'no author', body: '' }))
expectError(write.insertInto('users').values({ name: 'Ada', nickname: 'ada' }))
expectError(write.updateTable('users').set({ id: 'not a number' }))

// mergeInto, on a table and on an aliased table.
expectType<Promise<MergeResult>>(
  write
    .mergeInto('users')
    .using('posts', 'posts.user_id', 'users.id')
    .whenMatched()
    .thenUpdateSet({ name: 'Ada' })
    .whenNotMatched()
    .thenInsertValues({ name: 'Ada' })
    .executeTakeFirstOrThrow(),
)
expectType<Promise<MergeResult>>(
  write
    .mergeInto('users as u')
    .using('posts as p', 'p.user_id', 'u.id')
    .whenMatchedAnd('p.title', '=', 'x')
    .thenUpdateSet((eb) => ({ name: eb.ref('p.title') }))
    .whenMatched()
    .thenDelete()
    .executeTakeFirstOrThrow(),
)
// The alias is the only name of the target once aliased, exactly as on Kysely.
expectError(write.mergeInto('users as u').using('posts', 'posts.user_id', 'users.id'))
kysely.mergeInto('users as u').using('posts', 'posts.user_id', 'u.id')
expectError(kysely.mergeInto('users as u').using('posts', 'posts.user_id', 'users.id'))

// schema
write.schema
  .createTable('audit')
  .addColumn('id', 'serial', (col) => col.primaryKey())
  .addColumn('user_id', 'integer', (col) => col.references('users.id'))
  .execute()
write.schema.alterTable('users').addColumn('nickname', 'text').execute()
write.schema.dropTable('audit').ifExists().execute()
write.schema.createIndex('users_name').on('users').column('name').execute()

// A handle derived with withPlugin / withSchema / withoutPlugins keeps every write.
const camel = write.withPlugin(new CamelCasePlugin())
expectType<WriteBackend<AppDB>>(camel)
camel.insertInto('users').values({ name: 'Ada' }).execute()
camel.mergeInto('users as u').using('posts', 'posts.user_id', 'u.id').whenMatched().thenDelete().execute()
camel.schema.createTable('audit').addColumn('id', 'serial').execute()
write.withSchema('tenant_1').replaceInto('users').values({ name: 'Ada' }).execute()

// On a parameter.
export function onWrite(db: WriteBackend<AppDB>) {
  db.insertInto('users').values({ name: 'Ada' })
  db.replaceInto('users').values({ name: 'Ada' })
  db.updateTable('users').set({ name: 'Ada' })
  db.deleteFrom('users')
  db.mergeInto('users as u').using('posts', 'posts.user_id', 'u.id').whenMatched().thenDelete()
  db.schema.createTable('audit')
}

// The twins of these on a replica do not compile.
expectError(read.insertInto('users').values({ name: 'Ada' }).execute())
expectError(read.mergeInto('users as u'))
expectError(read.schema.createTable('audit'))

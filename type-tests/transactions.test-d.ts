/**
 * Transactions, pinned connections and controlled transactions hand out a handle of the same
 * capability as the backend they were started on.
 */
import { type Command, sql } from 'kysely'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type {
  CanRead,
  CanReadTransaction,
  ReadBackend,
  ReadControlledTransaction,
  ReadTransaction,
  WriteBackend,
  WriteControlledTransaction,
  WriteTransaction,
} from '../src/index.js'
import { type AppDB, canRead, kysely, needsRead, needsWrite, read, write } from './schema.js'

// --- write transaction: read after write -------------------------------------------------------

const written = await write.transaction().execute(async (tx) => {
  expectType<WriteTransaction<AppDB>>(tx)
  expectAssignable<WriteBackend<AppDB>>(tx)
  needsWrite(tx)
  const { id } = await tx.insertInto('users').values({ name: 'Ada' }).returning('id').executeTakeFirstOrThrow()
  await tx.insertInto('posts').values({ user_id: id, title: 'Hello', body: '' }).execute()
  await tx.updateTable('users').set({ email: 'ada@example.com' }).where('id', '=', id).execute()
  return tx
    .selectFrom('users')
    .innerJoin('posts', 'posts.user_id', 'users.id')
    .select(['users.id', 'posts.title'])
    .execute()
})
// The result of execute is the callback's.
expectType<{ id: number; title: string }[]>(written)
expectType<Promise<number>>(write.transaction().execute(async () => 1))
expectType<Promise<string>>(
  write
    .transaction()
    .setIsolationLevel('serializable')
    .execute(async () => 'ok'),
)

// --- read transaction ---------------------------------------------------------------------------

const snapshot = await read.transaction().execute(async (tx) => {
  expectType<ReadTransaction<AppDB>>(tx)
  expectAssignable<ReadBackend<AppDB>>(tx)
  needsRead(tx)
  return tx.selectFrom('users').select('id').execute()
})
expectType<{ id: number }[]>(snapshot)
expectType<Promise<void>>(
  read
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async () => {}),
)

await read.transaction().execute(async (tx) => {
  expectError(tx.insertInto('users').values({ name: 'Ada' }))
  expectError(tx.replaceInto('users').values({ name: 'Ada' }))
  expectError(tx.updateTable('users').set({ name: 'Ada' }))
  expectError(tx.deleteFrom('users'))
  expectError(tx.mergeInto('users'))
  expectError(tx.schema.createTable('audit'))
  expectError(sql`delete from users`.execute(tx))
  expectError(needsWrite(tx))
})
// and their twins compile in a write transaction
await write.transaction().execute(async (tx) => {
  tx.insertInto('users').values({ name: 'Ada' })
  tx.replaceInto('users').values({ name: 'Ada' })
  tx.updateTable('users').set({ name: 'Ada' })
  tx.deleteFrom('users')
  tx.mergeInto('users')
  tx.schema.createTable('audit')
  await sql`delete from users`.execute(tx)
  expectError(needsRead(tx))
})

// A transaction started on a CanRead gives a CanRead.
await canRead.transaction().execute(async (tx) => {
  expectType<CanReadTransaction<AppDB>>(tx)
  expectAssignable<CanRead<AppDB>>(tx)
  expectError(tx.insertInto('users').values({ name: 'Ada' }))
  expectError(tx.deleteFrom('users'))
})

// --- pinned connections -------------------------------------------------------------------------

await read.connection().execute(async (db) => {
  expectType<ReadBackend<AppDB>>(db)
  expectError(db.insertInto('users').values({ name: 'Ada' }))
  expectError(db.replaceInto('users').values({ name: 'Ada' }))
  expectError(db.updateTable('users').set({ name: 'Ada' }))
  expectError(db.deleteFrom('users'))
  expectError(db.mergeInto('users'))
  expectError(db.schema.createTable('audit'))
  expectError(sql`delete from users`.execute(db))
})
await write.connection().execute(async (db) => {
  expectType<WriteBackend<AppDB>>(db)
  db.insertInto('users').values({ name: 'Ada' })
  db.mergeInto('users')
  db.schema.createTable('audit')
})
await canRead.connection().execute(async (db) => {
  expectType<CanRead<AppDB>>(db)
  expectError(db.deleteFrom('users'))
})
expectType<Promise<{ id: number }[]>>(
  read
    .connection()
    .execute((db) => db.selectFrom('users').select('id').execute(), { signal: AbortSignal.timeout(1000) }),
)

// --- controlled transactions on the primary -----------------------------------------------------

const wtx = await write.startTransaction().setIsolationLevel('serializable').execute()
expectType<WriteControlledTransaction<AppDB>>(wtx)
expectAssignable<WriteBackend<AppDB>>(wtx)
needsWrite(wtx)
expectType<Command<void>>(wtx.commit())
expectType<Command<void>>(wtx.rollback())
expectType<boolean>(wtx.isCommitted)
expectType<boolean>(wtx.isRolledBack)
wtx.insertInto('users').values({ name: 'Ada' })
wtx.mergeInto('users as u')

const wsp1 = await wtx.savepoint('before_posts').execute()
expectType<WriteControlledTransaction<AppDB, ['before_posts']>>(wsp1)
expectAssignable<WriteBackend<AppDB>>(wsp1)
wsp1.insertInto('posts').values({ user_id: 1, title: 't', body: '' })
const wsp2 = await wsp1.savepoint('before_comments').execute()
expectType<WriteControlledTransaction<AppDB, ['before_posts', 'before_comments']>>(wsp2)
expectType<WriteControlledTransaction<AppDB, ['before_posts']>>(
  await wsp2.rollbackToSavepoint('before_posts').execute(),
)
expectType<WriteControlledTransaction<AppDB, ['before_posts']>>(
  await wsp2.releaseSavepoint('before_comments').execute(),
)
expectType<WriteControlledTransaction<AppDB, []>>(await wsp2.releaseSavepoint('before_posts').execute())
expectType<Command<void>>(wsp2.commit())

// Savepoint misuse: names that were never set, or that are gone.
expectError(wtx.rollbackToSavepoint('before_posts'))
expectError(wtx.releaseSavepoint('before_posts'))
expectError(wsp1.rollbackToSavepoint('before_comments'))
expectError(wsp1.releaseSavepoint('nope'))
expectError(wsp2.rollbackToSavepoint('nope'))
const wBack = await wsp2.rollbackToSavepoint('before_posts').execute()
expectError(wBack.releaseSavepoint('before_comments'))
const wReleased = await wsp2.releaseSavepoint('before_posts').execute()
expectError(wReleased.rollbackToSavepoint('before_posts'))
// (the same misuse is refused by Kysely's own ControlledTransaction)
const ktx = await kysely.startTransaction().execute()
expectError(ktx.rollbackToSavepoint('before_posts'))

// --- controlled transactions on a replica -------------------------------------------------------

const rtx = await read.startTransaction().setIsolationLevel('repeatable read').execute()
expectType<ReadControlledTransaction<AppDB>>(rtx)
expectAssignable<ReadBackend<AppDB>>(rtx)
expectNotAssignable<WriteBackend<AppDB>>(rtx)
needsRead(rtx)
expectType<Command<void>>(rtx.commit())
expectType<Command<void>>(rtx.rollback())
expectType<boolean>(rtx.isCommitted)
expectType<Promise<{ id: number }[]>>(rtx.selectFrom('users').select('id').execute())

const rsp1 = await rtx.savepoint('a').execute()
expectType<ReadControlledTransaction<AppDB, ['a']>>(rsp1)
expectAssignable<ReadBackend<AppDB>>(rsp1)
const rsp2 = await rsp1.savepoint('b').execute()
expectType<ReadControlledTransaction<AppDB, ['a']>>(await rsp2.rollbackToSavepoint('a').execute())
expectType<ReadControlledTransaction<AppDB, ['a']>>(await rsp2.releaseSavepoint('b').execute())

expectError(rtx.rollbackToSavepoint('a'))
expectError(rtx.releaseSavepoint('a'))
expectError(rsp1.rollbackToSavepoint('b'))
expectError(rsp2.releaseSavepoint('c'))

// Nothing that writes, before or after a savepoint.
expectError(rtx.insertInto('users').values({ name: 'Ada' }))
expectError(rtx.replaceInto('users').values({ name: 'Ada' }))
expectError(rtx.updateTable('users').set({ name: 'Ada' }))
expectError(rtx.deleteFrom('users'))
expectError(rtx.mergeInto('users'))
expectError(rtx.schema.createTable('audit'))
expectError(rtx.with('gone', (qc) => qc.deleteFrom('users').returning('id')))
expectError(sql`delete from users`.execute(rtx))
expectError(needsWrite(rtx))
expectError(rsp2.insertInto('users').values({ name: 'Ada' }))
expectError(rsp2.deleteFrom('users'))

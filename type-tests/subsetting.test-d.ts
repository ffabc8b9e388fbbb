/**
 * Schema subsetting: a backend of a larger schema passes where one of a smaller schema (a subset
 * of its tables) is asked for, never the other way, and never across capabilities.
 */
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type { CanRead, ReadBackend, WriteBackend, WriteTransaction } from '../src/index.js'
import { type AppDB, type OtherDB, read, type Users, type UsersDB, write } from './schema.js'

declare const readUsers: ReadBackend<UsersDB>
declare const writeUsers: WriteBackend<UsersDB>
declare const canReadUsers: CanRead<UsersDB>
declare const readOther: ReadBackend<OtherDB>
declare const writeOther: WriteBackend<OtherDB>
/** Same table name as AppDB, incompatible columns. */
interface ClashingDB {
  users: Users & { nickname: string }
}

// --- functions over a subset, and the queries inside them ---------------------------------------

function countUsers(db: CanRead<{ users: Users }>) {
  expectType<Promise<{ n: number } | undefined>>(
    db.selectFrom('users').select(db.fn.count<number>('id').as('n')).executeTakeFirst(),
  )
  db.with('named', (qc) => qc.selectFrom('users').select('name'))
    .selectFrom('named')
    .selectAll()
  db.transaction().execute(async (tx) => tx.selectFrom('users').selectAll().execute())
  // The subset is all such a function sees.
  expectError(db.selectFrom('posts'))
}

function replicaUsers(db: ReadBackend<{ users: Users }>) {
  db.selectFrom('users').select(['id', 'name']).where('email', 'is', null)
  db.startTransaction().execute()
  expectError(db.selectFrom('comments'))
}

async function renameUser(db: WriteBackend<{ users: Users }>, id: number) {
  await db.updateTable('users').set({ name: 'Ada' }).where('id', '=', id).execute()
  await db.insertInto('users').values({ name: 'Ada' }).execute()
  await db.deleteFrom('users').where('id', '=', id).execute()
  await db.replaceInto('users').values({ name: 'Ada' }).execute()
  await db.mergeInto('users as u').using('users as v', 'v.id', 'u.id').whenMatched().thenDelete().execute()
  await db
    .with('new_user', (qc) => qc.insertInto('users').values({ name: 'Ada' }).returning('id'))
    .selectFrom('new_user')
    .selectAll()
    .execute()
  const tx = await db.startTransaction().execute()
  const sp = await tx.savepoint('a').execute()
  await sp.rollbackToSavepoint('a').execute()
  expectType<WriteBackend<{ users: Users }>>(db.withSchema('tenant_1'))
  await db.transaction().execute(async (t) => {
    expectType<WriteTransaction<{ users: Users }>>(t)
    return t.updateTable('users').set({ name: 'Ada' }).execute()
  })
  expectError(db.insertInto('posts'))
}

// --- the larger schema passes as the smaller ----------------------------------------------------

countUsers(read)
countUsers(write)
countUsers(readUsers)
countUsers(writeUsers)
countUsers(canReadUsers)
replicaUsers(read)
renameUser(write, 1)
expectAssignable<CanRead<UsersDB>>(read)
expectAssignable<CanRead<UsersDB>>(write)
expectAssignable<ReadBackend<UsersDB>>(read)
expectAssignable<WriteBackend<UsersDB>>(write)

// Transactions of the larger schema, too.
await write.transaction().execute(async (tx) => {
  await renameUser(tx, 1)
  await countUsers(tx)
})
await read.transaction().execute(async (tx) => {
  await countUsers(tx)
  await replicaUsers(tx)
})
const wtx = await write.startTransaction().execute()
await renameUser(wtx, 1)
const wsp = await wtx.savepoint('a').execute()
await renameUser(wsp, 1)
const rtx = await read.startTransaction().execute()
await replicaUsers(rtx)
await countUsers(rtx)

// --- but not the other way ----------------------------------------------------------------------

declare function needsAppRead(db: ReadBackend<AppDB>): void
declare function needsAppWrite(db: WriteBackend<AppDB>): void
declare function needsAppCanRead(db: CanRead<AppDB>): void

// A smaller schema where a larger one is required.
expectError(needsAppRead(readUsers))
expectError(needsAppWrite(writeUsers))
expectError(needsAppCanRead(canReadUsers))
expectError(needsAppCanRead(readUsers))
expectError(needsAppCanRead(writeUsers))
expectNotAssignable<ReadBackend<AppDB>>(readUsers)
expectNotAssignable<WriteBackend<AppDB>>(writeUsers)
expectNotAssignable<CanRead<AppDB>>(canReadUsers)

// An unrelated schema.
expectError(needsAppRead(readOther))
expectError(needsAppWrite(writeOther))
expectError(needsAppCanRead(readOther))
expectError(countUsers(readOther))
expectError(renameUser(writeOther, 1))
expectNotAssignable<CanRead<OtherDB>>(read)

// Same table name, a column the backend's schema lacks.
expectNotAssignable<CanRead<ClashingDB>>(read)
expectNotAssignable<WriteBackend<ClashingDB>>(write)

// Subsetting does not cross capabilities.
expectError(renameUser(read, 1))
expectNotAssignable<WriteBackend<{ users: Users }>>(read)
expectNotAssignable<WriteBackend<UsersDB>>(readUsers)
expectError(replicaUsers(write))
expectNotAssignable<ReadBackend<{ users: Users }>>(write)
await read.transaction().execute(async (tx) => {
  expectError(renameUser(tx, 1))
})
await write.transaction().execute(async (tx) => {
  expectError(replicaUsers(tx))
})
expectError(renameUser(rtx, 1))
expectError(renameUser(canReadUsers, 1))

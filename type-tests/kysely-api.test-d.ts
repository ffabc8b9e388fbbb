/**
 * Kysely API the backends keep, capability included: access modes on transaction builders, schema
 * reshaping ($pickTables and friends), `await using`, and no nested transactions on a transaction handle.
 */
import type { Kysely } from 'kysely'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type {
  Backends,
  CanRead,
  CanReadTransaction,
  ReadBackend,
  ReadControlledTransaction,
  ReadTransaction,
  WriteBackend,
  WriteControlledTransaction,
  WriteTransaction,
} from '../src/index.js'
import { type AppDB, canRead, kysely, needsRead, needsWrite, read, type Users, type UsersDB, write } from './schema.js'

// --- setAccessMode ------------------------------------------------------------------------------

// The primary takes either mode, as Kysely does; a read-only one keeps the write type (the database
// refuses its writes) and still compiles everything Kysely's does.
await write
  .transaction()
  .setAccessMode('read only')
  .setIsolationLevel('serializable')
  .execute(async (tx) => {
    expectType<WriteTransaction<AppDB>>(tx)
    return tx.selectFrom('users').selectAll().execute()
  })
await write
  .transaction()
  .setAccessMode('read write')
  .execute(async (tx) => tx.insertInto('users').values({ name: 'Ada' }).execute())
expectType<Promise<WriteControlledTransaction<AppDB>>>(write.startTransaction().setAccessMode('read write').execute())
expectType<Promise<WriteControlledTransaction<AppDB>>>(
  write.startTransaction().setIsolationLevel('read committed').setAccessMode('read only').execute(),
)
kysely.transaction().setAccessMode('read write')

// A read handle's transactions are read-only: asking for read-write does not compile.
await read
  .transaction()
  .setAccessMode('read only')
  .execute(async (tx) => expectType<ReadTransaction<AppDB>>(tx))
expectError(read.transaction().setAccessMode('read write'))
expectError(read.startTransaction().setAccessMode('read write'))
expectType<Promise<ReadControlledTransaction<AppDB>>>(read.startTransaction().setAccessMode('read only').execute())
expectError(canRead.transaction().setAccessMode('read write'))
canRead.transaction().setAccessMode('read only')
expectError(write.transaction().setAccessMode('read-only'))

// --- $pickTables, $omitTables, $extendTables, withTables ----------------------------------------

expectType<ReadBackend<Pick<AppDB, 'users' | 'posts'>>>(read.$pickTables<'users' | 'posts'>())
expectType<WriteBackend<Pick<AppDB, 'users'>>>(write.$pickTables<'users'>())
expectType<ReadBackend<Omit<AppDB, 'comments'>>>(read.$omitTables<'comments'>())
expectType<WriteBackend<Omit<AppDB, 'comments'>>>(write.$omitTables<'comments'>())

// The tables are Kysely's: a picked-away table is gone, an unknown name does not compile.
expectError(read.$pickTables<'users'>().selectFrom('posts'))
expectError(write.$omitTables<'posts'>().insertInto('posts'))
expectError(read.$pickTables<'nope'>())
expectError(write.$omitTables<'nope'>())

// The capability is kept: still no writes through a read handle, still a WriteBackend of the primary.
expectError(read.$pickTables<'users'>().insertInto('users'))
expectError(read.$omitTables<'posts'>().deleteFrom('users'))
expectError(needsWrite(read.$omitTables<'posts'>() as never as ReadBackend<AppDB>))
expectNotAssignable<WriteBackend<UsersDB>>(read.$pickTables<'users'>())
expectAssignable<WriteBackend<UsersDB>>(write.$pickTables<'users'>())
expectAssignable<ReadBackend<UsersDB>>(read.$pickTables<'users'>())
await write.$pickTables<'users'>().insertInto('users').values({ name: 'Ada' }).execute()

// A temporary table, as in Kysely's docs: added to the schema, kept on its capability.
// A type alias, as Kysely's constraint (Record<string, …>) asks: an interface has no index signature.
type TempDB = { temp_ids: { id: number } }
const temp = write.$extendTables<TempDB>()
expectType<WriteBackend<AppDB & TempDB>>(temp)
await temp.insertInto('temp_ids').values({ id: 1 }).execute()
const tempRead = read.$extendTables<TempDB>()
expectType<{ id: number }[]>(await tempRead.selectFrom('temp_ids').selectAll().execute())
expectError(tempRead.insertInto('temp_ids').values({ id: 1 }))
expectType<WriteBackend<AppDB & TempDB>>(write.withTables<TempDB>())
expectType<ReadBackend<AppDB & TempDB>>(read.withTables<TempDB>())

// Inside transactions they keep the capability (typed as the backend's: only ReadBackend and WriteBackend
// declare them, which keeps type checking of every other comparison of handles as fast as before).
await write.transaction().execute(async (tx) => {
  expectType<WriteBackend<Pick<AppDB, 'users'>>>(tx.$pickTables<'users'>())
  expectType<WriteBackend<AppDB & TempDB>>(tx.$extendTables<TempDB>())
  expectType<WriteTransaction<AppDB>>(tx.withPlugin({} as never))
})
await read.transaction().execute(async (tx) => {
  expectType<ReadBackend<Omit<AppDB, 'posts'>>>(tx.$omitTables<'posts'>())
  expectError(tx.$pickTables<'users'>().insertInto('users'))
})
// A CanRead does not reshape: a function that needs fewer tables asks for them in its parameter type.
expectError(canRead.$pickTables<'users'>())

// A function over a subset still accepts the reshaped backend of the larger schema.
declare function countUsers(db: CanRead<{ users: Users }>): Promise<number>
countUsers(read.$omitTables<'posts'>())
countUsers(write.$pickTables<'users' | 'comments'>())
expectError(countUsers(read.$omitTables<'users'>()))
// Plain Kysely, the reference.
expectType<Kysely<Pick<AppDB, 'users'>>>(kysely.$pickTables<'users'>())

// --- await using --------------------------------------------------------------------------------

declare const backends: Backends<AppDB>
expectType<Promise<void>>(backends[Symbol.asyncDispose]())
async function scoped(make: () => Backends<AppDB>) {
  await using db = make()
  needsRead(db.read)
}
scoped

// --- no nested transactions on a transaction handle, as with Kysely's Transaction -----------------

await write.transaction().execute(async (tx) => {
  expectType<never>(tx.transaction())
  expectType<never>(tx.startTransaction())
  expectType<never>(tx.connection())
  expectError(tx.transaction().execute(async () => {}))
  expectError(tx.startTransaction().execute())
  expectError(tx.connection().execute(async () => {}))
  // still the write backend everywhere one is asked for
  needsWrite(tx)
})
await read.transaction().execute(async (tx) => {
  expectError(tx.transaction().execute(async () => {}))
  expectError(tx.startTransaction().execute())
  needsRead(tx)
})
await canRead.transaction().execute(async (tx) => {
  expectType<CanReadTransaction<AppDB>>(tx)
  expectError(tx.transaction().execute(async () => {}))
})
const wtx = await write.startTransaction().execute()
expectError(wtx.transaction().execute(async () => {}))
expectError(wtx.startTransaction().execute())
const rtx = await read.startTransaction().execute()
expectError(rtx.transaction().execute(async () => {}))
// (Kysely's own Transaction, for comparison)
await kysely.transaction().execute(async (trx) => {
  expectError(trx.transaction().execute(async () => {}))
})
// A pinned connection is not a transaction: it may start one.
await write.connection().execute((db) => db.transaction().execute(async (tx) => tx.deleteFrom('users').execute()))

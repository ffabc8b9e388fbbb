/**
 * Data-access functions written against the capabilities: generic constraints (persistent-style
 * repositories) and plain `CanRead<DB>` parameters accept every handle that can read.
 */
import { expectError, expectType } from 'tsd'
import type { CanRead, ReadBackend, WriteBackend } from '../src/index.js'
import { type AppDB, canRead, read, write } from './schema.js'

// --- a generic constraint -----------------------------------------------------------------------

function findUser<B extends CanRead<AppDB>>(db: B, id: number) {
  return db.selectFrom('users').select(['id', 'name']).where('id', '=', id).executeTakeFirst()
}
function postsWithAuthors<B extends CanRead<AppDB>>(db: B) {
  // `with` reads the schema off the receiver: on a generic `B` it comes from B's bound.
  return db
    .with('authors', (qc) => qc.selectFrom('users').select(['id', 'name']))
    .selectFrom('posts')
    .innerJoin('authors', 'authors.id', 'posts.user_id')
    .select(['posts.title', 'authors.name'])
    .execute()
}
/** Returns the handle it was given: the capability survives the generic. */
function scoped<B extends CanRead<AppDB>>(db: B): B {
  return db
}

expectType<Promise<{ id: number; name: string } | undefined>>(findUser(read, 1))
expectType<Promise<{ id: number; name: string } | undefined>>(findUser(write, 1))
expectType<Promise<{ id: number; name: string } | undefined>>(findUser(canRead, 1))
expectType<Promise<{ title: string; name: string }[]>>(postsWithAuthors(read))
expectType<Promise<{ title: string; name: string }[]>>(postsWithAuthors(write))
expectType<ReadBackend<AppDB>>(scoped(read))
expectType<WriteBackend<AppDB>>(scoped(write))
scoped(write).insertInto('users').values({ name: 'Ada' })
expectError(scoped(read).insertInto('users').values({ name: 'Ada' }))

await write.transaction().execute(async (tx) => {
  await tx.insertInto('users').values({ name: 'Ada' }).execute()
  return Promise.all([findUser(tx, 1), postsWithAuthors(tx)])
})
await read.transaction().execute((tx) => findUser(tx, 1))
await findUser(await read.startTransaction().execute(), 1)
await findUser(await write.startTransaction().execute(), 1)

// A generic repository over any capability of the schema.
class UserRepository<B extends CanRead<AppDB>> {
  constructor(private readonly db: B) {}
  byId(id: number) {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
  }
  // Writing needs the bound narrowed to the primary.
  rename(this: UserRepository<WriteBackend<AppDB>>, id: number, name: string) {
    return this.db.updateTable('users').set({ name }).where('id', '=', id).execute()
  }
}
new UserRepository(read).byId(1)
new UserRepository(write).byId(1)
new UserRepository(write).rename(1, 'Ada')
expectError(new UserRepository(read).rename(1, 'Ada'))

// A generic bound to reads cannot write, whatever it is called with.
export function writesThroughBound<B extends CanRead<AppDB>>(db: B) {
  expectError(db.insertInto('users').values({ name: 'Ada' }))
  expectError(db.deleteFrom('users'))
}
// A generic bound to the primary can.
export function writesThroughWriteBound<B extends WriteBackend<AppDB>>(db: B) {
  db.insertInto('users').values({ name: 'Ada' })
  db.deleteFrom('users')
}
expectError(writesThroughWriteBound(read))
expectError(writesThroughWriteBound(canRead))
writesThroughWriteBound(write)

// --- a plain CanRead parameter ------------------------------------------------------------------

async function countPosts(db: CanRead<AppDB>, userId: number): Promise<number> {
  const row = await db
    .selectFrom('posts')
    .select(db.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  return row.n
}

countPosts(read, 1)
countPosts(write, 1)
countPosts(canRead, 1)
await read.transaction().execute((tx) => countPosts(tx, 1))
await write.transaction().execute((tx) => countPosts(tx, 1))
await canRead.transaction().execute((tx) => countPosts(tx, 1))
await read.connection().execute((db) => countPosts(db, 1))
await write.connection().execute((db) => countPosts(db, 1))
await countPosts(await read.startTransaction().execute(), 1)
await countPosts(await write.startTransaction().execute(), 1)

// --- the receiver-typed members on generic handles ---------------------------------------------

async function genericWriter<B extends WriteBackend<AppDB>>(db: B) {
  await db
    .with('made', (qc) => qc.insertInto('users').values({ name: 'x' }).returning('id'))
    .selectFrom('made')
    .selectAll()
    .execute()
  await db.mergeInto('users as u').using('posts', 'posts.user_id', 'u.id').whenMatched().thenDelete().execute()
  const trx = await db.startTransaction().execute()
  await trx.insertInto('users').values({ name: 'x' }).execute()
  const afterSavepoint = await trx.savepoint('s').execute()
  await afterSavepoint.rollbackToSavepoint('s').execute()
}
async function genericReader<B extends ReadBackend<AppDB>>(db: B) {
  const trx = await db.startTransaction().execute()
  expectType<{ id: number }[]>(await trx.selectFrom('users').select('id').execute())
  expectError(trx.insertInto('users'))
  expectError(db.with('gone', (qc) => qc.deleteFrom('users').returning('id')))
}

/**
 * Result types are exactly Kysely's: the same query built on a plain `Kysely<DB>` and on a
 * backend has the same type.
 */
import type { Insertable, Selectable, Updateable } from 'kysely'
import { expectType } from 'tsd'
import { type Comments, kysely, type Posts, read, type Users, write } from './schema.js'

// select one column
const kSelectId = () => kysely.selectFrom('users').select('id').execute()
const rSelectId = () => read.selectFrom('users').select('id').execute()
const wSelectId = () => write.selectFrom('users').select('id').execute()
expectType<Awaited<ReturnType<typeof kSelectId>>>(await rSelectId())
expectType<Awaited<ReturnType<typeof kSelectId>>>(await wSelectId())
expectType<{ id: number }[]>(await rSelectId())
expectType<{ id: number }[]>(await wSelectId())

// selectAll is Selectable<Table>
type KUsers = Awaited<ReturnType<typeof kUsers>>
const kUsers = () => kysely.selectFrom('users').selectAll().execute()
expectType<KUsers>(await read.selectFrom('users').selectAll().execute())
expectType<KUsers>(await write.selectFrom('users').selectAll().execute())
expectType<Selectable<Users>[]>(await read.selectFrom('users').selectAll().execute())
expectType<Selectable<Users>[]>(await write.selectFrom('users').selectAll().execute())
const firstPost = await read.selectFrom('posts').selectAll().executeTakeFirstOrThrow()
expectType<Selectable<Posts>>(firstPost)
expectType<Date>((await read.selectFrom('users').selectAll().executeTakeFirstOrThrow()).created_at)

// executeTakeFirst may be undefined, as on Kysely
const kFirst = () => kysely.selectFrom('users').select(['id', 'email']).executeTakeFirst()
expectType<Awaited<ReturnType<typeof kFirst>>>(
  await read.selectFrom('users').select(['id', 'email']).executeTakeFirst(),
)
expectType<{ id: number; email: string | null } | undefined>(
  await read.selectFrom('users').select(['id', 'email']).executeTakeFirst(),
)
expectType<{ id: number; email: string | null } | undefined>(
  await write.selectFrom('users').select(['id', 'email']).executeTakeFirst(),
)

// joins: nullability from a left join is Kysely's
const kJoin = () =>
  kysely
    .selectFrom('posts')
    .leftJoin('comments', 'comments.post_id', 'posts.id')
    .select(['posts.id', 'comments.text'])
    .execute()
const rJoin = () =>
  read
    .selectFrom('posts')
    .leftJoin('comments', 'comments.post_id', 'posts.id')
    .select(['posts.id', 'comments.text'])
    .execute()
expectType<Awaited<ReturnType<typeof kJoin>>>(await rJoin())
expectType<{ id: number; text: string | null }[]>(await rJoin())

// aggregates
const kCount = () =>
  kysely
    .selectFrom('comments')
    .select((eb) => eb.fn.count('id').as('n'))
    .executeTakeFirstOrThrow()
expectType<Awaited<ReturnType<typeof kCount>>>(
  await read
    .selectFrom('comments')
    .select((eb) => eb.fn.count('id').as('n'))
    .executeTakeFirstOrThrow(),
)
expectType<Awaited<ReturnType<typeof kCount>>>(
  await write
    .selectFrom('comments')
    .select((eb) => eb.fn.count('id').as('n'))
    .executeTakeFirstOrThrow(),
)

// insert … returning
const kInsert = () => kysely.insertInto('users').values({ name: 'Ada' }).returning(['id', 'created_at']).execute()
expectType<Awaited<ReturnType<typeof kInsert>>>(
  await write.insertInto('users').values({ name: 'Ada' }).returning(['id', 'created_at']).execute(),
)
expectType<{ id: number; created_at: Date }[]>(
  await write.insertInto('users').values({ name: 'Ada' }).returning(['id', 'created_at']).execute(),
)
const kReturningAll = () =>
  kysely.insertInto('comments').values({ post_id: 1, user_id: 1, text: '' }).returningAll().executeTakeFirstOrThrow()
expectType<Awaited<ReturnType<typeof kReturningAll>>>(
  await write
    .insertInto('comments')
    .values({ post_id: 1, user_id: 1, text: '' })
    .returningAll()
    .executeTakeFirstOrThrow(),
)
expectType<Selectable<Comments>>(
  await write
    .insertInto('comments')
    .values({ post_id: 1, user_id: 1, text: '' })
    .returningAll()
    .executeTakeFirstOrThrow(),
)

// update / delete … returning
expectType<{ name: string }[]>(await write.updateTable('users').set({ name: 'Ada' }).returning('name').execute())
expectType<{ post_id: number } | undefined>(await write.deleteFrom('comments').returning('post_id').executeTakeFirst())

// Insertable / Updateable values are accepted as on Kysely
const newUser: Insertable<Users> = { name: 'Ada' }
const patch: Updateable<Users> = { email: null }
write.insertInto('users').values(newUser)
write.insertInto('users').values([newUser, newUser])
write.updateTable('users').set(patch)
kysely.insertInto('users').values(newUser)

// a result read in a transaction is the same type as outside it
const inTx = await write.transaction().execute((tx) => tx.selectFrom('users').select('id').execute())
expectType<Awaited<ReturnType<typeof kSelectId>>>(inTx)
const inReadTx = await read.transaction().execute((tx) => tx.selectFrom('users').select('id').execute())
expectType<Awaited<ReturnType<typeof kSelectId>>>(inReadTx)

/**
 * Locking reads (FOR UPDATE and friends) take row locks: they belong on the primary. On a read
 * handle they do not compile; on the write backend and its transactions they do.
 */
import { expectError, expectType } from 'tsd'
import type { CanRead } from '../src/index.js'
import { type AppDB, canRead, read, write } from './schema.js'

expectError(read.selectFrom('users').selectAll().forUpdate().execute())
expectError(read.selectFrom('users').selectAll().forShare().execute())
expectError(read.selectFrom('users').selectAll().forNoKeyUpdate().execute())
expectError(read.selectFrom('users').selectAll().forKeyShare().execute())
expectError(read.selectFrom('users').selectAll().where('id', '=', 1).forUpdate().skipLocked().execute())
expectError(canRead.selectFrom('users').selectAll().forUpdate().execute())
expectError(
  read
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb('id', 'in', eb.selectFrom('posts').select('user_id').forUpdate()))
    .execute(),
)
expectError(read.transaction().execute((tx) => tx.selectFrom('users').selectAll().forUpdate().execute()))
expectError(
  read
    .with('u', (qc) => qc.selectFrom('users').select('id'))
    .selectFrom('u')
    .selectAll()
    .forUpdate()
    .execute(),
)
function lockingInCanRead(db: CanRead<AppDB>) {
  expectError(db.selectFrom('users').select('id').forShare().execute())
}

// On the primary they compile, with Kysely's result types.
expectType<Promise<{ id: number; name: string }[]>>(
  write.selectFrom('users').select(['id', 'name']).forUpdate().execute(),
)
expectType<Promise<{ id: number }[]>>(write.selectFrom('users').select('id').forUpdate('users').skipLocked().execute())
write.transaction().execute(async (tx) => {
  expectType<{ id: number }[]>(await tx.selectFrom('users').select('id').where('id', '=', 1).forNoKeyUpdate().execute())
})
// Reads without locks keep their exact result types on read handles.
expectType<Promise<{ id: number; name: string }[]>>(read.selectFrom('users').select(['id', 'name']).execute())
lockingInCanRead(read)

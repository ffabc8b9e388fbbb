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
// In a CTE body: its query creator carries the read handle's tag.
expectError(
  read
    .with('x', (qc) => qc.selectFrom('users').selectAll().forUpdate())
    .selectFrom('x')
    .selectAll(),
)
expectError(read.with('x', (qc) => qc.selectFrom('users').select('id').forNoKeyUpdate()))
expectError(read.withRecursive('x(id)', (qc) => qc.selectFrom('users').select('id').forShare()))
expectError(read.withRecursive('x(id)', (qc) => qc.selectFrom('users').select('id').forKeyShare()))
expectError(canRead.with('x', (qc) => qc.selectFrom('users').select('id').forUpdate()))
expectError(
  canRead
    .withRecursive('x', (qc) => qc.selectFrom('users').select('id').forShare())
    .selectFrom('x')
    .selectAll(),
)
// A CTE nested in a CTE body, and a CTE in a read transaction.
expectError(
  read.with('outer', (qc) =>
    qc
      .with('inner', (q2) => q2.selectFrom('users').select('id').forUpdate())
      .selectFrom('inner')
      .selectAll(),
  ),
)
expectError(
  read.transaction().execute((tx) =>
    tx
      .with('x', (qc) => qc.selectFrom('users').select('id').forUpdate())
      .selectFrom('x')
      .selectAll()
      .execute(),
  ),
)
function lockingInCanRead(db: CanRead<AppDB>) {
  expectError(db.selectFrom('users').select('id').forShare().execute())
  expectError(db.with('x', (qc) => qc.selectFrom('users').select('id').forUpdate()))
  expectError(db.withRecursive('x(id)', (qc) => qc.selectFrom('users').select('id').forShare()))
}
function lockingInGeneric<B extends CanRead<AppDB>>(db: B) {
  expectError(db.with('x', (qc) => qc.selectFrom('users').select('id').forUpdate()))
}

// On the primary they compile, with Kysely's result types.
expectType<Promise<{ id: number; name: string }[]>>(
  write.selectFrom('users').select(['id', 'name']).forUpdate().execute(),
)
expectType<Promise<{ id: number }[]>>(write.selectFrom('users').select('id').forUpdate('users').skipLocked().execute())
write.transaction().execute(async (tx) => {
  expectType<{ id: number }[]>(await tx.selectFrom('users').select('id').where('id', '=', 1).forNoKeyUpdate().execute())
})
// And in a CTE body on the primary.
expectType<Promise<{ id: number }[]>>(
  write
    .with('x', (qc) => qc.selectFrom('users').select('id').forUpdate())
    .selectFrom('x')
    .selectAll()
    .execute(),
)
expectType<Promise<{ id: number }[]>>(
  write
    .withRecursive('x(id)', (qc) => qc.selectFrom('users').select('id').forShare())
    .selectFrom('x')
    .selectAll()
    .execute(),
)
write.transaction().execute(async (tx) => {
  expectType<{ id: number }[]>(
    await tx
      .with('x', (qc) => qc.selectFrom('users').select('id').forUpdate().skipLocked())
      .selectFrom('x')
      .selectAll()
      .execute(),
  )
})
// CTEs without locks keep their result types on read handles, recursive ones included.
expectType<Promise<{ id: number }[]>>(
  read
    .withRecursive('x(id)', (qc) => qc.selectFrom('users').select('id').unionAll(qc.selectFrom('x').select('id')))
    .selectFrom('x')
    .selectAll()
    .execute(),
)
// Reads without locks keep their exact result types on read handles.
expectType<Promise<{ id: number; name: string }[]>>(read.selectFrom('users').select(['id', 'name']).execute())
lockingInCanRead(read)
lockingInGeneric(read)

/**
 * Kysely's `sql` template executes only on the primary: executing it needs the query executor,
 * which no replica handle, CanRead or read transaction exposes. (Raw reads go through `readSql`,
 * see read-sql.test-d.ts.)
 */
import { CamelCasePlugin, type QueryResult, sql } from 'kysely'
import { expectError, expectType } from 'tsd'
import type { CanRead, ReadBackend, WriteBackend } from '../src/index.js'
import { type AppDB, canRead, read, write } from './schema.js'

const query = sql<{ id: number }>`delete from users where id = ${1} returning id`

// --- the primary --------------------------------------------------------------------------------

expectType<Promise<QueryResult<{ id: number }>>>(query.execute(write))
expectType<Promise<QueryResult<{ id: number }>>>(query.execute(write.withSchema('tenant_1')))
await write.transaction().execute(async (tx) => {
  expectType<QueryResult<{ id: number }>>(await query.execute(tx))
})
await write.connection().execute((db) => query.execute(db))
const wtx = await write.startTransaction().execute()
await query.execute(wtx)
// and the executor is there on the primary
write.getExecutor()
write.executeQuery(query.compile(write))

// --- replica handles, CanRead and read transactions ---------------------------------------------

expectError(query.execute(read))
expectError(query.execute(read.withPlugin(new CamelCasePlugin())))
expectError(query.execute(read.withSchema('tenant_1')))
expectError(query.execute(canRead))
await read.transaction().execute(async (tx) => {
  expectError(await query.execute(tx))
})
await read.connection().execute(async (db) => {
  expectError(await query.execute(db))
})
const rtx = await read.startTransaction().execute()
expectError(query.execute(rtx))
await canRead.transaction().execute(async (tx) => {
  expectError(await query.execute(tx))
})

// Nor can a raw query be compiled against one (compiling needs the executor as well).
expectError(query.compile(read))

// The executor itself is not there.
expectError(read.executeQuery(query.compile(write)))
expectError(read.getExecutor())
expectError(canRead.executeQuery(query.compile(write)))
expectError(canRead.getExecutor())

export function onParameters(r: ReadBackend<AppDB>, c: CanRead<AppDB>, w: WriteBackend<AppDB>) {
  expectError(sql`truncate users`.execute(r))
  expectError(sql`truncate users`.execute(c))
  sql`truncate users`.execute(w)
}

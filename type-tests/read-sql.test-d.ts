/**
 * `readSql`: raw SQL declared a read runs on any handle that can read, with the row type given.
 */
import type { QueryResult, RawBuilder } from 'kysely'
import { expectType } from 'tsd'
import { type CanRead, type ReadBackend, type ReadSql, readSql, type WriteBackend } from '../src/index.js'
import { type AppDB, canRead, read, write } from './schema.js'

interface Row {
  id: number
  name: string
}

const q = readSql<Row>`select id, name from users where id = ${1}`
expectType<ReadSql<Row>>(q)
expectType<RawBuilder<Row>>(q.raw)

expectType<Promise<QueryResult<Row>>>(q.execute(read))
expectType<Promise<QueryResult<Row>>>(q.execute(write))
expectType<Promise<QueryResult<Row>>>(q.execute(canRead))
expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(read)).rows)
expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(write)).rows)
expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(canRead)).rows)

// In transactions and on pinned connections of either backend.
await read.transaction().execute(async (tx) => {
  expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(tx)).rows)
})
await write.transaction().execute(async (tx) => {
  await tx.insertInto('users').values({ name: 'Ada' }).execute()
  expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(tx)).rows)
})
await read.connection().execute(async (db) => readSql<Row>`select 1`.execute(db))
const rtx = await read.startTransaction().execute()
expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(rtx)).rows)
const wtx = await write.startTransaction().execute()
expectType<Row[]>((await readSql<Row>`select id, name from users`.execute(wtx)).rows)

// On parameters of any schema.
export function onParameters(c: CanRead<AppDB>, r: ReadBackend<{ users: AppDB['users'] }>, w: WriteBackend<AppDB>) {
  expectType<Promise<QueryResult<Row>>>(q.execute(c))
  expectType<Promise<QueryResult<Row>>>(q.execute(r))
  expectType<Promise<QueryResult<Row>>>(q.execute(w))
}

// Without a row type, the rows are unknown.
expectType<unknown[]>((await readSql`select 1`.execute(read)).rows)

// The raw builder embeds in a query builder.
expectType<Promise<{ n: Row }[]>>(read.selectNoFrom(q.raw.as('n')).execute())

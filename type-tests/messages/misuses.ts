/**
 * Misuses whose compile error must say, on its first line, what to do instead. Not a tsd file: each
 * line with an "error:" comment must fail to compile, and test/error-messages.test.ts checks the first
 * line of its tsc message for the text after the marker.
 */
import { sql } from 'kysely'
import type { CanRead } from '../../src/index.js'
import { type AppDB, canRead, read } from '../schema.js'

export async function misuses(db: CanRead<AppDB>) {
  await read.selectFrom('users').selectAll().forUpdate().execute() // error: run on the write backend: use db.write
  await read.selectFrom('users').selectAll().forShare().execute() // error: run on the write backend: use db.write
  await db.selectFrom('users').select('id').forNoKeyUpdate().execute() // error: run on the write backend: use db.write
  await read.selectFrom('users').selectAll().forKeyShare().skipLocked() // error: run on the write backend: use db.write
  await read.transaction().execute((tx) => tx.selectFrom('users').selectAll().forUpdate().execute()) // error: use db.write
  await sql`delete from users`.execute(read) // error: on a read handle use readSql`…`
  await sql<{ n: number }>`select count(*) as n from users`.execute(canRead) // error: on a read handle use readSql`…`
  await read.transaction().execute((tx) => sql`select 1`.execute(tx)) // error: on a read handle use readSql`…`
  await sql`select 1`.execute(db) // error: on a read handle use readSql`…`
  await sql.raw('delete from users').execute(read) // error: on a read handle use readSql`…`
}

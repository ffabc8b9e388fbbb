// The quick start: kysely-rw on an embedded PostgreSQL (PGlite), no server needed.
//   npm install && npm run quickstart
import { PGlite } from '@electric-sql/pglite'
import { type Generated, PGliteDialect, sql } from 'kysely'
import { type CanRead, createBackends, readSql, type WriteBackend, WriteOnReadBackendError } from '../src/index.js'

interface DB {
  users: { id: Generated<number>; name: string; email: string }
}

// Data-access functions say what they need: reads run on any backend, writes only on the primary.
function findUser(db: CanRead<DB>, email: string) {
  return db.selectFrom('users').select(['id', 'name']).where('email', '=', email).executeTakeFirst()
}

function createUser(db: WriteBackend<DB>, name: string, email: string) {
  return db.insertInto('users').values({ name, email }).returning('id').executeTakeFirstOrThrow()
}

const db = createBackends<DB>({
  dialect: 'postgres',
  // With no replicas, reads run on the primary, still in read-only sessions.
  primary: new PGliteDialect({ pglite: new PGlite() }),
})

await sql`create table users (id serial primary key, name text not null, email text unique not null)`.execute(db.write)

// Read-after-write in one transaction on the primary: the read sees the write.
const ada = await db.write.transaction().execute(async (tx) => {
  await createUser(tx, 'Ada', 'ada@example.com')
  return findUser(tx, 'ada@example.com')
})
console.log('read back in the transaction:', ada)

console.log('read on the read backend:', await findUser(db.read, 'ada@example.com'))
const { rows } = await readSql<{ n: number }>`select count(*)::int as n from users`.execute(db.read)
console.log('readSql count:', rows[0]?.n)

// createUser(db.read, …) does not compile. Forced through `as any`, the guard refuses it before
// anything is sent:
try {
  await createUser(db.read as any, 'Mallory', 'mallory@example.com')
} catch (error) {
  if (!(error instanceof WriteOnReadBackendError)) throw error
  console.log('refused:', error.message)
}

await db.destroy()

/**
 * What a Kysely user writes every day keeps compiling on the backends (cancellation options, streams,
 * introspection, reusable expression and query helpers, controlled transactions with savepoints), and
 * what must not run on a read handle or outside a transaction does not compile.
 */
import {
  type DatabaseIntrospector,
  type Expression,
  type ExpressionBuilder,
  expressionBuilder,
  type Kysely,
  type Logger,
  type QueryResult,
  type Selectable,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
  type TableMetadata,
  type Transaction,
} from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import Cursor from 'pg-cursor'
import { expectError, expectType } from 'tsd'
import {
  type BackendLogEvent,
  type Backends,
  type CanRead,
  createBackends,
  fromKysely,
  QUERY_CHANNEL,
  type QueryContext,
  readSql,
  type WriteBackend,
} from '../src/index.js'
import { type AppDB, canRead, kysely, read, type Users, write } from './schema.js'

declare const db: Backends<AppDB>
const signal = AbortSignal.timeout(1000)

// --- cancellation: Kysely's execute options on every handle ------------------------------------------

await read.selectFrom('users').selectAll().execute({ signal, inflightQueryAbortStrategy: 'cancel query' })
await write.updateTable('users').set({ name: 'Ada' }).execute({ signal, inflightQueryAbortStrategy: 'kill session' })
await canRead.selectFrom('users').selectAll().executeTakeFirst({ signal })
await db.session().read.selectFrom('users').selectAll().executeTakeFirstOrThrow({ signal })
await write.transaction().execute((tx) => tx.selectFrom('users').selectAll().execute({ signal }))
await sql`select pg_sleep(1)`.execute(write, { signal, inflightQueryAbortStrategy: 'cancel query' })
// readSql takes them too, as Kysely's sql`…`.execute(db, options) does.
expectType<Promise<QueryResult<{ n: number }>>>(
  readSql<{ n: number }>`select 1 as n`.execute(read, { signal, inflightQueryAbortStrategy: 'cancel query' }),
)
expectError(read.selectFrom('users').selectAll().execute({ signal, inflightQueryAbortStrategy: 'drop table' }))
expectError(readSql`select 1`.execute(read, { inflightQueryAbortStrategy: 'kill' }))

// --- streams ---------------------------------------------------------------------------------------

for await (const user of read.selectFrom('users').selectAll().stream({ chunkSize: 50, signal })) {
  expectType<Selectable<Users>>(user)
}
for await (const row of canRead.selectFrom('users').select('id').stream(10)) expectType<{ id: number }>(row)
for await (const row of write.selectFrom('users').select('id').stream()) expectType<{ id: number }>(row)

// --- introspection: a catalog read, on every handle (as on Kysely's ReadonlyKysely) -----------------

expectType<DatabaseIntrospector>(read.introspection)
expectType<DatabaseIntrospector>(write.introspection)
expectType<DatabaseIntrospector>(canRead.introspection)
expectType<Promise<TableMetadata[]>>(db.read.introspection.getTables())
await read.transaction().execute(async (tx) => tx.introspection.getSchemas())

// --- reusable helpers written for plain Kysely ---------------------------------------------------------

function isAda(eb: ExpressionBuilder<AppDB, 'users'>) {
  return eb('name', '=', 'Ada')
}
function hasPosts(): Expression<SqlBool> {
  const eb = expressionBuilder<AppDB, 'users'>()
  return eb.exists(eb.selectFrom('posts').whereRef('posts.user_id', '=', 'users.id').select('posts.id'))
}
function firstTen<O>(qb: SelectQueryBuilder<AppDB, 'users', O>) {
  return qb.orderBy('id').limit(10)
}
expectType<Selectable<Users>[]>(
  await read
    .selectFrom('users')
    .selectAll()
    .where(isAda)
    .where(hasPosts())
    .$call(firstTen)
    .$if(true, (qb) => qb.where('email', 'is not', null))
    .execute(),
)
await canRead
  .selectFrom('users')
  .select('id')
  .where((eb) => isAda(eb))
  .$call(firstTen)
  .executeTakeFirstOrThrow()
expectType<{ id: number; posts: { title: string }[] }[]>(
  await read
    .selectFrom('users')
    .select((eb) => [
      'id',
      jsonArrayFrom(eb.selectFrom('posts').select('posts.title').whereRef('posts.user_id', '=', 'users.id')).as(
        'posts',
      ),
    ])
    .execute(),
)

// --- controlled transactions: Kysely's savepoint bookkeeping ---------------------------------------------

const trx = await write.startTransaction().execute()
const sp = await trx.savepoint('a').execute()
const sp2 = await sp.savepoint('b').execute()
await sp2.rollbackToSavepoint('a').execute()
await sp2.releaseSavepoint('b').execute()
expectError(sp2.rollbackToSavepoint('c'))
expectError(trx.releaseSavepoint('a'))
await trx.commit().execute()

// --- the log option: Kysely's LogConfig, with the node in each event; tracing options --------------------------

createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', log: ['query', 'error'] })
createBackends<AppDB>({ dialect: 'mysql', primary: 'mysql://db/app', log: ['error'] })
declare const kyselyLogger: Logger
createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', log: kyselyLogger })
createBackends<AppDB>({
  dialect: 'postgres',
  primary: 'postgres://db/app',
  log: async (event) => {
    expectType<BackendLogEvent>(event)
    expectType<string>(event.node)
    expectType<'read' | 'write'>(event.role)
    expectType<number>(event.queryDurationMillis)
    if (event.level === 'error') expectType<unknown>(event.error)
  },
  tracing: { queryText: true, openTelemetry: true },
})
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', log: ['warn'] }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', log: 'query' }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', tracing: { querytext: true } }))
fromKysely(kysely, { dialect: 'postgres', log: ['query'], tracing: { openTelemetry: false } })
expectType<'kysely-rw:query'>(QUERY_CHANNEL)
declare const message: QueryContext
expectType<'read' | 'write'>(message.role)
expectType<'postgresql' | 'mysql'>(message.system)
expectType<boolean>(message.fallback)

// --- sql.raw: a raw builder like sql`…`, executable on the primary, embeddable anywhere ------------------------

await sql.raw('update users set name = name').execute(write)
expectType<{ one: number }[]>(await read.selectNoFrom(sql.raw<number>('1').as('one')).execute())
expectError(sql.raw('delete from users').execute(read))
expectError(sql.raw('select 1').execute(canRead))

// --- what does not compile -------------------------------------------------------------------------------

// Schema changes and raw executors are the primary's.
expectError(read.schema)
expectError(canRead.schema.createTable('t'))
expectError(read.executeQuery(sql`select 1`.compile(db.kysely)))
expectError(read.getExecutor())
write.schema.createTable('t').addColumn('id', 'integer').compile()
// A data-modifying CTE on a read handle is Kysely's own read-only error.
expectError(read.with('x', (qb) => qb.insertInto('users').values({ name: 'Ada' }).returning('id')))
// The handles are not plain Kysely instances, nor the other way around (docs: wrap one with fromKysely;
// hand db.kysely to code typed Kysely<DB>).
declare function legacy(db: Kysely<AppDB>): void
declare function reads(db: CanRead<AppDB>): void
declare function writes(db: WriteBackend<AppDB>): void
expectError(legacy(db.write))
expectError(reads(kysely))
expectError(writes(kysely))
await kysely.transaction().execute(async (trx: Transaction<AppDB>) => {
  expectError(reads(trx))
})
legacy(db.kysely)
// fromKysely streams with the wrapped instance's dialect: a cursor of its own is refused.
expectError(fromKysely(kysely, { dialect: 'postgres', cursor: Cursor }))

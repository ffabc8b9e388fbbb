// Attempts to write, lock or leave session state through a read handle, as a table-driven corpus, on
// real PostgreSQL and MariaDB, on every read path (a replica, no replicas, a replica that is down, a
// lagging session, a tampered token, 'transaction' mode). After each attempt the servers themselves are
// asked: rows, large objects, sequences, locks held, the pooled session's read-only flag and search_path;
// at the end of each path, that replication still runs.
import { CompiledQuery, type Kysely, sql } from 'kysely'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  type BackendsConfig,
  type CanRead,
  createBackends,
  readSql,
  WriteOnReadBackendError,
} from '../src/index.js'
import { type Family, families } from './support/databases.js'

interface DB {
  guard_t: { id: number; v: string }
  guard_side: { id: number }
}

/** What an attempt must end with. `'refused'`: a WriteOnReadBackendError raised before anything was sent. */
type Outcome = 'refused' | 'database refusal' | 'any error' | 'may succeed'

interface Attempt {
  readonly name: string
  readonly outcome: Outcome
  run(read: any, family: Family): Promise<unknown>
}

/** A CompiledQuery whose tree is an innocent SELECT and whose text is `text`. */
function selectTreeWith(read: Kysely<DB>, text: string): CompiledQuery {
  return { ...read.selectFrom('guard_t').select('id').compile(), sql: text }
}

const common: Attempt[] = [
  {
    name: 'a raw fragment adding a statement (modifyEnd)',
    outcome: 'refused',
    run: (r) => r.selectFrom('guard_t').select('id').modifyEnd(sql.raw('; delete from guard_t')).execute(),
  },
  {
    name: 'sql.join with sql.raw adding a statement',
    outcome: 'refused',
    run: (r) =>
      r
        .selectFrom('guard_t')
        .select('id')
        .where(sql.join([sql.raw('1'), sql.raw('1); delete from guard_t; select (1')]), 'in', [1])
        .execute(),
  },
  {
    name: 'a lock through a fragment, for/**/update',
    outcome: 'refused',
    run: (r) => r.selectFrom('guard_t').select('id').modifyEnd(sql.raw('for/**/update')).execute(),
  },
  {
    name: 'a SELECT tree whose text deletes',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'delete from guard_t')),
  },
  {
    name: 'a SELECT tree whose text is select; delete',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'select 1; delete from guard_t')),
  },
  {
    // What is sent is the text that was checked: the getter is read once, so the SELECT runs, nothing else.
    name: 'a sql getter that changes between check and send',
    outcome: 'may succeed',
    run: (r) => {
      const compiled = r.selectFrom('guard_t').select('id').compile()
      let reads = 0
      const shifty = {
        ...compiled,
        get sql() {
          reads++
          return reads === 1 ? 'select 1 as id' : 'delete from guard_t'
        },
      }
      return r.executeQuery(shifty)
    },
  },
  {
    name: 'the unguarded inner connection through getExecutor().provideConnection',
    outcome: 'any error',
    run: (r) =>
      r
        .getExecutor()
        .provideConnection((c: any) => (c.inner ?? c.unguarded).executeQuery(CompiledQuery.raw('delete from guard_t'))),
  },
  {
    name: 'CompiledQuery.raw with two statements',
    outcome: 'refused',
    run: (r) => r.executeQuery(CompiledQuery.raw('select 1; delete from guard_t')),
  },
  {
    name: 'a data-modifying CTE smuggled through a fragment',
    outcome: 'refused',
    run: (r) =>
      r
        .selectFrom(sql.raw('(with d as (delete from guard_t returning *) select * from d)').as('x'))
        .selectAll()
        .execute(),
  },
  {
    name: 'a readSql SELECT … INTO',
    outcome: 'refused',
    run: (r) => readSql`select id into guard_copy from guard_t`.execute(r),
  },
]

const postgres: Attempt[] = [
  {
    name: 'set_config(default_transaction_read_only, off, false) from the typed builder',
    outcome: 'refused',
    run: (r) =>
      r
        .selectNoFrom((eb: any) =>
          eb.fn('set_config', [eb.val('default_transaction_read_only'), eb.val('off'), eb.val(false)]).as('x'),
        )
        .execute(),
  },
  {
    name: 'set_config(search_path) in readSql',
    outcome: 'refused',
    run: (r) => readSql`select set_config('search_path', 'evil', false)`.execute(r),
  },
  {
    name: 'pg_catalog.set_config, qualified',
    outcome: 'refused',
    run: (r) => readSql`select pg_catalog.set_config('default_transaction_read_only', 'off', false)`.execute(r),
  },
  {
    name: '"set_config", quoted, with a comment before its parenthesis',
    outcome: 'refused',
    run: (r) => readSql`select "set_config"/**/('default_transaction_read_only', 'off', false)`.execute(r),
  },
  {
    name: 'set_config with is_local from a parameter that is false',
    outcome: 'refused',
    run: (r) => readSql`select set_config('search_path', 'evil', ${false})`.execute(r),
  },
  {
    name: 'a -- comment ended by \\r, then a second statement',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw('select 1 --\r; insert into guard_t values (9, $$x$$)')}`.execute(r),
  },
  {
    name: 'a non-ASCII identifier before $a$',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw('select 1 as é$a$; insert into guard_t values (9, $$x$$); select $a$')}`.execute(r),
  },
  {
    name: 'a backslash that ends a literal only with standard_conforming_strings off',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select 'a\\'; insert into guard_t values (9, 'x'); -- '")}`.execute(r),
  },
  {
    name: "E'' literal hiding a statement",
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select E'\\''; delete from guard_t; -- '")}`.execute(r),
  },
  {
    name: 'SET SESSION CHARACTERISTICS in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'set session characteristics as transaction read write')),
  },
  { name: 'lo_from_bytea', outcome: 'refused', run: (r) => readSql`select lo_from_bytea(0, 'x')`.execute(r) },
  {
    name: 'lo_create from the typed builder',
    outcome: 'refused',
    run: (r) => r.selectNoFrom((eb: any) => eb.fn('lo_create', [sql.lit(0)]).as('o')).execute(),
  },
  {
    name: 'lo_unlink of an existing large object, from the typed builder',
    outcome: 'refused',
    run: (r) =>
      r
        .selectFrom(sql.raw('pg_largeobject_metadata').as('m'))
        .select((eb: any) => eb.fn('lo_unlink', [eb.ref('m.oid')]).as('x'))
        .execute(),
  },
  { name: 'pg_notify', outcome: 'refused', run: (r) => readSql`select pg_notify('c', 'x')`.execute(r) },
  {
    name: 'pg_terminate_backend',
    outcome: 'refused',
    run: (r) => readSql`select pg_terminate_backend(pg_backend_pid())`.execute(r),
  },
  { name: 'txid_current', outcome: 'refused', run: (r) => readSql`select txid_current()`.execute(r) },
  {
    name: 'a session advisory lock',
    outcome: 'refused',
    run: (r) => r.selectNoFrom((eb: any) => eb.fn('pg_advisory_lock', [sql.lit(4242)]).as('l')).execute(),
  },
  {
    name: 'nextval in a raw selection',
    outcome: 'refused',
    run: (r) => r.selectNoFrom(sql<number>`nextval('kysely_rw_test_seq')`.as('n')).execute(),
  },
  {
    name: 'dblink_exec',
    outcome: 'refused',
    run: (r) => readSql`select dblink_exec('delete from guard_t')`.execute(r),
  },
  {
    name: 'query_to_xml running SQL from a string',
    outcome: 'refused',
    run: (r) =>
      readSql`select query_to_xml('select set_config(''search_path'', ''evil'', false)', true, true, '')`.execute(r),
  },
  // What the servers split otherwise than a lexer blind to one of their rules (adversarial review).
  {
    // E'x'\n'\'' is one escaped literal (a continuation): the plain '\' after it ends at its second quote.
    name: "an E'' literal continued on the next line, hiding set_config",
    outcome: 'refused',
    run: (r) =>
      readSql`${sql.raw("select E'x'\n'\\'' , '\\' , set_config($$search_path$$, $$evil$$, false) -- '")}`.execute(r),
  },
  {
    name: "an E'' literal continued on the next line, hiding set_config, in a raw selection",
    outcome: 'refused',
    run: (r) =>
      r
        .selectNoFrom(
          sql.raw("E'x'\n'\\'' , '\\' , set_config($$default_transaction_read_only$$, $$off$$, false) -- '").as('x'),
        )
        .execute(),
  },
  {
    name: 'ts_stat running a query given as a string (a session advisory lock)',
    outcome: 'refused',
    run: (r) => readSql`select * from ts_stat('select to_tsvector(pg_advisory_lock(4242)::text)')`.execute(r),
  },
  {
    name: 'ts_rewrite running a query given as a string',
    outcome: 'refused',
    run: (r) =>
      readSql`select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, pg_advisory_lock(4242)::text::tsquery')`.execute(
        r,
      ),
  },
  {
    name: 'gin_clean_pending_list, which writes an index in a read-only transaction',
    outcome: 'refused',
    run: (r) =>
      r.selectNoFrom((eb: any) => eb.fn('gin_clean_pending_list', [sql.lit('guard_t_pkey')]).as('n')).execute(),
  },
  {
    // PostgreSQL 15 creates the table of EXPLAIN ANALYZE CREATE TABLE AS even in a read-only transaction.
    name: 'EXPLAIN with a quoted "analyze" option, of CREATE TABLE AS',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw('explain ("analyze") create table guard_ctas as select 1 as x')}`.execute(r),
  },
  {
    name: 'setseed, which ROLLBACK does not undo',
    outcome: 'refused',
    run: (r) => readSql`select setseed(0.5)`.execute(r),
  },
  {
    // A typed select of a view: nothing in the query says a function runs. PostgreSQL reports the change
    // of default_transaction_read_only, and the pooled session is made read-only again before its next read.
    name: 'a view whose column turns the session read-write',
    outcome: 'may succeed',
    run: (r) => r.selectFrom('guard_rw_view').selectAll().execute(),
  },
  {
    name: 'a function of the app that sets search_path for the session',
    outcome: 'may succeed',
    run: (r) => r.selectNoFrom(sql<string>`guard_set_path()`.as('p')).execute(),
  },
  // Keywords right after a number, calls the lexer did not record, SQL run from a string (adversarial review).
  {
    // PostgreSQL 15 refuses `1.0for` itself; earlier versions lock the row.
    name: 'FOR UPDATE right after a number, through a fragment',
    outcome: 'refused',
    run: (r) =>
      r.selectFrom('guard_t').select('id').where('id', '=', 1).modifyEnd(sql.raw('and 1 = 1.0for update')).execute(),
  },
  {
    name: 'crosstab running a query given as a string (a session advisory lock)',
    outcome: 'refused',
    run: (r) =>
      readSql`select * from crosstab('select 1::text, 1::text, pg_advisory_lock(4243)::text') as t(a text, b text)`.execute(
        r,
      ),
  },
  {
    name: 'crosstab with categories, both queries given as strings',
    outcome: 'refused',
    run: (r) =>
      readSql`select * from crosstab('select 1::text, 1::text, 1::text', 'select pg_advisory_lock(4243)::text') as t(a text, b text)`.execute(
        r,
      ),
  },
  {
    name: 'connectby with a relation name that carries a query',
    outcome: 'refused',
    run: (r) =>
      readSql`select * from connectby('guard_t, lateral (select pg_advisory_lock(4244)) x', 'id', 'id', '1', 0) as t(k int, p int, l int)`.execute(
        r,
      ),
  },
  {
    // public.md5 is the app's, named like a built-in: its read ends with ROLLBACK, which reverts search_path.
    name: 'a function of the app named like a pure built-in, qualified, from the typed builder',
    outcome: 'may succeed',
    run: (r) => r.selectNoFrom(sql<string>`public.md5(${'x'})`.as('h')).execute(),
  },
  {
    name: 'a function of the app named like a pure built-in, qualified, in readSql',
    outcome: 'may succeed',
    run: (r) => readSql`select public.md5('x') as h`.execute(r),
  },
]

const mariadb: Attempt[] = [
  // PostgreSQL streams need pg-cursor in the dialect, which pools kysely-rw creates do not have yet.
  {
    name: 'a typed stream calling a function that writes',
    outcome: 'database refusal',
    run: async (r, family) => {
      for await (const _ of r.selectNoFrom(sql.raw(family.writingSelect).as('n')).stream()) {
      }
    },
  },
  {
    name: 'GET_LOCK from the typed builder',
    outcome: 'refused',
    run: (r) => r.selectNoFrom((eb: any) => eb.fn('get_lock', [sql.lit('guard_k'), sql.lit(0)]).as('l')).execute(),
  },
  {
    // mysql2 formats values into the text, and inserts one with toSqlString() as raw SQL (sqlstring's raw()).
    name: 'GET_LOCK in a parameter value that mysql2 inserts as raw SQL',
    outcome: 'refused',
    run: (r) =>
      r
        .selectFrom('guard_t')
        .select('id')
        .where('id', '=', { toSqlString: () => "1 and get_lock('guard_k', 0) = 1" } as any)
        .execute(),
  },
  {
    name: 'GET_LOCK inside an executable comment',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select 1 /*! , get_lock('guard_k', 0) */")}`.execute(r),
  },
  {
    name: 'lock/**/in share mode through a fragment',
    outcome: 'refused',
    run: (r) => r.selectFrom('guard_t').select('id').modifyEnd(sql.raw('lock/**/in share mode')).execute(),
  },
  {
    name: '/*! lock in share mode */ through a fragment',
    outcome: 'refused',
    run: (r) => r.selectFrom('guard_t').select('id').modifyEnd(sql.raw('/*! lock in share mode */')).execute(),
  },
  {
    name: 'LOCK TABLES in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'lock tables guard_t read')),
  },
  {
    name: 'HANDLER in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'handler guard_t open')),
  },
  {
    name: 'CREATE TEMPORARY TABLE shadowing a table, in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'create temporary table guard_t (id int, v text)')),
  },
  {
    name: 'SET SESSION TRANSACTION READ WRITE in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'set session transaction read write')),
  },
  {
    name: 'SET @@session.tx_read_only = 0 in a SELECT tree',
    outcome: 'refused',
    run: (r) => r.executeQuery(selectTreeWith(r, 'set @@session.tx_read_only = 0')),
  },
  {
    name: 'a # comment ended by a newline, then a second statement',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw('select 1 # x\n; delete from guard_t')}`.execute(r),
  },
  {
    name: 'a backslash that ends a literal only under NO_BACKSLASH_ESCAPES',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select 'a\\'; delete from guard_t; -- '")}`.execute(r),
  },
  {
    name: 'NEXT VALUE FOR a sequence',
    outcome: 'refused',
    run: (r) => r.selectNoFrom(sql<number>`next value for kysely_rw_test_seq`.as('n')).execute(),
  },
  {
    name: 'nextval from the typed builder',
    outcome: 'refused',
    run: (r) => r.selectNoFrom((eb: any) => eb.fn('nextval', [sql.raw('kysely_rw_test_seq')]).as('n')).execute(),
  },
  { name: 'a user variable, @v := 1', outcome: 'refused', run: (r) => readSql`select @v := 1`.execute(r) },
  // Executable comments whose end depends on the server's version (adversarial review).
  {
    // MariaDB skips a comment for a later version (and MySQL 5.7's versions): it ends at its first */.
    name: 'GET_LOCK after a quote in a versioned comment the server skips',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select 1 /*!999999 '*/ , get_lock('guard_k', 0) -- ' */")}`.execute(r),
  },
  {
    name: 'GET_LOCK after a quote in a /*M! comment',
    outcome: 'refused',
    run: (r) => r.selectNoFrom(sql.raw("1 /*M!999999 '*/ , get_lock('guard_k', 0) -- ' */").as('x')).execute(),
  },
  {
    name: 'GET_LOCK after an executable comment nested in another',
    outcome: 'refused',
    run: (r) =>
      readSql`${sql.raw("select 2 /*!50000 /*!50000 */ */* ' */ 3 , get_lock('guard_k', 0) -- ' */")}`.execute(r),
  },
  {
    name: 'GET_LOCK after -- and DEL, a comment to the server',
    outcome: 'refused',
    run: (r) => readSql`${sql.raw("select 1 --\x7f '\n, get_lock('guard_k', 0) -- '")}`.execute(r),
  },
  // Values mysql2 formats into the text.
  {
    // mysql2's own lexer reads a literal inside /*+ … */ and puts the value where the server reads '?'.
    name: 'an untrusted string value put inside a literal by mysql2',
    outcome: 'refused',
    run: (r) =>
      readSql`select 1 ${sql.raw("/*+ ' */ , '?")}' as a, ${', get_lock(0x67756172645f6b, 0) #'} as b`.execute(r),
  },
  {
    name: 'a toSqlString value inside a Set',
    outcome: 'refused',
    run: (r) => readSql`select ${new Set([{ toSqlString: () => "get_lock('guard_k', 0)" }])} as x`.execute(r),
  },
  {
    name: 'a toSqlString value nested ten arrays deep',
    outcome: 'refused',
    run: (r) => {
      let value: unknown = { toSqlString: () => "get_lock('guard_k', 0)" }
      for (let i = 0; i < 10; i++) value = [value]
      return readSql`select ${value} as x`.execute(r)
    },
  },
  {
    name: 'a toSqlString value behind an array getter that answers the guard otherwise',
    outcome: 'refused',
    run: (r) => {
      let reads = 0
      const raw = { toSqlString: () => "get_lock('guard_k', 0)" }
      const value = Object.defineProperty([0], 0, { get: () => (reads++ === 0 ? 1 : raw), enumerable: true })
      return readSql`select ${value} as x`.execute(r)
    },
  },
  { name: 'last_insert_id(expr)', outcome: 'refused', run: (r) => readSql`select last_insert_id(5)`.execute(r) },
  // Keywords right after a number, calls the lexer did not record (adversarial review).
  {
    name: 'INTO a user variable right after a number',
    outcome: 'refused',
    run: (r) => readSql`select 41.0into @guard_v`.execute(r),
  },
  {
    name: 'INTO a user variable right after a number in exponent form',
    outcome: 'refused',
    run: (r) => readSql`select 1e0into @guard_v`.execute(r),
  },
  {
    name: 'INTO a user variable right after a number, through a fragment',
    outcome: 'refused',
    run: (r) =>
      r.selectFrom('guard_t').select('v').where('id', '=', 2).modifyEnd(sql.raw('order by 1.0into @guard_v')).execute(),
  },
  {
    name: 'LOCK IN SHARE MODE right after a number',
    outcome: 'refused',
    run: (r) => readSql`select v from guard_t where id = 1.0lock in share mode`.execute(r),
  },
  {
    name: 'LOCK IN SHARE MODE right after a number in a read transaction',
    outcome: 'refused',
    run: (r) =>
      r.transaction().execute((tx: any) => readSql`select v from guard_t where id = 1e0lock in share mode`.execute(tx)),
  },
  {
    name: 'GET_LOCK behind an empty executable comment',
    outcome: 'refused',
    run: (r) => readSql`select get_lock/*!*/('guard_k', 0) as l`.execute(r),
  },
  {
    name: 'GET_LOCK behind an empty executable comment, from the typed builder',
    outcome: 'refused',
    run: (r) => r.selectNoFrom(sql<number>`get_lock/*!*/('guard_k', 0)`.as('l')).execute(),
  },
  {
    name: 'GET_LOCK behind versioned executable comments',
    outcome: 'refused',
    run: (r) => readSql`select get_lock/*!50000 */('guard_k', 0), get_lock/*M!100000 */('guard_k', 0)`.execute(r),
  },
  {
    // MariaDB skips a comment for a later version: the name before it is called.
    name: 'GET_LOCK behind a versioned comment the server skips, a name inside',
    outcome: 'refused',
    run: (r) => readSql`select get_lock/*!999999 x*/('guard_k', 0) as l`.execute(r),
  },
  {
    name: 'last_insert_id(expr) behind an empty executable comment',
    outcome: 'refused',
    run: (r) => readSql`select last_insert_id/*!*/(4242) as x`.execute(r),
  },
  {
    name: 'a stored function that runs SET SESSION TRANSACTION READ WRITE behind an executable comment',
    outcome: 'may succeed',
    run: (r) => readSql`select guard_read_write/*!*/() as x`.execute(r),
  },
  {
    name: 'GET_LOCK quoted in upper case',
    outcome: 'refused',
    run: (r) => readSql`select \`GET_LOCK\`('guard_k', 0) as l`.execute(r),
  },
  {
    name: 'GET_LOCK quoted in upper case, qualified',
    outcome: 'refused',
    run: (r) => r.selectNoFrom(sql<number>`app.\`Get_Lock\`('guard_k', 0)`.as('l')).execute(),
  },
  {
    // app.md5 is the app's, named like a built-in: the connection is reset after the read.
    name: 'a stored function named like a pure built-in, qualified, that runs SET SESSION TRANSACTION READ WRITE',
    outcome: 'may succeed',
    run: (r) => r.selectNoFrom(sql<number>`app.md5(${1})`.as('x')).execute(),
  },
  {
    name: 'a stored function that runs SET SESSION TRANSACTION READ WRITE',
    outcome: 'may succeed',
    run: (r) => r.selectNoFrom(sql<number>`guard_read_write()`.as('x')).execute(),
  },
  {
    // A stream takes the same path as a query: the connection is reset after a read that may change it.
    name: 'a stream of a stored function that runs SET SESSION TRANSACTION READ WRITE',
    outcome: 'may succeed',
    run: async (r) => {
      for await (const _ of r.selectNoFrom(sql<number>`guard_read_write()`.as('x')).stream()) {
      }
    },
  },
  {
    // What is sent is the values as checked: a nested value changed after the check (while the read waits
    // for a connection, a read-only transaction or a reset) is not what mysql2 formats.
    name: 'a nested parameter changed into a raw value after the check',
    outcome: 'may succeed',
    run: async (r) => {
      const inner: unknown[] = [1]
      const running = readSql`select ${[inner]} as x`.execute(r)
      // Refused or run, the outcome is judged below; meanwhile it must not count as unhandled.
      running.catch(() => {})
      inner[0] = { toSqlString: () => "get_lock('guard_k', 0)" }
      await new Promise((resolve) => setImmediate(resolve))
      inner[0] = { toSqlString: () => "get_lock('guard_k', 0)" }
      return running
    },
  },
]

const PATHS = [
  'replica',
  'no replicas',
  'replica down',
  'lagging session',
  'tampered token',
  'transaction mode',
] as const
type Path = (typeof PATHS)[number]

describe.each(families)('%s', (name, familyOf) => {
  let family: Family
  let admin: ServerProbe
  let adminReplica: ServerProbe
  let setUp: Backends<DB>

  beforeAll(async () => {
    family = familyOf()
    admin = await probe(family, 'primary')
    adminReplica = await probe(family, 'replica')
    setUp = createBackends<DB>({ dialect: family.dialect, primary: family.primaryUrl })
    await family.createItems(setUp.write as any, 'guard_items')
    await sql`drop table if exists guard_t`.execute(setUp.write)
    await sql`drop table if exists guard_side`.execute(setUp.write)
    await sql`create table guard_t (id int primary key, v varchar(20))`.execute(setUp.write)
    await sql`create table guard_side (id int)`.execute(setUp.write)
    await sql`insert into guard_t values (1, 'one'), (2, 'two')`.execute(setUp.write)
    if (family.dialect === 'postgres') {
      await sql`select lo_from_bytea(0, 'kept')`.execute(setUp.write)
      await sql`create or replace function guard_set_path() returns text language sql as $$ select set_config('search_path', 'pg_catalog', false) $$`.execute(
        setUp.write,
      )
      await sql`create or replace view guard_rw_view as select set_config('default_transaction_read_only', 'off', false) as x`.execute(
        setUp.write,
      )
      // A trusted extension: the database's owner installs it.
      await sql`create extension if not exists tablefunc`.execute(setUp.write)
      await sql`create or replace function public.md5(x text) returns text language sql as $$ select set_config('search_path', 'pg_catalog', false) $$`.execute(
        setUp.write,
      )
    } else {
      for (const signature of ['guard_read_write()', 'app.md5(x int)']) {
        await admin.exec(
          `create or replace function ${signature} returns int deterministic no sql sql security invoker ` +
            'begin set session transaction read write; return 1; end',
        )
      }
    }
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await admin?.exec(
      family.dialect === 'postgres' ? 'drop function if exists public.md5(text)' : 'drop function if exists app.md5',
    )
    await setUp?.destroy()
    await admin?.end()
    await adminReplica?.end()
  })

  const attempts = () => [...common, ...(family.dialect === 'postgres' ? postgres : mariadb)]

  describe.each(PATHS)('on the path: %s', (path) => {
    let db: Backends<DB>
    let read: CanRead<DB>
    let before: ServerState

    beforeAll(async () => {
      ;({ db, read } = await openPath(family, path))
      before = await admin.state()
    })

    afterAll(async () => {
      if (path === 'lagging session') await family.control.resumeReplay()
      await db?.destroy()
      // Replication still runs: a write on the primary reaches the replica.
      await setUp.write.insertInto('guard_side').values({ id: 1 }).execute()
      await family.control.waitForReplicaCatchUp()
    })

    it('refuses every attempt (or lets it change nothing) and leaves the servers as they were', async () => {
      const failures: string[] = []
      for (const attempt of attempts()) {
        const error = await Promise.resolve()
          .then(() => attempt.run(read, family))
          .then(
            () => undefined,
            (e: unknown) => e,
          )
        const verdict = judge(attempt.outcome, error)
        if (verdict) failures.push(`${attempt.name}: ${verdict}`)
        const after = await admin.state()
        if (JSON.stringify(after) !== JSON.stringify(before)) {
          failures.push(`${attempt.name}: the primary changed ${JSON.stringify(before)} -> ${JSON.stringify(after)}`)
        }
        const replicaAfter = await adminReplica.state()
        if (replicaAfter.locks !== 0) failures.push(`${attempt.name}: the replica holds ${replicaAfter.locks} locks`)
        const session = await sessionOf(read, family)
        // In 'transaction' mode a MariaDB session is not read-only by design: each read runs in a
        // read-only transaction; the flag PostgreSQL reports there is the transaction's.
        const flagged = !(family.dialect === 'mysql' && path === 'transaction mode')
        if (flagged && !session.readOnly) failures.push(`${attempt.name}: the pooled session is no longer read-only`)
        if (session.rows !== 2) failures.push(`${attempt.name}: the next read saw ${session.rows} rows of guard_t`)
        if (session.path !== undefined && !/public/.test(session.path)) {
          failures.push(`${attempt.name}: the pooled session's search_path is now ${session.path}`)
        }
        if (session.variables !== undefined && session.variables !== 'null,0') {
          failures.push(`${attempt.name}: the pooled session kept @guard_v, @@last_insert_id = ${session.variables}`)
        }
      }
      expect(failures).toEqual([])
    })
  })

  // PostgreSQL: pg sends values as parameters, apart from the text, whatever the servers' string settings.
  const stringSettings = {
    PostgreSQL: 'standard_conforming_strings off in the servers: an untrusted value stays a value',
    MariaDB: "NO_BACKSLASH_ESCAPES in the servers' sql_mode: no read runs, with an untrusted value or without",
  }
  const pgStrings = async () => {
    const servers = [admin, adminReplica]
    for (const server of servers) {
      await server.exec('alter system set standard_conforming_strings = off')
      await server.exec('select pg_reload_conf()')
    }
    try {
      for (const path of ['replica', 'no replicas', 'replica down', 'transaction mode'] as const) {
        const { db, read } = await openPath(family, path)
        try {
          const untrusted = "x\\' or pg_advisory_lock(4321) is null -- "
          const rows = await read.selectFrom('guard_t').select('id').where('v', '=', untrusted).execute()
          expect(rows, path).toEqual([])
          expect((await admin.state()).locks, path).toBe(0)
          expect((await adminReplica.state()).locks, path).toBe(0)
        } finally {
          await db.destroy()
        }
      }
    } finally {
      for (const server of servers) {
        await server.exec('alter system reset standard_conforming_strings')
        await server.exec('select pg_reload_conf()')
      }
    }
  }

  // mysql2 escapes a quote in a value as \', which NO_BACKSLASH_ESCAPES reads as a backslash and the end of
  // the literal: the rest of an untrusted value would run as code, in the typed builder's reads too.
  const mariadbStrings = async () => {
    const servers = [admin, adminReplica]
    for (const server of servers) {
      await server.exec('set @guard_mode = @@global.sql_mode')
      await server.exec("set global sql_mode = concat(@@global.sql_mode, ',NO_BACKSLASH_ESCAPES')")
    }
    try {
      for (const path of ['replica', 'no replicas', 'replica down', 'transaction mode'] as const) {
        const { db, read } = await openPath(family, path)
        try {
          const untrusted = "x' or get_lock(0x67756172645f6b, 0) -- "
          for (const attempt of [
            () => read.selectFrom('guard_t').select('id').where('v', '=', untrusted).execute(),
            () => read.selectFrom('guard_t').select('id').execute(),
          ]) {
            const error = await attempt().then(
              () => undefined,
              (e: unknown) => e,
            )
            expect(messages(error), path).toMatch(/NO_BACKSLASH_ESCAPES.*remove NO_BACKSLASH_ESCAPES from sql_mode/is)
          }
          expect((await admin.state()).locks, path).toBe(0)
          expect((await adminReplica.state()).locks, path).toBe(0)
        } finally {
          await db.destroy()
        }
      }
    } finally {
      for (const server of servers) await server.exec('set global sql_mode = @guard_mode')
    }
  }
  it(stringSettings[name as keyof typeof stringSettings], () =>
    family.dialect === 'postgres' ? pgStrings() : mariadbStrings(),
  )
})

function messages(error: unknown): string {
  let text = ''
  for (let e = error; e instanceof Error; e = e.cause) text += `${e.message}\n`
  return text
}

function judge(outcome: Outcome, error: unknown): string | undefined {
  if (outcome === 'may succeed') return undefined
  if (error === undefined) return 'ran without an error'
  if (outcome === 'any error') return undefined
  if (!(error instanceof WriteOnReadBackendError)) return `threw ${String(error)}, not WriteOnReadBackendError`
  if (outcome === 'refused' && error.kind === 'database refusal') return `reached the database (${error.message})`
  if (outcome === 'database refusal' && error.kind !== 'database refusal') return `was refused as ${error.kind}`
  return undefined
}

async function openPath(family: Family, path: Path): Promise<{ db: Backends<DB>; read: CanRead<DB> }> {
  // One connection per pool: the next read runs on the very session the attempt used.
  const node = (url: string) =>
    family.dialect === 'postgres' ? { connectionString: url, max: 1 } : { uri: url, connectionLimit: 1 }
  const base: BackendsConfig = { dialect: family.dialect, primary: node(family.primaryUrl), migrationTable: false }
  const open = (config: Partial<BackendsConfig>) => createBackends<DB>({ ...base, ...config })
  switch (path) {
    case 'replica': {
      const db = open({ replicas: [node(family.replicaUrl)] })
      return { db, read: db.read }
    }
    case 'no replicas': {
      const db = open({})
      return { db, read: db.read }
    }
    case 'replica down': {
      // Nothing listens on port 1: every read falls back to the primary's read view.
      const dead = new URL(family.replicaUrl)
      dead.port = '1'
      const db = open({ replicas: [node(dead.toString())] })
      return { db, read: db.read }
    }
    case 'lagging session': {
      const db = open({ replicas: [node(family.replicaUrl)], readYourWrites: { maxWaitMs: 100 } })
      await family.control.pauseReplay()
      const session = db.session()
      await session.write.insertInto('guard_side').values({ id: 2 }).execute()
      return { db, read: session.read }
    }
    case 'tampered token': {
      const db = open({ replicas: [node(family.replicaUrl)] })
      // A client's edit of its cookie: another cluster, a position far ahead. Its reads go to the primary.
      const position = family.dialect === 'postgres' ? 'FF/FFFFFFFF' : '0-1-99999999'
      const token = `rw1.${Buffer.from(JSON.stringify({ c: 'forged', p: position })).toString('base64url')}`
      return { db, read: db.session(token).read }
    }
    case 'transaction mode': {
      const db = open({ replicas: [node(family.replicaUrl)], readOnlySessions: 'transaction' })
      return { db, read: db.read }
    }
  }
}

/** The pooled session as the next read sees it. */
async function sessionOf(
  read: CanRead<DB>,
  family: Family,
): Promise<{ readOnly: boolean; path?: string; rows: number; variables?: string }> {
  const { rows } = await readSql<{ ro: unknown }>`${sql.raw(family.readOnlySql)}`.execute(read)
  const ro = rows[0]?.ro
  // A temporary table named like a real one would shadow it: the real rows must show.
  const count = await readSql<{ n: unknown }>`select count(*) as n from guard_t`.execute(read)
  const path =
    family.dialect === 'postgres'
      ? (await readSql<{ p: string }>`select current_setting('search_path') as p`.execute(read)).rows[0]?.p
      : undefined
  // What SELECT … INTO and last_insert_id(expr) leave on a MariaDB session.
  const variables =
    family.dialect === 'mysql'
      ? await readSql<{ v: unknown; id: unknown }>`select @guard_v as v, @@last_insert_id as id`
          .execute(read)
          .then(({ rows }) => `${rows[0]?.v ?? null},${rows[0]?.id}`)
      : undefined
  return { readOnly: ro === true || Number(ro) === 1, path, rows: Number(count.rows[0]?.n), variables }
}

interface ServerState {
  readonly rows: number
  readonly largeObjects: number
  readonly sequence: string
  readonly locks: number
}

interface ServerProbe {
  state(): Promise<ServerState>
  exec(text: string): Promise<void>
  end(): Promise<void>
}

/** An admin connection to one server, to ask it what the attempts left behind. */
async function probe(family: Family, server: 'primary' | 'replica'): Promise<ServerProbe> {
  const { replication } = await import('./harness/control.js')
  const env = replication()
  if (family.dialect === 'postgres') {
    const url = server === 'primary' ? env.postgres.adminPrimaryUrl : env.postgres.adminReplicaUrl
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const one = async (text: string) => String(Object.values((await client.query(text)).rows[0] ?? {})[0])
    return {
      async state() {
        const exists = await one("select to_regclass('guard_t') is not null")
        return {
          rows: exists === 'true' ? Number(await one('select count(*) from guard_t')) : -1,
          largeObjects: Number(await one('select count(*) from pg_largeobject_metadata')),
          sequence: await one('select last_value::text from kysely_rw_test_seq'),
          locks: Number(await one("select count(*) from pg_locks where locktype = 'advisory'")),
        }
      },
      exec: async (text) => void (await client.query(text)),
      end: () => client.end(),
    }
  }
  const url = server === 'primary' ? env.mariadb.adminPrimaryUrl : env.mariadb.adminReplicaUrl
  const connection = await mysql.createConnection({ uri: url })
  const one = async (text: string) => {
    const [rows] = await connection.query(text)
    return String(Object.values((rows as Record<string, unknown>[])[0] ?? {})[0])
  }
  return {
    async state() {
      return {
        rows: Number(await one('select count(*) from app.guard_t')),
        largeObjects: 0,
        sequence: await one('select next_not_cached_value from app.kysely_rw_test_seq'),
        locks: (await one("select is_used_lock('guard_k')")) === 'null' ? 0 : 1,
      }
    },
    exec: async (text) => void (await connection.query(text)),
    end: () => connection.end(),
  }
}

// What the read guard sees in a text, where the servers see more than a plain lexer does: a keyword right
// after a number, a call with a comment before its parenthesis, a quoted or qualified function name; the
// side-effect and pure lists; and the session a read may run on. Each case here ran on a real server before
// the guard saw it (guard-corpus.integration.test.ts shows the effects).
import type { CompiledQuery } from 'kysely'
import { describe, expect, it } from 'vitest'
import { ConfigurationError } from '../src/errors.js'
import type { Lexing } from '../src/guard/lexer.js'
import { isQuiet } from '../src/guard/quiet-text.js'
import { inspectReadText, isReadStatement } from '../src/guard/read-text.js'
import { verifySession } from '../src/guard/session-rules.js'

const effects = (text: string, lexing: Lexing) => inspectReadText(text, [], lexing)

describe('a keyword right after a number is a keyword', () => {
  // Both servers end a number where its digits end: `41.0into` is `41.0 into`.
  it.each<[Lexing, string]>([
    ['mysql', 'select 41.0into @v'],
    ['mysql', 'select 1e0into @v'],
    ['mysql', 'select 1e+1into @v'],
    ['mysql', 'select 1.0e1into @v'],
    ['mysql', 'select .5into @v'],
    ['mysql', 'select 1.into @v'],
    ['mysql', 'select v from t where id = 1.0lock in share mode'],
    ['mysql', 'select v from t where id = 1e0for update'],
    ['mysql', 'select v from t order by 1.0into @w'],
    ['mysql', 'select 1.0into outfile "/tmp/x"'],
    ['postgres', 'select 1.0into x'],
    ['postgres', 'select v from t where id = 1.0for update'],
    ['postgres', 'select v from t where id = 1.0for no key update'],
    ['postgres', 'select v from t where id = 1e0for share'],
    ['postgres', 'select v from t where id = .5for key share'],
    ['postgres', 'select v from t where id = $1for update'],
  ])('%s: %j is refused', (lexing, text) => {
    expect(isReadStatement(text, lexing)).toBe(false)
    expect(isQuiet(text, lexing)).toBe(false)
  })

  it('a builder read with such a fragment is not taken for a plain one', () => {
    expect(isQuiet('select `v` from `t` where `id` = ? order by 1.0into @w', 'mysql')).toBe(false)
    expect(isQuiet('select "v" from "t" where "id" = $1 order by 1.0for update', 'postgres')).toBe(false)
  })

  it('PostgreSQL: a parameter keeps its meaning, set_config(…, $3::boolean) with true is local', () => {
    const text = 'select set_config($1, $2, $3::boolean)'
    expect(inspectReadText(text, ['search_path', 'x', true], 'postgres').sideEffect).toBeUndefined()
    expect(inspectReadText(text, ['search_path', 'x', false], 'postgres').sideEffect).toBe('set_config(…, false)')
  })

  it.each<[Lexing, string]>([
    // MySQL reads digits followed by letters as a name (`1into`, `0x41into`), and a name after `name.`.
    ['mysql', 'select 1into from t'],
    ['mysql', 'select 0x41into from t'],
    ['mysql', 'select t.5into from t'],
    ['mysql', 'select c1into, x2for, y3lock from t'],
    ['mysql', 'select 1 as x1into'],
    ['postgres', 'select c1into, x2for from t'],
    ['postgres', 'select 1.5 as into_x, 2e3 as for_y'],
  ])('%s: names that hold such a word stay accepted, %j', (lexing, text) => {
    expect(isReadStatement(text, lexing)).toBe(true)
  })
})

describe('a comment between a name and its parenthesis hides no call', () => {
  it.each([
    "select get_lock/*!*/('k', 0)",
    "select get_lock/*!50000 */('k', 0)",
    "select get_lock/*M!100000 */('k', 0)",
    // MariaDB 10.11 skips a comment for a later version: get_lock is called.
    "select get_lock/*!999999 x*/('k', 0)",
    "select get_lock/**/('k', 0)",
    "select get_lock -- why\n('k', 0)",
    "select get_lock # why\n('k', 0)",
    "select get_lock /* a */ /*! */ ('k', 0)",
  ])('MySQL: %j', (text) => {
    expect(effects(text, 'mysql').sideEffect).toBe('GET_LOCK')
  })

  it('MySQL: last_insert_id(expr) and functions of the app behind an executable comment', () => {
    expect(effects('select last_insert_id/*!*/(4242)', 'mysql').sideEffect).toBe('LAST_INSERT_ID')
    expect(effects('select f/*!*/()', 'mysql')).toEqual({ sideEffect: undefined, leavesState: true })
    expect(effects('select f/*!50000 */()', 'mysql').leavesState).toBe(true)
  })

  it('PostgreSQL: comments, nested ones too', () => {
    expect(effects("select set_config/**/('search_path', 'x', false)", 'postgres').sideEffect).toBe(
      'set_config(…, false)',
    )
    expect(effects('select pg_advisory_lock/* a /* nested */ */(1)', 'postgres').sideEffect).toBe('pg_advisory_lock')
    expect(effects('select f/**/()', 'postgres').leavesState).toBe(true)
  })
})

describe('function names as each server matches them', () => {
  it('MySQL: a quoted name is case-insensitive', () => {
    expect(effects("select `GET_LOCK`('k', 0)", 'mysql').sideEffect).toBe('GET_LOCK')
    expect(effects("select `Release_Lock`('k')", 'mysql').sideEffect).toBe('RELEASE_LOCK')
    expect(effects("select `MD5`('x')", 'mysql').leavesState).toBe(false)
  })

  it('PostgreSQL: a quoted name keeps its case', () => {
    expect(effects('select "pg_advisory_lock"(1)', 'postgres').sideEffect).toBe('pg_advisory_lock')
    // "MD5" is no built-in: a function of the app, whatever it does, is followed by ROLLBACK.
    expect(effects(`select "MD5"('x')`, 'postgres').leavesState).toBe(true)
    expect(effects(`select "md5"('x')`, 'postgres').leavesState).toBe(false)
  })

  it.each<[Lexing, string]>([
    ['mysql', 'select mydb.md5(v) from t'],
    ['mysql', 'select `mydb`.`md5`(v) from t'],
    ['mysql', 'select mydb . md5 (v) from t'],
    ['postgres', "select public.md5('x')"],
    ['postgres', `select "app".lower('x')`],
  ])('%s: a qualified call is a function of the app, named like a built-in or not: %j', (lexing, text) => {
    expect(effects(text, lexing)).toEqual({ sideEffect: undefined, leavesState: true })
    expect(isQuiet(text, lexing)).toBe(false)
  })

  it('PostgreSQL: pg_catalog holds the built-ins themselves', () => {
    expect(effects("select pg_catalog.md5('x')", 'postgres').leavesState).toBe(false)
    expect(effects("select pg_catalog . set_config('a', 'b', false)", 'postgres').sideEffect).toBe(
      'set_config(…, false)',
    )
  })

  it('side-effect names are refused when qualified', () => {
    expect(effects("select mydb.get_lock('k', 0)", 'mysql').sideEffect).toBe('GET_LOCK')
    expect(effects('select public.pg_advisory_lock(1)', 'postgres').sideEffect).toBe('pg_advisory_lock')
  })
})

describe('PostgreSQL functions that run SQL given as a string', () => {
  it.each([
    ["select * from crosstab('select 1::text, 1::text, pg_advisory_lock(1)::text') as t(a text, b text)", 'crosstab'],
    ["select * from crosstab('select 1', 2) as t(a text, b text)", 'crosstab'],
    ["select * from crosstab('select 1', 'select 2') as t(a text, b text)", 'crosstab'],
    ["select * from crosstab2('select 1')", 'crosstab2'],
    ["select * from crosstab3('select 1')", 'crosstab3'],
    ["select * from public.crosstab4('select 1')", 'crosstab4'],
    ["select * from connectby('t, lateral (select 1) x', 'id', 'p', '1', 0) as t(k int, p int, l int)", 'connectby'],
    ["select * from xpath_table('id', 'doc', 't', '/a', 'true') as t(id int, a text)", 'xpath_table'],
    ["select * from ts_stat('select to_tsvector(''a'')')", 'ts_stat'],
    ["select pg_background_launch('delete from t')", 'pg_background_launch'],
  ])('%j', (text, name) => {
    expect(effects(text, 'postgres').sideEffect).toBe(name)
  })
})

describe('MySQL and MariaDB built-ins that change nothing', () => {
  it.each([
    'select uuid(), rand(), uuid_short(), sys_guid()',
    'select dayname(now()), monthname(now()), quarter(now()), weekday(now()), dayofmonth(now())',
    "select time_format(now(), '%H'), crc32('x'), char(65), conv('a', 16, 2), bin(5)",
    "select regexp_replace('a', 'a', 'b'), regexp_like('a', 'a'), json_search('[]', 'one', 'a')",
    "select json_merge_patch('{}', '{}'), inet_aton('1.2.3.4'), is_ipv4('x'), bin_to_uuid(uuid_to_bin(uuid()))",
    "select cast(1 as decimal(10, 2)), convert('a', char(1)), st_astext(point(1, 2)), column_json(column_create('a', 1))",
    'select found_rows(), row_count(), user(), charset(1), collation(1), any_value(id), is_free_lock(0x6b) from t',
    "select format_bytes(1), format_pico_time(1), aes_encrypt('a', 'k'), sha2('a', 256), compress('a')",
  ])('%j needs no session reset', (text) => {
    expect(effects(text, 'mysql')).toEqual({ sideEffect: undefined, leavesState: false })
  })

  it.each([
    ["select get_lock('k', 0)", 'GET_LOCK'],
    ["select release_all_locks(), release_lock('k')", 'RELEASE_ALL_LOCKS'],
    ['select last_insert_id(5)', 'LAST_INSERT_ID'],
    ['select nextval(s)', 'NEXTVAL'],
  ])('%j is still refused', (text, name) => {
    expect(effects(text, 'mysql').sideEffect).toBe(name)
  })

  it.each([
    "select load_file('/etc/hosts')",
    'select benchmark(10, md5(1))',
    "select master_gtid_wait('0-1-1', 1)",
    "select master_pos_wait('bin.1', 4, 1)",
    'select wsrep_last_seen_gtid()',
  ])('%j is no known pure built-in: reset after, or refused where no reset is possible', (text) => {
    expect(effects(text, 'mysql').leavesState).toBe(true)
  })
})

describe('a read session in which mysql2 cannot escape values', () => {
  /** A server that refuses two statements and answers the session questions with `sqlMode`. */
  const server = (sqlMode: string) => {
    const asked: string[] = []
    const send = async (query: CompiledQuery) => {
      asked.push(query.sql)
      if (query.sql.includes(';')) throw Object.assign(new Error('syntax'), { errno: 1064 })
      if (query.sql.includes('sql_mode')) return { rows: [{ mode: sqlMode, ro: 1 }] }
      return { rows: [] }
    }
    return { asked, send: send as never }
  }

  it.each([true, false])('NO_BACKSLASH_ESCAPES is refused, read-only sessions %s', async (readOnly) => {
    const { send } = server('STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES')
    const verified = verifySession(send, 'mysql', { readOnly, replica: false })
    await expect(verified).rejects.toBeInstanceOf(ConfigurationError)
    await expect(verified).rejects.toThrow(/NO_BACKSLASH_ESCAPES.*mysql2.*Remove NO_BACKSLASH_ESCAPES from sql_mode/s)
  })

  it('other modes pass, asked in the round trip that checks the session is read-only', async () => {
    const { asked, send } = server('STRICT_TRANS_TABLES,ANSI_QUOTES')
    await verifySession(send, 'mysql', { readOnly: true, replica: false })
    expect(asked.filter((text) => !text.includes(';'))).toEqual([
      'select @@session.sql_mode as mode, @@session.transaction_read_only as ro',
    ])
  })
})

// The text check behind readSql: one statement that starts as a read, whatever its literals and
// comments say; anything else is refused before it is sent, with a message that says why.
import { describe, expect, it } from 'vitest'
import { NotAReadStatementError, WriteOnReadBackendError } from '../src/errors.js'
import { lex } from '../src/guard/lexer.js'
import { copyCheckedValues, refuseRawValues } from '../src/guard/raw-values.js'
import { inspectReadText } from '../src/guard/read-text.js'
import { assertReadStatement } from '../src/read-sql.js'

function refusal(text: string): NotAReadStatementError {
  try {
    assertReadStatement(text)
  } catch (error) {
    expect(error).toBeInstanceOf(NotAReadStatementError)
    expect(error).toBeInstanceOf(WriteOnReadBackendError)
    return error as NotAReadStatementError
  }
  throw new Error(`assertReadStatement accepted ${JSON.stringify(text)}`)
}

describe('accepted reads', () => {
  it.each([
    'select 1',
    'SELECT * FROM person',
    'SeLeCt id from person',
    '   \n\t select 1',
    '-- the people\nselect * from person',
    '/* a\nblock */ select 1',
    '/* one */ -- two\n  /* three */ select 1',
    '(select 1) union (select 2)',
    '((select 1))',
    '( select 1 )',
    '(/* why not */ select 1)',
    'with p as (select * from person) select * from p',
    'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT i FROM n',
    "values (1, 'a'), (2, 'b')",
    'table person',
    'show tables',
    'SHOW search_path',
    'explain select * from person',
    'explain (format json) select * from person',
    'select 1;',
    'select 1 ;  \n',
    'select 1; -- done',
    // Words of writes inside literals, quoted identifiers and comments are not the statement's own.
    "select 'insert into t values (1)' as text",
    "select '; drop table person' as text",
    "select 'it''s; delete from t' as text",
    'select 1 -- ; drop table person',
    'select 1 /* ; delete from person */',
    'select "update", "delete" from "for update"',
    'select $$ insert into t; drop table t $$ as body',
    'select $fn$ delete from t; $$ nested $$ $fn$ as body',
    'select $1::int as n, $2::text as s',
    'select * from person where name = ?',
    // Names that merely contain a keyword.
    'with updates as (select 1 as x) select x from updates',
    'select inserted_at, deleted from person',
    'select * from person order by updated_at',
  ])('%j', (text) => {
    expect(() => assertReadStatement(text)).not.toThrow()
  })
})

describe('refused statements', () => {
  it.each([
    ['insert into t values (1)', '"insert"'],
    ['UPDATE t SET a = 1', '"UPDATE"'],
    ['delete from t', '"delete"'],
    ['create table t (id int)', '"create"'],
    ['drop table t', '"drop"'],
    ['truncate t', '"truncate"'],
    ['call refresh_everything()', '"call"'],
    ['do $$ begin delete from t; end $$', '"do"'],
    ['set search_path to evil', '"set"'],
    ['begin', '"begin"'],
    ['merge into t using s on t.id = s.id when matched then delete', '"merge"'],
    ['replace into t values (1)', '"replace"'],
    ['  -- looks like a read\n  /* select */ delete from t', '"delete"'],
    ['(delete from t returning *)', '"delete"'],
    ['', '""'],
    ['  -- only a comment', '""'],
  ])('%j', (text, start) => {
    const error = refusal(text)
    expect(error.kind).toBe('raw sql')
    expect(error.message).toContain(`a statement starting with ${start}`)
    expect(error.message).toContain('not a read')
    expect(error.message).toMatch(/on the write backend \(sql`…`\.execute\(db\.write\)\)/)
  })

  it.each([
    'select 1; delete from t',
    'select 1; select 2',
    'select 1;select 2;',
    'select 1;\n\ndrop table t',
    "select ';'; delete from t",
    'select 1; -- a comment\n insert into t values (1)',
  ])('more than one statement: %j', (text) => {
    expect(refusal(text).message).toContain('more than one statement')
  })

  it.each([
    'with d as (delete from t returning *) select * from d',
    'with i as (insert into t values (1) returning *) select * from i',
    'WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u',
    'with s as (select 1) delete from t',
    'with s as (select 1) insert into t select * from s',
    'with s as (select 1 as id) update t set a = 1 from s where t.id = s.id',
  ])('data-modifying WITH: %j', (text) => {
    expect(refusal(text).message).toContain('a data-modifying WITH')
  })

  it.each([
    'explain analyze delete from t',
    'EXPLAIN ANALYZE select * from t',
    'explain (analyze) delete from t',
    'explain (analyze, buffers) update t set a = 1',
    'explain (format json, analyze true) select 1',
    'explain ("analyze") create table t2 as select 1',
    'explain (format json, "analyse" on) select 1 into t2',
  ])('EXPLAIN ANALYZE: %j', (text) => {
    expect(refusal(text).message).toContain('EXPLAIN ANALYZE')
  })

  it.each([
    'select * from t for update',
    'select * from t FOR UPDATE SKIP LOCKED',
    'select * from t for no key update',
    'select * from t for share',
    'select * from t for key share nowait',
    'select * from t lock in share mode',
    'select * from (select * from t for update) x',
    'select * from t for\n  update',
  ])('locking read: %j', (text) => {
    expect(refusal(text).message).toContain('a locking read')
  })

  it.each([
    'select * into newtable from t',
    'SELECT id INTO TEMP saved FROM t',
    'select id into @saved from t',
    "select * from t into outfile '/tmp/t.csv'",
  ])('SELECT … INTO: %j', (text) => {
    expect(refusal(text).message).toContain('SELECT … INTO')
  })
})

// BUG (src/read-sql.ts, stripLiteralsAndComments): the literal and comment patterns are removed one
// after another, each blind to the others, so a quote, comment or dollar-quote marker inside another
// kind of token starts or ends the wrong one and hides the statement's own words.
describe('markers inside literals do not hide the statement', () => {
  it.each([
    ["select '--' as x from t for update", 'a locking read'],
    ["select '--'; delete from t", 'more than one statement'],
    ["select '/*'; delete from t; select '*/'", 'more than one statement'],
    ["select '$$'; delete from t; select '$$'", 'more than one statement'],
    ['select "--"; delete from t', 'more than one statement'],
    // `$a1$` is a dollar-quote tag (a tag may hold digits): the whole `$a1$'$a1$` is one literal.
    ["select $a1$'$a1$; delete from t; select $a1$'$a1$", 'more than one statement'],
    // PostgreSQL block comments nest: `/* /* */ ' */` is one comment, and the quote in it is no literal.
    ["select 1 /* /* */ ' */; delete from t; -- '", 'more than one statement'],
  ])('%j', (text, why) => {
    expect(refusal(text).message).toContain(why)
  })
})

// BUG (src/read-sql.ts): statements the documented rules refuse (or accept) that are judged otherwise.
describe('other spellings of refused statements', () => {
  // PostgreSQL takes ANALYSE as a synonym of ANALYZE: `explain analyse delete …` deletes.
  it.each(['explain analyse delete from t', 'explain (analyse) delete from t'])('%j', (text) => {
    expect(refusal(text).message).toContain('EXPLAIN ANALYZE')
  })

  // A false refusal: only the parentheses right at the start are skipped, not `( (`.
  it('( (select 1))', () => {
    expect(() => assertReadStatement('( (select 1))')).not.toThrow()
  })

  // The word UPDATE of a lock inside a WITH is taken for a data-modifying body: refused, but the
  // message names the wrong reason (checking for locks before the WITH body would fix it).
  it('with s as (select * from t for update) select * from s', () => {
    expect(refusal('with s as (select * from t for update) select * from s').message).toContain('a locking read')
  })

  // SELECT INTO may follow a WITH clause on PostgreSQL: it creates `newtable`.
  it('with … select … into newtable', () => {
    expect(refusal('with x as (select 1 as a) select a into newtable from x').message).toContain('SELECT … INTO')
  })
})

// Texts the servers split otherwise than a lexer blind to these rules did: a call hidden from every
// variant ran on the server (adversarial review, issue #10's follow-up).
describe('lexing as the server does: no call hides in what the server runs as code', () => {
  const effects = (text: string, lexing: 'postgres' | 'mysql', parameters: unknown[] = []) =>
    inspectReadText(text, parameters, lexing)
  const refused = (text: string, lexing: 'postgres' | 'mysql', parameters: unknown[] = []) => {
    try {
      const found = effects(text, lexing, parameters)
      return found.sideEffect !== undefined
    } catch (error) {
      expect(error).toBeInstanceOf(NotAReadStatementError)
      return true
    }
  }

  it.each([
    // PostgreSQL continues a literal across a newline into the next '…', escaped as it began: E'x'\n'\''
    // is one literal, so the plain '\' after it ends where the server ends it.
    "select E'x'\n'\\'' , '\\' , set_config($$search_path$$, $$evil$$, false) -- '",
    "select E'x' -- a comment\n  '\\'' , '\\' , set_config($$search_path$$, $$evil$$, false) -- '",
    "select e'x'\r'\\'' , '\\' , pg_advisory_lock(1) -- '",
  ])('PostgreSQL: %j', (text) => {
    expect(refused(text, 'postgres')).toBe(true)
  })

  it('PostgreSQL: B, X and U& literals take no backslash escapes, whatever standard_conforming_strings says', () => {
    // With backslashes in plain literals (standard_conforming_strings off), B'\' still ends at its second quote.
    const lexed = lex("select B'\\' , pg_advisory_lock(1) -- '", 'postgres', {
      backslashInSingle: true,
      doubleQuotedString: false,
    })
    expect(lexed?.calls.map((call) => call.name)).toContain('pg_advisory_lock')
    const unicode = lex("select U&'\\' , pg_advisory_lock(1) -- '", 'postgres', {
      backslashInSingle: true,
      doubleQuotedString: false,
    })
    expect(unicode?.calls.map((call) => call.name)).toContain('pg_advisory_lock')
  })

  it('PostgreSQL: a literal followed by a quote on the same line is two literals', () => {
    expect(effects("select 'a' 'b'", 'postgres').sideEffect).toBeUndefined()
    expect(effects("select 'a'\n'b' as x", 'postgres').sideEffect).toBeUndefined()
  })

  it.each([
    // A versioned comment the server skips ends at its first */, quotes inside or not.
    "select 1 /*!999999 '*/ , get_lock('k',0) -- ' */",
    // MariaDB skips MySQL 5.7's versions (50700 to 99999).
    "select 1 /*!50700 '*/ , get_lock('k',0) -- ' */",
    // One nested /* */ is allowed inside a skipped versioned comment.
    "select 1 /*!999999 /* /* */ ' */ , get_lock('k',0) -- ' */",
    // MySQL takes /*M! … */ for a plain comment.
    "select 1 /*M!999999 '*/ , get_lock('k',0) -- ' */",
    // An executable comment inside another ends both at its */.
    "select 2 /*!50000 /*!50000 */ */* ' */ 3 , get_lock('k',0) -- ' */",
    // -- starts a comment before DEL and other control characters too.
    "select 1 --\x7f '\n, get_lock('k',0) -- '",
    "select 1 --\x01 '\n, get_lock('k',0) -- '",
  ])('MySQL: %j', (text) => {
    expect(refused(text, 'mysql')).toBe(true)
  })

  it('MySQL: executable comments the server runs whatever its version stay accepted', () => {
    expect(effects('select 1 /*! , 2 */', 'mysql').sideEffect).toBeUndefined()
    expect(effects('select 1 /*!50000 , 2 */ , 3', 'mysql').sideEffect).toBeUndefined()
    expect(effects("select 1 /*! , 'a' */", 'mysql').sideEffect).toBeUndefined()
  })

  it.each([
    // mysql2 finds placeholders with a lexer of its own: inside /*+ … */ it reads a literal where the
    // server reads a comment, and put the value where the server read the literal '?'.
    ["select 1 /*+ ' */ , '?' as a, ? as b", 'a ? inside a literal'],
    ["select coalesce(v, '?') as x from t where id = ?", 'a ? inside a literal'],
    ['select id /* why? */ from t where v = ?', 'a ? inside a literal'],
  ])('MySQL with parameters: %j', (text, why) => {
    expect(() => effects(text, 'mysql', ['x'])).toThrow(why)
    // Without parameters mysql2 puts nothing anywhere.
    expect(effects(text.replace(/ = \?$|, \? as b$/, ''), 'mysql', []).sideEffect).toBeUndefined()
  })

  it.each([
    ['select ts_stat($$select to_tsvector(pg_advisory_lock(1)::text)$$)', 'ts_stat'],
    ["select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery')", 'ts_rewrite(…, query)'],
    ["select brin_summarize_new_values('i')", 'brin_summarize_new_values'],
    ["select gin_clean_pending_list('i')", 'gin_clean_pending_list'],
    ['select setseed(0.5)', 'setseed'],
    ['select pg_stat_reset_subscription_stats(1)', 'pg_stat_reset_subscription_stats'],
    ["select * from pg_logical_slot_get_changes('s', null, null)", 'pg_logical_slot_get_changes'],
  ])('PostgreSQL side effects: %j', (text, name) => {
    expect(effects(text, 'postgres').sideEffect).toBe(name)
  })

  it('ts_rewrite with a target and a substitute runs no query', () => {
    expect(
      effects("select ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)", 'postgres').sideEffect,
    ).toBeUndefined()
  })
})

// mysql2 formats values into the text: a toSqlString() anywhere it looks is raw SQL, and a value it reads
// again later must not answer otherwise than it did to the guard.
describe('parameters mysql2 could insert as raw SQL', () => {
  const raw = { toSqlString: () => "get_lock('k', 0)" }
  const nest = (value: unknown, depth: number): unknown => (depth === 0 ? value : [nest(value, depth - 1)])

  it.each<[string, unknown]>([
    ['a toSqlString() value', raw],
    ['in an array', [1, raw]],
    ['in a Set', new Set([raw])],
    ['in a Map', new Map([['k', raw]])],
    ['in an object', { id: raw }],
    ['inherited', Object.create(raw)],
    ['deeper than the search goes', nest(1, 12)],
    [
      'behind a getter',
      {
        get id() {
          return 1
        },
      },
    ],
    ['behind a getter of an array item', Object.defineProperty([0], 0, { get: () => 1, enumerable: true })],
    [
      'a getter named toSqlString',
      Object.create({
        get toSqlString() {
          return undefined
        },
      }),
    ],
    ['a Proxy', new Proxy({}, {})],
    ['a Set of its own kind', new (class extends Set {})([1])],
  ])('%s is refused', (_name, value) => {
    expect(() => refuseRawValues([value])).toThrow(WriteOnReadBackendError)
  })

  it.each<[string, unknown]>([
    ['numbers, strings, null', 1],
    ['an array of ids', [1, 2, 3]],
    [
      'nested arrays',
      [
        [1, 'a'],
        [2, 'b'],
      ],
    ],
    ['a Date', new Date()],
    ['a Buffer', Buffer.from('x')],
    ['a plain object', { a: 1, b: [2] }],
  ])('%s passes', (_name, value) => {
    expect(() => refuseRawValues([value, 'x', null])).not.toThrow()
  })

  it('checked values are copied all the way down: a change made after the check is not what is sent', () => {
    const inner: unknown[] = [1, 'a']
    const object = { a: [2] }
    const parameters = [[inner], object, new Set([inner]), new Date(5), Buffer.from('x'), 7, 'y']
    const copy = copyCheckedValues(parameters)
    inner[0] = { toSqlString: () => 'raw' }
    object.a[0] = 3
    expect(copy).toEqual([[[1, 'a']], { a: [2] }, new Set([[1, 'a']]), new Date(5), Buffer.from('x'), 7, 'y'])
    const primitives = [1, 'x', null]
    expect(copyCheckedValues(primitives)).toBe(primitives)
  })
})

// The text check behind readSql: one statement that starts as a read, whatever its literals and
// comments say; anything else is refused before it is sent, with a message that says why.
import { describe, expect, it } from 'vitest'
import { NotAReadStatementError, WriteOnReadBackendError } from '../src/errors.js'
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

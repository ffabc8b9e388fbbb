// The read backend's compiler reaches the guard's verdict on a builder read while Kysely compiles it, so
// that checking a plain read costs one brand test. What must hold: only reads made of names, parameters,
// Kysely's keywords and pure built-ins get the verdict; everything else still meets the text check; and
// no object can pass for a quiet read, nor change what is sent after the verdict.
import {
  BinaryOperationNode,
  ColumnNode,
  DummyDriver,
  type Generated,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  sql,
  ValueNode,
  WhereNode,
} from 'kysely'
import { describe, expect, it } from 'vitest'
import { QuietSelect, withQuietVerdicts } from '../src/guard/quiet-compiler.js'
import { ReadGuard } from '../src/guard/read-guard.js'
import { WriteOnReadBackendError } from '../src/index.js'

interface DB {
  person: { id: Generated<number>; name: string; age: number }
  pet: { id: Generated<number>; owner_id: number; name: string }
}

const on = (lexing: 'postgres' | 'mysql', compiler: () => QueryCompiler) =>
  new Kysely<DB>({
    dialect: {
      createAdapter: () => (lexing === 'postgres' ? new PostgresAdapter() : new MysqlAdapter()),
      createDriver: () => new DummyDriver(),
      createIntrospector: (db) => (lexing === 'postgres' ? new PostgresIntrospector(db) : new MysqlIntrospector(db)),
      createQueryCompiler: compiler,
    },
  })

const pg = on('postgres', () => withQuietVerdicts(new PostgresQueryCompiler(), 'postgres'))
const my = on('mysql', () => withQuietVerdicts(new MysqlQueryCompiler(), 'mysql'))
const isQuiet = (query: unknown, lexing: 'postgres' | 'mysql' = 'postgres') =>
  QuietSelect.toSend(query, lexing) !== undefined
const guard = (lexing: 'postgres' | 'mysql') => new ReadGuard(() => false, lexing)

describe('builder reads get the verdict as they compile', () => {
  const reads = {
    'pk select': (db: Kysely<DB>) => db.selectFrom('person').select(['id', 'name']).where('id', '=', 1),
    join: (db: Kysely<DB>) =>
      db.selectFrom('person').innerJoin('pet', 'pet.owner_id', 'person.id').select(['person.name', 'pet.name as pet']),
    'in list, and/or': (db: Kysely<DB>) =>
      db
        .selectFrom('person')
        .selectAll()
        .where((eb) => eb.or([eb('id', 'in', [1, 2, 3]), eb.and([eb('age', '>', 1), eb('name', 'like', 'A%')])])),
    'order, limit, offset': (db: Kysely<DB>) =>
      db.selectFrom('person').selectAll().orderBy('age', 'desc').orderBy('id').limit(10).offset(5),
    'count and group by': (db: Kysely<DB>) =>
      db
        .selectFrom('person')
        .select((eb) => ['age', eb.fn.countAll<string>().as('n')])
        .groupBy('age')
        .having((eb) => eb.fn.countAll(), '>', 1),
    distinct: (db: Kysely<DB>) => db.selectFrom('person').select('age').distinct(),
    subquery: (db: Kysely<DB>) =>
      db
        .selectFrom('person')
        .selectAll()
        .where('id', 'in', (eb) => eb.selectFrom('pet').select('owner_id')),
  }
  for (const [name, build] of Object.entries(reads)) {
    it(`${name}, on both dialects`, () => {
      expect(isQuiet(build(pg).compile())).toBe(true)
      expect(isQuiet(build(my).compile(), 'mysql')).toBe(true)
    })
  }

  it('the verdict holds for the dialect it was reached for only', () => {
    const query = reads['pk select'](pg).compile()
    expect(isQuiet(query, 'mysql')).toBe(false)
  })

  it('the compiled text and parameters are those of plain Kysely', () => {
    const plain = on('postgres', () => new PostgresQueryCompiler())
    for (const build of Object.values(reads)) {
      const quiet = build(pg).compile()
      const expected = build(plain).compile()
      expect({ sql: quiet.sql, parameters: quiet.parameters }).toEqual({
        sql: expected.sql,
        parameters: expected.parameters,
      })
    }
  })
})

describe('everything else keeps the text check', () => {
  const loud = {
    'a side-effecting function': (db: Kysely<DB>) =>
      db.selectFrom('person').select((eb) => eb.fn('set_config', [eb.val('a'), eb.val('b'), eb.val(false)]).as('x')),
    'a raw fragment': (db: Kysely<DB>) => db.selectFrom('person').select(sql<number>`1`.as('one')),
    'a raw modifier at the end': (db: Kysely<DB>) => db.selectFrom('person').selectAll().modifyEnd(sql`for update`),
    'a locking read': (db: Kysely<DB>) => db.selectFrom('person').selectAll().forUpdate(),
    'a literal': (db: Kysely<DB>) => db.selectFrom('person').select((eb) => eb.lit(1).as('x')),
    'a cast': (db: Kysely<DB>) => db.selectFrom('person').select((eb) => eb.cast('age', 'text').as('a')),
    'a window function': (db: Kysely<DB>) => db.selectFrom('person').select((eb) => eb.fn.countAll().over().as('n')),
    'a function name that is not a pure built-in': (db: Kysely<DB>) =>
      db.selectFrom('person').select((eb) => eb.fn('count(1), pg_advisory_lock', [eb.val(1)]).as('n')),
  }
  for (const [name, build] of Object.entries(loud)) {
    it(name, () => {
      expect(isQuiet(build(pg).compile())).toBe(false)
    })
  }

  it('an operator node built by hand, whose text Kysely appends as it is', () => {
    const base = pg.selectFrom('person').selectAll().toOperationNode()
    const operator = { kind: 'OperatorNode', operator: '= 1 or pg_advisory_lock(1) is null or 1 =' }
    const where = WhereNode.create(
      BinaryOperationNode.create(ColumnNode.create('id'), operator as never, ValueNode.create(1)),
    )
    const query = pg.getExecutor().compileQuery({ ...base, where }, { queryId: 'hand-built' })
    expect(query.sql).toContain('pg_advisory_lock(1)')
    expect(isQuiet(query)).toBe(false)
    expect(() => guard('postgres').check(query)).toThrow(/pg_advisory_lock/)
  })

  it('a side-effecting function in a builder read is still refused by the guard', () => {
    expect(() => guard('postgres').check(loud['a side-effecting function'](pg).compile())).toThrow(
      WriteOnReadBackendError,
    )
  })
})

describe('no object passes for a quiet read', () => {
  it('a copy of a quiet read, field by field, is not one', () => {
    const quiet = pg.selectFrom('person').selectAll().compile()
    const copy = { sql: quiet.sql, parameters: quiet.parameters, query: quiet.query, queryId: quiet.queryId }
    expect(isQuiet(copy)).toBe(false)
    expect(isQuiet(Object.create(quiet))).toBe(false)
  })

  it('redefining the text of a quiet read changes nothing that is sent', () => {
    const quiet = pg.selectFrom('person').selectAll().where('id', '=', 1).compile()
    Object.defineProperty(quiet, 'sql', { value: 'delete from "person"' })
    expect(quiet.sql).toBe('delete from "person"')
    const sent = guard('postgres').check(quiet)
    expect(sent.query.sql).toBe('select * from "person" where "id" = $1')
  })

  it('parameters changed after the check do not reach what is sent', () => {
    const quiet = pg.selectFrom('person').selectAll().where('id', '=', 1).compile()
    const sent = guard('postgres').check(quiet)
    ;(quiet.parameters as unknown[])[0] = 2
    expect(sent.query.parameters).toEqual([1])
  })
})

describe('MySQL: a parameter that mysql2 would insert as raw SQL', () => {
  const raw = { toSqlString: () => "1 and get_lock('x', 10)" }
  it('is refused in a quiet read, at any depth', () => {
    const flat = my
      .selectFrom('person')
      .selectAll()
      .where('id', '=', raw as never)
      .compile()
    expect(isQuiet(flat, 'mysql')).toBe(true)
    expect(() => guard('mysql').check(flat)).toThrow(/toSqlString/)
    const nested = my
      .selectFrom('person')
      .selectAll()
      .where('id', 'in', [1, [raw]] as never)
      .compile()
    expect(() => guard('mysql').check(nested)).toThrow(WriteOnReadBackendError)
  })

  it('is refused in a query that takes the text check too', () => {
    const query = my
      .selectFrom('person')
      .select((eb) => eb.fn('my_function', [eb.val(raw as never)]).as('x'))
      .compile()
    expect(isQuiet(query, 'mysql')).toBe(false)
    expect(() => guard('mysql').check(query)).toThrow(/toSqlString/)
  })

  it('plain values, dates and buffers pass', () => {
    const query = my
      .selectFrom('person')
      .selectAll()
      .where('id', 'in', [1, 2])
      .where('name', '=', 'x')
      .where('age', '>', new Date(0) as never)
      .where('name', '!=', Buffer.from('a') as never)
      .compile()
    expect(() => guard('mysql').check(query)).not.toThrow()
  })
})

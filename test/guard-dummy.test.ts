// The runtime guard through the public API, on a dialect that records what reaches its connections:
// misuse of db.read is refused before anything is sent, reads run in read-only transactions, writes
// on db.write go through unchanged, and the outer backends are fenced off inside a write transaction.
import {
  type Dialect,
  type Generated,
  Kysely,
  PostgresAdapter,
  PostgresDriver,
  PostgresIntrospector,
  type PostgresPool,
  PostgresQueryCompiler,
  sql,
} from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type Backends,
  createBackends,
  NotAReadStatementError,
  readSql,
  type StatementKind,
  TransactionEscapeError,
  WriteOnReadBackendError,
} from '../src/index.js'

const SCHEMA_FLOOR_POSITION = 'select pg_current_wal_insert_lsn()::text as pos'

interface DB {
  person: { id: Generated<number>; name: string }
  pet: { id: Generated<number>; owner_id: number; name: string }
}

interface Sent {
  readonly sql: string
  readonly parameters: readonly unknown[]
}

/**
 * Kysely's own PostgresDriver over a pool of fake pg clients that answer `{ rows: [] }` and record
 * every statement: what is recorded is exactly what pg would have sent, transaction control included.
 */
function recordingDialect(sent: Sent[]): Dialect {
  // A new client per checkout, as a real pool hands out distinct connections to concurrent users.
  const client = () => ({
    async query(config: string | { text: string; queryMode?: string }, parameters: readonly unknown[]) {
      const text = typeof config === 'string' ? config : config.text
      sent.push({ sql: text, parameters: [...parameters] })
      // As the server answers a Parse message holding two statements (the extended protocol).
      // node-postgres takes the extended protocol for a query with parameters, or when asked to.
      const extended = typeof config === 'string' ? parameters.length > 0 : config.queryMode === 'extended'
      if (extended && /;\s*\S/.test(text)) {
        throw Object.assign(new Error('cannot insert multiple commands into a prepared statement'), { code: '42601' })
      }
      return { command: text.split(' ', 1)[0]!.toUpperCase(), rowCount: 0, rows: [] }
    },
    release() {},
  })
  const pool = {
    async connect() {
      return client()
    },
    async end() {},
    options: {},
  } as unknown as PostgresPool
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new PostgresDriver({ pool }),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  }
}

/** Compiles like the backends do, to compare the text that reached the driver. */
const compiler = new Kysely<DB>({ dialect: recordingDialect([]) })

let sent: Sent[]
let db: Backends<DB>

beforeEach(() => {
  sent = []
  db = createBackends<DB>({ dialect: 'postgres', primary: recordingDialect(sent) })
})

afterEach(async () => {
  await db.destroy()
})

const statements = () => sent.map((s) => s.sql)

// A read on this backend: the primary's own driver, in a read-only transaction of its own.
// Each new read connection is first shown to refuse two statements in one query (the verification probe).
const PROBE = 'select 1; select 1'
const readOnly = (...sqls: string[]) => [
  PROBE,
  'start transaction read only',
  'set transaction read only',
  ...sqls,
  'rollback',
]

describe('writes on db.read are refused before they are sent', () => {
  // `as any` stands for every way around the types: a cast, a JavaScript caller, a helper typed loosely.
  const misuse: ReadonlyArray<{
    name: string
    run: (read: any) => Promise<unknown>
    kind: StatementKind
    detail: RegExp
  }> = [
    {
      name: 'insertInto',
      run: (read) => read.insertInto('person').values({ name: 'Ada' }).execute(),
      kind: 'insert',
      detail: /INSERT/,
    },
    {
      name: 'updateTable',
      run: (read) => read.updateTable('person').set({ name: 'Ada' }).execute(),
      kind: 'update',
      detail: /UPDATE/,
    },
    {
      name: 'deleteFrom',
      run: (read) => read.deleteFrom('person').where('id', '=', 1).execute(),
      kind: 'delete',
      detail: /DELETE/,
    },
    {
      name: 'mergeInto',
      run: (read) =>
        read.mergeInto('person').using('pet', 'pet.owner_id', 'person.id').whenMatched().thenDelete().execute(),
      kind: 'merge',
      detail: /MERGE/,
    },
    {
      name: 'schema.createTable',
      run: (read) => read.schema.createTable('t').addColumn('id', 'integer').execute(),
      kind: 'ddl',
      detail: /DDL.*CreateTable/,
    },
    {
      name: 'schema.dropTable',
      run: (read) => read.schema.dropTable('person').execute(),
      kind: 'ddl',
      detail: /DDL.*DropTable/,
    },
    {
      name: 'a data-modifying CTE',
      run: (read) =>
        read
          .with('gone', (qc: Kysely<DB>) => qc.deleteFrom('person').returning('id'))
          .selectFrom('gone')
          .selectAll()
          .execute(),
      kind: 'data-modifying cte',
      detail: /DELETE/,
    },
    {
      name: 'forUpdate',
      run: (read) => read.selectFrom('person').selectAll().forUpdate().execute(),
      kind: 'locking read',
      detail: /FOR UPDATE/,
    },
    { name: 'raw sql', run: (read) => sql`delete from person`.execute(read), kind: 'raw sql', detail: /readSql/ },
    {
      name: 'raw sql that reads (only readSql declares a read)',
      run: (read) => sql`select * from person`.execute(read),
      kind: 'raw sql',
      detail: /readSql/,
    },
  ]

  it.each(misuse.map((m) => [`${m.name} → ${m.kind}`, m] as const))('%s', async (_, { run, kind, detail }) => {
    const error = await run(db.read).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(WriteOnReadBackendError)
    const refused = error as WriteOnReadBackendError
    expect(refused.kind).toBe(kind)
    expect(refused.message).toMatch(detail)
    expect(refused.message).toMatch(/on a read backend\. Run it on the write backend \(db\.write/)
    expect(sent).toEqual([])
  })

  it('the same statements run on db.write', async () => {
    for (const { run } of misuse) await run(db.write)
    // Each schema change is followed by a read of the primary's position, for the schema floor.
    const positionReads = sent.filter((q) => q.sql === SCHEMA_FLOOR_POSITION).length
    expect(positionReads).toBe(misuse.filter((m) => m.kind === 'ddl').length)
    expect(sent).toHaveLength(misuse.length + positionReads)
  })
})

describe('readSql', () => {
  it('runs on db.read, in a read-only transaction', async () => {
    const name = 'Ada'
    await readSql<{ id: number }>`select id from person where name = ${name}`.execute(db.read)
    expect(statements()).toEqual(readOnly('select id from person where name = $1'))
    expect(sent[3]?.parameters).toEqual(['Ada'])
  })

  it('refuses a delete before it is sent', async () => {
    const error = await readSql`delete from person`.execute(db.read).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(NotAReadStatementError)
    expect(error).toBeInstanceOf(WriteOnReadBackendError)
    expect((error as NotAReadStatementError).message).toMatch(/starting with "delete".*on the write backend/)
    expect(sent).toEqual([])
  })

  it('refuses a read that locks before it is sent', async () => {
    await expect(readSql`select * from person for update`.execute(db.read)).rejects.toThrow(/a locking read/)
    expect(sent).toEqual([])
  })
})

describe('reads on db.read', () => {
  it('run in a read-only transaction of their own', async () => {
    const query = db.read.selectFrom('person').selectAll().where('id', '=', 7)
    await query.execute()
    expect(statements()).toEqual(readOnly(query.compile().sql))
    expect(sent[3]?.parameters).toEqual([7])
  })

  it('each in its own transaction', async () => {
    await db.read.selectFrom('person').select('id').execute()
    await db.read.selectFrom('pet').select('name').execute()
    expect(statements()).toEqual([...readOnly('select "id" from "person"'), ...readOnly('select "name" from "pet"')])
  })

  it('including joins, subqueries and read-only CTEs', async () => {
    const query = db.read
      .with('owners', (qc) => qc.selectFrom('pet').select('owner_id'))
      .selectFrom('person')
      .where('id', 'in', (eb) => eb.selectFrom('owners').select('owner_id'))
      .select([sql<Date>`now()`.as('now'), 'name'])
    await query.execute()
    expect(statements()).toEqual(readOnly(query.compile().sql))
  })

  it('in a read transaction share one read-only transaction', async () => {
    await db.read.transaction().execute(async (tx) => {
      await tx.selectFrom('person').selectAll().execute()
      await tx.selectFrom('pet').selectAll().execute()
    })
    expect(statements()).toEqual([
      PROBE,
      'start transaction isolation level repeatable read read only',
      'set transaction read only',
      'select * from "person"',
      'select * from "pet"',
      // Nothing to commit; ROLLBACK undoes what the reads may have changed in the session.
      'rollback',
    ])
  })
})

describe('writes on db.write', () => {
  it('are sent unchanged, outside any transaction of the library', async () => {
    const insert = compiler.insertInto('person').values({ name: 'Ada' }).returning('id').compile()
    const update = compiler.updateTable('person').set({ name: 'Grace' }).where('id', '=', 1).compile()
    await db.write.insertInto('person').values({ name: 'Ada' }).returning('id').execute()
    await db.write.updateTable('person').set({ name: 'Grace' }).where('id', '=', 1).execute()
    await sql`truncate person`.execute(db.write)
    expect(sent).toEqual([
      { sql: insert.sql, parameters: ['Ada'] },
      { sql: update.sql, parameters: ['Grace', 1] },
      { sql: 'truncate person', parameters: [] },
      // A schema change raises the schema floor: the primary's position right after it.
      { sql: SCHEMA_FLOOR_POSITION, parameters: [] },
    ])
  })

  it('selects on db.write are not wrapped either', async () => {
    await db.write.selectFrom('person').selectAll().forUpdate().execute()
    expect(statements()).toEqual(['select * from "person" for update'])
  })
})

describe('inside db.write.transaction()', () => {
  it('a query on db.read or db.write rejects, while the same on tx works', async () => {
    const escapes: unknown[] = []
    await db.write.transaction().execute(async (tx) => {
      escapes.push(
        await db.read
          .selectFrom('person')
          .selectAll()
          .execute()
          .catch((e: unknown) => e),
      )
      escapes.push(
        await db.write
          .selectFrom('person')
          .selectAll()
          .execute()
          .catch((e: unknown) => e),
      )
      escapes.push(
        await db.write
          .insertInto('person')
          .values({ name: 'Ada' })
          .execute()
          .catch((e: unknown) => e),
      )
      escapes.push(await readSql`select 1`.execute(db.read).catch((e: unknown) => e))
      await tx.selectFrom('person').selectAll().execute()
      await tx.insertInto('person').values({ name: 'Ada' }).execute()
    })
    expect(escapes).toHaveLength(4)
    for (const escaped of escapes) {
      expect(escaped).toBeInstanceOf(TransactionEscapeError)
      expect((escaped as Error).message).toMatch(/Use the `tx` handed to the transaction callback/)
    }
    expect(statements()).toEqual([
      'begin',
      'select * from "person"',
      'insert into "person" ("name") values ($1)',
      'commit',
    ])
  })

  it('an escape that is not caught rolls the transaction back', async () => {
    await expect(
      db.write.transaction().execute(async (tx) => {
        await tx.insertInto('person').values({ name: 'Ada' }).execute()
        await db.read.selectFrom('person').selectAll().execute()
      }),
    ).rejects.toBeInstanceOf(TransactionEscapeError)
    expect(statements()).toEqual(['begin', 'insert into "person" ("name") values ($1)', 'rollback'])
  })

  it('after the transaction, the outer backends work again', async () => {
    await db.write.transaction().execute(async (tx) => {
      await expect(db.read.selectFrom('person').selectAll().execute()).rejects.toBeInstanceOf(TransactionEscapeError)
      await tx.selectFrom('person').selectAll().execute()
    })
    sent.length = 0
    await db.read.selectFrom('person').selectAll().execute()
    await db.write.deleteFrom('person').execute()
    expect(statements()).toEqual([...readOnly('select * from "person"'), 'delete from "person"'])
  })

  it('after a transaction that threw, the outer backends work again', async () => {
    await expect(
      db.write.transaction().execute(async () => {
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    sent.length = 0
    await db.read.selectFrom('person').selectAll().execute()
    await db.write.deleteFrom('person').execute()
    expect(statements()).toEqual([...readOnly('select * from "person"'), 'delete from "person"'])
  })

  it('queries of unrelated work running at the same time are not taken for escapes', async () => {
    let entered!: () => void
    const inside = new Promise<void>((resolve) => {
      entered = resolve
    })
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    const transaction = db.write.transaction().execute(async (tx) => {
      entered()
      await held
      await tx.selectFrom('person').selectAll().execute()
    })
    await inside
    // Issued outside the callback while the transaction is open: a query of other work, not an escape.
    await db.read.selectFrom('pet').selectAll().execute()
    release()
    await transaction
    expect(statements()).toEqual(['begin', ...readOnly('select * from "pet"'), 'select * from "person"', 'commit'])
  })
})

describe('with detectTransactionEscapes: false', () => {
  it('lets a query on the outer backend run inside the callback, on its own connection', async () => {
    const own: Sent[] = []
    const unwatched = createBackends<DB>({
      dialect: 'postgres',
      primary: recordingDialect(own),
      detectTransactionEscapes: false,
    })
    try {
      await unwatched.write.transaction().execute(async () => {
        await unwatched.write.selectFrom('person').selectAll().execute()
      })
      expect(own.map((s) => s.sql)).toEqual(['begin', 'select * from "person"', 'commit'])
    } finally {
      await unwatched.destroy()
    }
  })
})

describe('sessions', () => {
  // A session is made per request: it must not cost a compiler of its own (a hundred bound visitor
  // functions each), and the group's shared read compiler must still reach the guard's verdicts for it.
  it('make no query compiler of their own, and their reads are guarded like db.read', async () => {
    const own: Sent[] = []
    const dialect = recordingDialect(own)
    let compilers = 0
    const counting: Dialect = {
      ...dialect,
      createQueryCompiler: () => {
        compilers++
        return dialect.createQueryCompiler()
      },
    }
    const grouped = createBackends<DB>({ dialect: 'postgres', primary: counting })
    try {
      const made = compilers
      const sessions = Array.from({ length: 20 }, () => grouped.session())
      expect(compilers).toBe(made)

      const [first, second] = sessions as [(typeof sessions)[number], (typeof sessions)[number]]
      await expect((first.read as any).insertInto('person').values({ name: 'Ada' }).execute()).rejects.toBeInstanceOf(
        WriteOnReadBackendError,
      )
      await second.read.selectFrom('person').select('name').where('id', '=', 7).execute()
      await first.write.insertInto('person').values({ name: 'Bo' }).execute()
      const texts = own.map((s) => s.sql)
      expect(texts).toContain('select "name" from "person" where "id" = $1')
      expect(texts).toContain('insert into "person" ("name") values ($1)')
      expect(texts.filter((t) => t.startsWith('insert'))).toHaveLength(1)
    } finally {
      await grouped.destroy()
    }
  })
})

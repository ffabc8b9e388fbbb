// Escape detection is paid for only while a write transaction is open: its scope is entered as Kysely
// begins the transaction, never reaches the code that started it, and the AsyncLocalStorage behind it is
// switched off (with Node 20/22's process-wide promise hooks) when the last write transaction ends.
import { executionAsyncId } from 'node:async_hooks'
import {
  type Dialect,
  type Generated,
  PostgresAdapter,
  PostgresDriver,
  PostgresIntrospector,
  type PostgresPool,
  PostgresQueryCompiler,
} from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { watchedTransactions } from '../src/guard/transaction-scope.js'
import { type Backends, createBackends, TransactionEscapeError } from '../src/index.js'

interface DB {
  person: { id: Generated<number>; name: string }
}

/** Kysely's PostgresDriver over fake pg clients that record each statement and answer no rows. */
function recordingDialect(sent: string[], failOn?: string): Dialect {
  const client = () => ({
    async query(config: string | { text: string; queryMode?: string }) {
      // Kysely's pg driver may hand a query config (text, values, query mode) instead of the text.
      const text = typeof config === 'string' ? config : config.text
      if (text === failOn) throw new Error(`${text} failed`)
      sent.push(text)
      // As the server answers a Parse message holding two statements (the extended protocol).
      if (typeof config !== 'string' && config.queryMode === 'extended' && /;\s*\S/.test(text)) {
        throw Object.assign(new Error('cannot insert multiple commands into a prepared statement'), { code: '42601' })
      }
      return { command: text.split(' ', 1)[0]?.toUpperCase(), rowCount: 0, rows: [] }
    },
    release() {},
  })
  const pool = { connect: async () => client(), end: async () => {}, options: {} } as unknown as PostgresPool
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new PostgresDriver({ pool }),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  }
}

/** A promise and the function that settles it: lets a test hold a transaction open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

const escapeOf = (query: Promise<unknown>) =>
  query.then(
    () => undefined,
    (error: unknown) => error,
  )

/**
 * Whether promise hooks run in this process now: with them, a promise callback runs in an async
 * context of its own (a non-zero id); without them (no AsyncLocalStorage enabled on Node 20/22, and
 * always on Node 24's AsyncContextFrame) it reports 0.
 */
function promiseHooksOn(): Promise<boolean> {
  return new Promise((resolve) => {
    setTimeout(() => {
      void Promise.resolve().then(() => resolve(executionAsyncId() !== 0))
    }, 0)
  })
}

const hooksAreProcessWide = Number(process.versions.node.split('.')[0]) < 24

let sent: string[]
let db: Backends<DB>

beforeEach(() => {
  sent = []
  db = createBackends<DB>({ dialect: 'postgres', primary: recordingDialect(sent) })
})

afterEach(async () => {
  await db.destroy()
  expect(watchedTransactions()).toBe(0)
})

describe('escape detection costs nothing while no write transaction is open', () => {
  it('leaves promise hooks off around queries and after transactions, on only during one', async () => {
    await db.read.selectFrom('person').selectAll().execute()
    await db.write.insertInto('person').values({ name: 'Ada' }).execute()
    expect(await promiseHooksOn()).toBe(false)
    const during = await db.write.transaction().execute(async (tx) => {
      await tx.selectFrom('person').selectAll().execute()
      return promiseHooksOn()
    })
    // Node 20 and 22 need the hooks to carry the scope; Node 24's AsyncContextFrame does without them.
    expect(during).toBe(hooksAreProcessWide)
    expect(await promiseHooksOn()).toBe(false)
    await db.read.selectFrom('person').selectAll().execute()
    expect(await promiseHooksOn()).toBe(false)
  })
})

describe('two write transactions at once', () => {
  it('each catches its own escapes, also after the other one ended', async () => {
    const firstMayEnd = gate()
    const secondMayEnd = gate()
    const firstEnded = gate()
    const escapes: unknown[] = []
    const first = db.write.transaction().execute(async (tx) => {
      escapes.push(await escapeOf(db.read.selectFrom('person').selectAll().execute()))
      await firstMayEnd.promise
      await tx.insertInto('person').values({ name: 'first' }).execute()
    })
    const second = db.write.transaction().execute(async (tx) => {
      escapes.push(await escapeOf(db.write.selectFrom('person').selectAll().execute()))
      await secondMayEnd.promise
      await firstEnded.promise
      // The first transaction has committed; this one is still open and still watched.
      escapes.push(await escapeOf(db.read.selectFrom('person').selectAll().execute()))
      await tx.insertInto('person').values({ name: 'second' }).execute()
    })
    await until(() => escapes.length === 2)
    expect(watchedTransactions()).toBe(2)
    firstMayEnd.open()
    await first
    expect(watchedTransactions()).toBe(1)
    firstEnded.open()
    secondMayEnd.open()
    await second
    expect(escapes).toHaveLength(3)
    for (const escaped of escapes) expect(escaped).toBeInstanceOf(TransactionEscapeError)
    expect(sent.filter((s) => s === 'commit')).toHaveLength(2)
    expect(sent).toContain('insert into "person" ("name") values ($1)')
  })

  it('work a finished transaction left behind is not an escape while another one is open', async () => {
    const later = gate()
    let leftBehind: Promise<unknown> | undefined
    await db.write.transaction().execute(async (tx) => {
      await tx.selectFrom('person').selectAll().execute()
      // Started inside the callback, runs after the commit: it no longer escapes anything.
      leftBehind = later.promise.then(() => db.read.selectFrom('person').selectAll().execute())
    })
    const secondMayEnd = gate()
    const second = db.write.transaction().execute(async (tx) => {
      await secondMayEnd.promise
      await tx.selectFrom('person').selectAll().execute()
    })
    await until(() => watchedTransactions() === 1)
    later.open()
    await expect(leftBehind).resolves.toEqual([])
    secondMayEnd.open()
    await second
  })

  it('the code that started a transaction is not inside it, before or after its first await', async () => {
    const mayEnd = gate()
    const transaction = db.write.transaction().execute(async (tx) => {
      await mayEnd.promise
      await tx.selectFrom('person').selectAll().execute()
    })
    // Synchronously after execute(): the scope is entered later, as BEGIN is sent.
    const synchronous = db.read.selectFrom('person').selectAll().execute()
    await until(() => watchedTransactions() === 1)
    await expect(synchronous).resolves.toEqual([])
    await expect(db.write.selectFrom('person').selectAll().execute()).resolves.toEqual([])
    mayEnd.open()
    await transaction
    await expect(db.read.selectFrom('person').selectAll().execute()).resolves.toEqual([])
  })

  it('a query on other backends inside the callback is not an escape of this one', async () => {
    const otherSent: string[] = []
    const other = createBackends<DB>({ dialect: 'postgres', primary: recordingDialect(otherSent) })
    try {
      await db.write.transaction().execute(async () => {
        await other.write.insertInto('person').values({ name: 'elsewhere' }).execute()
      })
      expect(otherSent).toEqual(['insert into "person" ("name") values ($1)'])
    } finally {
      await other.destroy()
    }
  })
})

describe('a transaction that does not get going', () => {
  it('a failed BEGIN leaves nothing watched', async () => {
    const failing = createBackends<DB>({ dialect: 'postgres', primary: recordingDialect([], 'begin') })
    try {
      await expect(failing.write.transaction().execute(async () => {})).rejects.toThrow('begin failed')
      expect(watchedTransactions()).toBe(0)
      await expect(failing.write.selectFrom('person').selectAll().execute()).resolves.toEqual([])
    } finally {
      await failing.destroy()
    }
  })

  it('a failed COMMIT, then its ROLLBACK, end the scope once', async () => {
    const failing = createBackends<DB>({ dialect: 'postgres', primary: recordingDialect([], 'commit') })
    try {
      await expect(failing.write.transaction().execute(async () => {})).rejects.toThrow('commit failed')
      expect(watchedTransactions()).toBe(0)
      await expect(failing.write.selectFrom('person').selectAll().execute()).resolves.toEqual([])
    } finally {
      await failing.destroy()
    }
  })
})

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  expect(check()).toBe(true)
}

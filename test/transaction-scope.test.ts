// Escape detection is paid for only while a write transaction is open: its scope is entered as Kysely
// begins the transaction and never reaches the code that started it. Node 24 carries it in an
// AsyncLocalStorage (AsyncContextFrame, no promise hooks); Node 20 and 22, where any promise hook slows the
// whole process for good, find it in the async stack of a query on an outer backend.
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
import { ESCAPE_WATCH, watchedTransactions } from '../src/guard/transaction-scope.js'
import { type Backends, createBackends, TransactionEscapeError } from '../src/index.js'

interface DB {
  person: { id: Generated<number>; name: string }
}

/** Kysely's PostgresDriver over fake pg clients that record each statement and answer no rows. */
function recordingDialect(sent: string[], failOn?: string): Dialect {
  const client = () => ({
    async query(config: string | { text: string; queryMode?: string }, parameters: readonly unknown[] = []) {
      // Kysely's pg driver may hand a query config (text, values, query mode) instead of the text.
      const text = typeof config === 'string' ? config : config.text
      if (text === failOn) throw new Error(`${text} failed`)
      sent.push(text)
      // As the server answers a Parse message holding two statements (the extended protocol).
      // node-postgres takes the extended protocol for a query with parameters, or when asked to.
      const extended = typeof config === 'string' ? parameters.length > 0 : config.queryMode === 'extended'
      if (extended && /;\s*\S/.test(text)) {
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
  it('never turns promise hooks on, before, during or after a transaction', async () => {
    await db.read.selectFrom('person').selectAll().execute()
    await db.write.insertInto('person').values({ name: 'Ada' }).execute()
    expect(await promiseHooksOn()).toBe(false)
    const during = await db.write.transaction().execute(async (tx) => {
      await tx.selectFrom('person').selectAll().execute()
      return promiseHooksOn()
    })
    // Node 24's AsyncContextFrame needs none; on Node 20 and 22 a hook, once on, would slow every later
    // promise of the process, so the async stack is searched instead.
    expect(during).toBe(false)
    expect(await promiseHooksOn()).toBe(false)
    await db.read.selectFrom('person').selectAll().execute()
    expect(await promiseHooksOn()).toBe(false)
  })

  it('looks at no stack while none of its write transactions is open', async () => {
    const capture = Error.captureStackTrace
    let captured = 0
    Error.captureStackTrace = (...args: Parameters<typeof capture>) => {
      captured++
      return capture(...args)
    }
    try {
      await db.read.selectFrom('person').selectAll().execute()
      await db.write.insertInto('person').values({ name: 'Ada' }).execute()
      expect(captured).toBe(0)
      await db.write.transaction().execute(async (tx) => {
        await tx.selectFrom('person').selectAll().execute()
        await escapeOf(db.read.selectFrom('person').selectAll().execute())
      })
      expect(captured).toBe(ESCAPE_WATCH === 'async-stack' ? 1 : 0)
      captured = 0
      await db.read.selectFrom('person').selectAll().execute()
      expect(captured).toBe(0)
    } finally {
      Error.captureStackTrace = capture
    }
  })
})

describe('escapes are found however the callback reaches the query', () => {
  const insideCallback: Record<string, (query: () => Promise<unknown>) => Promise<unknown>> = {
    'as its first statement': (query) => query(),
    'after an await': async (query) => {
      await null
      return await query()
    },
    'in a helper it returns': async (query) => {
      await null
      const helper = async () => query()
      return helper()
    },
    'in a helper it awaits, after the helper awaited something': async (query) => {
      const helper = async () => {
        await null
        return await query()
      }
      return await helper()
    },
    'under Promise.all': async (query) => (await Promise.all([query()]))[0],
    'thirty calls deep (past the default stack trace limit)': async (query) => {
      await null
      const deep = (n: number): Promise<unknown> => (n === 0 ? query() : deep(n - 1))
      return await deep(30)
    },
    'with an Error.prepareStackTrace of the app': async (query) => {
      const prepare = Error.prepareStackTrace
      Error.prepareStackTrace = () => 'formatted by the app'
      try {
        return await query()
      } finally {
        Error.prepareStackTrace = prepare
      }
    },
  }
  for (const [name, run] of Object.entries(insideCallback)) {
    it(name, async () => {
      // The callback awaits what it runs, as application code does.
      const escaped = await db.write.transaction().execute(async () => {
        try {
          await run(() => db.read.selectFrom('person').selectAll().execute())
          return undefined
        } catch (error) {
          return error
        }
      })
      expect(escaped).toBeInstanceOf(TransactionEscapeError)
    })
  }

  // What an async stack cannot show: the await chain is cut where the callback returns an async helper's
  // promise instead of awaiting it, for what the helper does after its own first await (and in .then
  // callbacks). Node 24 carries the scope through.
  it(`a query in a helper the callback returns un-awaited, after the helper's own await: ${
    ESCAPE_WATCH === 'async-context' ? 'found' : 'not found on Node 20 and 22'
  }`, async () => {
    const outcome = await db.write.transaction().execute(async () => {
      const helper = async () => {
        await null
        return escapeOf(db.read.selectFrom('person').selectAll().execute())
      }
      return helper()
    })
    if (ESCAPE_WATCH === 'async-context') expect(outcome).toBeInstanceOf(TransactionEscapeError)
    else expect(outcome).toBeUndefined()
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

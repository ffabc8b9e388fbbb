// One process of the process-wide cost benchmark (process.ts), started with IPC by its parent.
// Role `plain`: plain Kysely only, kysely-rw never loaded. Role `rw`: kysely-rw loaded, backends created
// (a primary and two replicas, health checks running) and used between the timed batches. Both time
// the same thing, plain Kysely's own queries on a driver that answers at once, so any difference is what
// kysely-rw costs the rest of the process.
import { Kysely } from 'kysely'
import { answeringDialect, cpuNow, passingDialect } from './answering.js'
import type { BenchDB } from './db.js'
import { QUERIES, type QuerySpec } from './queries.js'

/**
 * `rw-no-escapes`: as `rw`, with `detectTransactionEscapes: false`, to tell escape detection's share.
 * `passing`: as `plain`, but its other Kysely runs over a driver that only wraps the connections (no kysely-rw):
 * what other classes at Kysely's call sites cost by themselves.
 */
export type ChildRole = 'plain' | 'passing' | 'rw' | 'rw-no-escapes'

export type ToChild =
  | {
      readonly type: 'batch'
      readonly query: 'read' | 'write'
      readonly size: number
      /** Whether the untimed work before the batch includes a write transaction (opened and closed). */
      readonly transactions: boolean
    }
  | { readonly type: 'transaction'; readonly open: boolean }
  | { readonly type: 'exit' }

export type FromChild =
  | { readonly type: 'ready'; readonly node: string }
  | { readonly type: 'batch'; readonly ms: number }
  | { readonly type: 'transaction'; readonly open: boolean; readonly watched: number }
  | { readonly type: 'failed'; readonly message: string }

const [pk, , insert, , tx] = QUERIES as [QuerySpec, QuerySpec, QuerySpec, QuerySpec, QuerySpec]

/** The work a process does besides the timed queries: its own clients' reads, writes and a write transaction. */
interface Side {
  /** Untimed, before every timed batch: what the rest of an app does with its database layer. */
  work(transactions: boolean): Promise<void>
  /** rw only: holds a write transaction open until the next call with `false`. */
  transaction(open: boolean): Promise<number>
}

async function plainSide(passing: boolean): Promise<Side> {
  // The same shape of work as the rw side, on another plain Kysely, so that both processes make
  // comparable garbage and warm comparable code between the timed batches.
  const other = new Kysely<BenchDB>({ dialect: passing ? passingDialect() : answeringDialect() })
  const side: Side = {
    async work(transactions) {
      for (let i = 0; i < 4; i++) await pk.run(other)
      await insert.run(other)
      await insert.run(other)
      await pk.run(other)
      if (transactions) await tx.run(other)
    },
    async transaction() {
      return 0
    },
  }
  await side.work(true)
  return side
}

async function rwSide(detectTransactionEscapes: boolean): Promise<Side> {
  const { createBackends, watchedTransactions } = await import('./kysely-rw.js')
  const db = createBackends<BenchDB>({
    dialect: 'postgres',
    primary: answeringDialect(),
    replicas: [answeringDialect(), answeringDialect()],
    detectTransactionEscapes,
  })
  const deadline = Date.now() + 10_000
  while (!db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null)) {
    if (Date.now() > deadline) throw new Error('kysely-rw replicas not up after 10 s of health checks')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const k = (backend: unknown) => backend as Kysely<BenchDB>
  const session = db.session()
  let release: (() => void) | undefined
  let held: Promise<unknown> | undefined
  const side: Side = {
    async work(transactions) {
      for (let i = 0; i < 4; i++) await pk.run(k(db.read))
      await insert.run(k(db.write))
      await insert.run(k(session.write))
      await pk.run(k(session.read))
      if (transactions) await tx.run(k(db.write))
    },
    async transaction(open) {
      if (open && !release) {
        let entered: () => void = () => {}
        const inside = new Promise<void>((resolve) => {
          entered = resolve
        })
        held = db.write.transaction().execute(async (t) => {
          await pk.run(k(t))
          entered()
          await new Promise<void>((resolve) => {
            release = resolve
          })
        })
        await inside
      } else if (!open && release) {
        release()
        release = undefined
        await held
      }
      return watchedTransactions()
    },
  }
  // Every kind of use before the measurement: reads, writes, a session, a write transaction, then none open.
  await side.work(true)
  if (watchedTransactions() !== 0) throw new Error('a write transaction is still watched after the set-up')
  return side
}

async function main(): Promise<void> {
  const role = process.argv[2] as ChildRole
  if (role !== 'plain' && role !== 'passing' && role !== 'rw' && role !== 'rw-no-escapes') {
    throw new Error(`unknown role ${role}`)
  }
  const send = (message: FromChild) => process.send?.(message)
  const side =
    role === 'plain' || role === 'passing' ? await plainSide(role === 'passing') : await rwSide(role === 'rw')
  const plain = new Kysely<BenchDB>({ dialect: answeringDialect() })
  process.on('message', (message: ToChild) => {
    void (async () => {
      try {
        if (message.type === 'exit') {
          process.disconnect()
          process.exit(0)
        } else if (message.type === 'transaction') {
          send({ type: 'transaction', open: message.open, watched: await side.transaction(message.open) })
        } else {
          await side.work(message.transactions)
          const run = message.query === 'read' ? pk.run : insert.run
          const start = cpuNow()
          for (let i = 0; i < message.size; i++) await run(plain)
          send({ type: 'batch', ms: cpuNow() - start })
        }
      } catch (error) {
        send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
      }
    })()
  })
  send({ type: 'ready', node: process.version })
}

main().catch((error) => {
  process.send?.({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  process.exitCode = 1
})

// Reads that cannot move to another node when theirs fails: a stream and a read transaction on a replica that
// is killed or frozen (SIGSTOP) under them, and a session read whose write's position only the primary can
// give, with the primary frozen right after the write. Each ends within the deadlines, with a kysely-rw error
// that names the node, and the replica's connections go back to its pool.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  createBackends,
  NoReplicaAvailableError,
  PrimaryUnavailableError,
  WriteOnReadBackendError,
} from '../src/index.js'
import { replication } from './harness/control.js'
import { type Family, families, type TestDB } from './support/databases.js'
import { until } from './support/load.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const ROWS = 2_000
const SECRET = 'apppw'

/** The primary's server processes, to stop at an exact moment: found first, signalled synchronously. */
function primaryProcesses(family: Family): number[] {
  const env = replication()
  if (family.dialect === 'mysql') {
    return [Number(readFileSync(path.join(env.mariadb.dir, 'primary.pid'), 'utf8').trim())]
  }
  const postmaster = readFileSync(path.join(env.postgres.dir, 'primary', 'postmaster.pid'), 'utf8').split('\n')[0]
  const children = execFileSync('pgrep', ['-P', String(postmaster)])
    .toString()
    .split('\n')
    .filter(Boolean)
  return [postmaster, ...children].map(Number)
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals) {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {}
  }
}

/** How `run` ended, and when; a promise still pending after `capMs` counts as pending. */
async function outcome(run: Promise<unknown>, capMs = 15_000) {
  const started = Date.now()
  const settled = await Promise.race([
    run.then(
      (value) => ({ value, error: undefined as unknown }),
      (error: unknown) => ({ value: undefined, error }),
    ),
    sleep(capMs).then(() => 'pending' as const),
  ])
  return { settled, ms: Date.now() - started }
}

function expectReadLost(error: unknown, node: RegExp) {
  expect(error).toBeInstanceOf(NoReplicaAvailableError)
  const { message } = error as Error
  expect(message).toMatch(node)
  expect(message).toMatch(/run it again/)
  expect(JSON.stringify({ message, stack: (error as Error).stack })).not.toContain(SECRET)
  expect((error as Error).cause).toBeDefined()
}

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<TestDB>

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<TestDB>({ dialect: family.dialect, primary: family.primaryUrl, replicas: [family.replicaUrl] })
    await family.createItems(db.write, 'items')
    await db.write
      .insertInto('items')
      .values(Array.from({ length: ROWS }, (_, i) => ({ name: `row ${i}`, qty: i })))
      .execute()
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await db?.destroy()
  })

  /** Fresh backends on replica 1 alone, checked once, so that a test's fault starts from a replica that is up. */
  async function backends() {
    const one = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
    })
    await until(() => one.replicas()[0]?.state === 'up' && one.replicas()[0]?.lastCheck != null, 'first check')
    return one
  }

  /** A stream and a read transaction on the replica, each in the middle of its work when `fault` strikes. */
  async function readsUnder(fault: () => Promise<void>) {
    const one = await backends()
    let streamed = 0
    const stream = (async () => {
      // A cross join: far more rows than the client's socket buffers hold when the fault strikes.
      const rows = one.read.selectFrom('items as a').innerJoin('items as b', (join) => join.onTrue())
      for await (const _row of rows.select(['a.name', 'b.qty']).stream(100)) {
        if (++streamed === 200) await sleep(300)
      }
      return streamed
    })()
    const transaction = one.read.transaction().execute(async (tx) => {
      await tx.selectFrom('items').select('qty').limit(1).execute()
      await sleep(300)
      return tx.selectFrom('items').select('qty').limit(1).execute()
    })
    await sleep(100)
    const faulted = Date.now()
    await fault()
    const [streamEnd, transactionEnd] = await Promise.all([outcome(stream), outcome(transaction)])
    // Their connections went back: the next read runs (on the primary, the replica being out).
    const after = await outcome(one.read.selectFrom('items').select('qty').limit(1).execute(), 5_000)
    return { one, streamEnd, transactionEnd, after, faulted }
  }

  it('ends a stream and a read transaction whose replica is killed under them, naming the replica', async () => {
    let result: Awaited<ReturnType<typeof readsUnder>> | undefined
    try {
      result = await readsUnder(() => family.control.killReplica())
      const { streamEnd, transactionEnd, after } = result
      console.info(`${family.dialect} killed: stream ${streamEnd.ms} ms, transaction ${transactionEnd.ms} ms`)
      expect(streamEnd.settled).not.toBe('pending')
      expect(streamEnd.ms).toBeLessThan(3_000)
      expectReadLost((streamEnd.settled as { error: unknown }).error, /replica 1 \w+:\/\/[^ ]+:\d+\/app/)
      expect(transactionEnd.settled).not.toBe('pending')
      expectReadLost((transactionEnd.settled as { error: unknown }).error, /replica 1 \w+:\/\/[^ ]+:\d+\/app/)
      expect(after.settled).not.toBe('pending')
      expect((after.settled as { error: unknown }).error).toBeUndefined()
    } finally {
      await family.control.startReplica()
      await result?.one.destroy()
      await family.control.waitForReplicaCatchUp()
    }
  })

  it('ends a stream and a read transaction whose replica freezes under them once it is found down', async () => {
    let result: Awaited<ReturnType<typeof readsUnder>> | undefined
    try {
      result = await readsUnder(() => family.control.freezeReplica())
      const { streamEnd, transactionEnd, after } = result
      console.info(`${family.dialect} frozen: stream ${streamEnd.ms} ms, transaction ${transactionEnd.ms} ms`)
      // Found down within one interval plus the check deadline (2 s by default).
      expect(streamEnd.settled).not.toBe('pending')
      expect(streamEnd.ms).toBeLessThan(3_500)
      expectReadLost((streamEnd.settled as { error: unknown }).error, /replica 1 /)
      expect(transactionEnd.settled).not.toBe('pending')
      expect(transactionEnd.ms).toBeLessThan(3_500)
      expectReadLost((transactionEnd.settled as { error: unknown }).error, /replica 1 /)
      expect(after.settled).not.toBe('pending')
      expect((after.settled as { error: unknown }).error).toBeUndefined()
    } finally {
      await family.control.thawReplica()
      await result?.one.destroy()
    }
  })

  it('still refuses a write in a stream, and a stream left early still gives its connection back', async () => {
    const attempt = (async () => {
      for await (const _row of (db.read as any).deleteFrom('items').returning('id').stream()) {
        // never reached
      }
    })()
    await expect(attempt).rejects.toBeInstanceOf(WriteOnReadBackendError)
    for (let round = 0; round < 12; round++) {
      for await (const row of db.read.selectFrom('items').select('qty').orderBy('qty').stream(5)) {
        if (row.qty >= 2) break
      }
    }
    const count = await db.read
      .selectFrom('items')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    expect(Number(count.n)).toBe(ROWS)
  })

  it("fails a session read, naming the primary, when the primary freezes before its write's position is read", async () => {
    let frozen = false
    const one = await backends()
    let primary: number[] = []
    const s = one.session()
    const read = () => s.read.selectFrom('items').select('qty').where('name', '=', 'frozen-b').executeTakeFirst()
    try {
      await s.write.insertInto('items').values({ name: 'frozen-a', qty: 1 }).execute()
      // Listed now: the server's process for each connection open, the one the writes use included.
      primary = primaryProcesses(family)
      // The second write of a run: on PostgreSQL its position is read after it, on a connection of its own.
      await s.write.insertInto('items').values({ name: 'frozen-b', qty: 2 }).execute()
      // Before the turn of the event loop that sends the read of its position.
      signalAll(primary, 'SIGSTOP')
      frozen = true
      const first = await outcome(read())
      const second = await outcome(read())
      console.info(`${family.dialect} primary frozen: first read ${first.ms} ms, second ${second.ms} ms`)
      for (const end of [first, second]) {
        expect(end.settled).not.toBe('pending')
        const { value, error } = end.settled as { value: unknown; error: unknown }
        if (error === undefined) {
          // MariaDB: the write's reply carried its position; a replica that has it serves the read.
          expect(family.dialect).toBe('mysql')
          expect(value).toEqual({ qty: 2 })
          expect(end.ms).toBeLessThan(1_500)
          continue
        }
        expect(error).toBeInstanceOf(PrimaryUnavailableError)
        expect((error as Error).message).toMatch(/primary .*\w+:\/\/[^ ]+:\d+\/app/)
        expect((error as Error).message).toMatch(/retry/i)
        expect((error as Error).message).not.toContain(SECRET)
        // PostgreSQL: only the primary knows the position. The first read waits for its read until the primary
        // misses two checks in a row and is cut off (3-4 s by default: the first check after the freeze starts within an
        // interval, and a tick that comes while it runs out its deadline joins it); the next
        // fails at once. MariaDB knows it; the replica missed the write, so the read waits its budget
        // (readYourWrites.maxWaitMs, 1000), then tries the primary for one connection attempt (connectMs, 5000).
        const bound = family.dialect === 'mysql' ? 6_500 : end === first ? 4_700 : 300
        expect(end.ms).toBeLessThan(bound)
      }
    } finally {
      if (frozen) signalAll(primary, 'SIGCONT')
    }
    // Back: the session reads its own write, never a stale row.
    let back: unknown
    for (let attempt = 0; attempt < 20 && back === undefined; attempt++) {
      back = await read().catch(() => undefined)
      if (back === undefined) await sleep(250)
    }
    expect(back).toEqual({ qty: 2 })
    await one.destroy()
  })
})

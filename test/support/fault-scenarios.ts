// The fault scenarios of issue #9, as functions that return what an operator would watch. The
// integration tests assert their targets; `npm run bench` (bench/lib/faults.ts) reports the same figures.
import { execFile, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { Generated } from 'kysely'
import mysql from 'mysql2/promise'
import { type BackendEvent, type Backends, createBackends, type WriteBackend } from '../../src/index.js'
import type { MariaDbPair, PostgresPair, ReplicaControl } from '../harness/replication.js'
import { percentile, startLoad, throughput, until } from './load.js'

export interface ScenarioTarget {
  readonly dialect: 'postgres' | 'mysql'
  readonly primaryUrl: string
  readonly replicaUrls: readonly [string, string]
  readonly controls: readonly [ReplicaControl, ReplicaControl]
  /** Creates (or re-creates) `table (id, name, qty)` through the write backend. */
  createTable(db: WriteBackend<any>, table: string): Promise<void>
}

interface Row {
  id: Generated<number>
  name: string
  qty: number
}

type DB = Record<string, Row>

const execFileAsync = promisify(execFile)

async function upAndCaughtUp(target: ScenarioTarget, db: Backends<DB>, table: string): Promise<void> {
  await target.createTable(db.write, table)
  await Promise.all(target.controls.map((control) => control.waitForReplicaCatchUp()))
  await until(() => db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')
}

export interface HungReplicaResult {
  readonly workers: number
  readonly freezeMs: number
  readonly operations: number
  readonly reads: number
  readonly failed: number
  readonly firstErrors: readonly string[]
  readonly slowestMs: number
  readonly p99Ms: number
  /** From SIGSTOP until `replicas()` no longer said `up`. */
  readonly outOfRotationMs: number
  readonly throughputBefore: number
  readonly throughputDuring: number
  /** `destroy()` with the replica still frozen. */
  readonly destroyMs: number
  readonly downEvent: boolean
  /** `down` events per replica name. */
  readonly downEvents: Readonly<Record<string, number>>
  /** The first `down` event's error, for the first frozen replica: it names the cause, not kysely-rw's cut. */
  readonly firstDownError: string | undefined
  readonly fallbacksByReason: Readonly<Record<string, number>>
  /** Reads refused because the primary's fallback budget was spent (`fallbackReads`). */
  readonly fallbacksRefused: number
}

/**
 * Replica 1's server processes (with `both`, both replicas') stopped (SIGSTOP) for `freezeMs` while
 * `workers` loops do 90% reads and 10% writes on default options; resumed (SIGCONT) before returning,
 * also on failure.
 */
export async function hungReplica(
  target: ScenarioTarget,
  workers = 40,
  freezeMs = 8_000,
  both = false,
): Promise<HungReplicaResult> {
  const controls = both ? target.controls : target.controls.slice(0, 1)
  const events: BackendEvent[] = []
  const db = createBackends<DB>({
    dialect: target.dialect,
    primary: target.primaryUrl,
    replicas: target.replicaUrls,
    onEvent: (event) => events.push(event),
  })
  let frozen = false
  try {
    await upAndCaughtUp(target, db, 'hung_items')
    const load = startLoad(
      workers,
      async (worker, i) => {
        if (i % 10 === 0) {
          await db.write
            .insertInto('hung_items')
            .values({ name: `w${worker}-${i}`, qty: i })
            .execute()
          return 'write'
        }
        await db.read.selectFrom('hung_items').select('id').orderBy('id', 'desc').limit(1).execute()
        return 'read'
      },
      { maxMs: freezeMs + 30_000 },
    )
    await sleep(2_000)
    const frozenAt = Date.now()
    await Promise.all(controls.map((control) => control.freezeReplica()))
    frozen = true
    await until(
      () => db.replicas().every((r, i) => i >= controls.length || r.state !== 'up'),
      'the frozen replicas to leave rotation',
      freezeMs,
    )
    const outOfRotationMs = Date.now() - frozenAt
    await sleep(Math.max(0, freezeMs - (Date.now() - frozenAt)))
    const operations = await load.stop()
    const destroyStarted = Date.now()
    await db.destroy()
    const destroyMs = Date.now() - destroyStarted
    const failed = operations.filter((op) => op.error)
    return {
      workers,
      freezeMs,
      operations: operations.length,
      reads: operations.filter((op) => op.kind === 'read').length,
      failed: failed.length,
      firstErrors: failed.slice(0, 3).map((op) => String(op.error)),
      slowestMs: slowest(operations),
      p99Ms: percentile(
        operations.map((op) => op.ms),
        99,
      ),
      outOfRotationMs,
      throughputBefore: throughput(operations, frozenAt - 1_500, frozenAt),
      throughputDuring: throughput(operations, frozenAt, frozenAt + freezeMs),
      destroyMs,
      downEvent: events.some((e) => e.type === 'down' && e.replica === db.replicas()[0]?.name),
      downEvents: events.reduce<Record<string, number>>((counts, e) => {
        if (e.type === 'down') counts[e.replica] = (counts[e.replica] ?? 0) + 1
        return counts
      }, {}),
      firstDownError: events.flatMap((e) =>
        e.type === 'down' && e.replica === db.replicas()[0]?.name ? [e.error] : [],
      )[0],
      fallbacksByReason: db.stats().fallbacksByReason,
      fallbacksRefused: db.stats().fallbacksRefused,
    }
  } finally {
    // A stopped server left behind would block every later run and the removal of its directory.
    if (frozen) await Promise.all(controls.map((control) => control.thawReplica()))
    await db.destroy()
    await Promise.all(controls.map((control) => control.waitForReplicaCatchUp(30_000)))
  }
}

export interface LagUnderLoadResult {
  readonly maxWaitMs: number
  /** Session users writing then reading back, and the replicas whose replay is paused. */
  readonly sessionUsers: number
  readonly replicas: number
  readonly sessionReads: number
  readonly slowestSessionReadMs: number
  readonly plainReads: number
  readonly plainReadP99Ms: number
  readonly stale: number
  readonly errors: number
  readonly firstErrors: readonly string[]
  readonly waits: number
  /** Session reads that checked a replica in their own round trip, and those that found it behind. */
  readonly replayChecks: number
  readonly replayCheckMisses: number
  readonly fallbacksByReason: Readonly<Record<string, number>>
}

const SESSION_USERS = 40

/** Replay paused on both replicas; 40 session users write then read back, 20 plain readers read. */
export async function lagUnderLoad(
  target: ScenarioTarget,
  maxWaitMs = 500,
  runMs = 4_000,
): Promise<LagUnderLoadResult> {
  const db = createBackends<DB>({
    dialect: target.dialect,
    primary: target.primaryUrl,
    replicas: target.replicaUrls,
    readYourWrites: { maxWaitMs },
  })
  try {
    await upAndCaughtUp(target, db, 'lag_items')
    for (const control of target.controls) await control.pauseReplay()
    let stale = 0
    const sessionReads: number[] = []
    const plainReads: number[] = []
    const sessions = startLoad(
      SESSION_USERS,
      async (user, i) => {
        const session = db.session()
        const name = `u${user}-${i}`
        await session.write.insertInto('lag_items').values({ name, qty: i }).execute()
        const started = Date.now()
        const row = await session.read.selectFrom('lag_items').select('qty').where('name', '=', name).executeTakeFirst()
        sessionReads.push(Date.now() - started)
        if (row?.qty !== i) stale++
        return 'session'
      },
      { maxMs: runMs },
    )
    const readers = startLoad(
      20,
      async () => {
        const started = Date.now()
        await db.read.selectFrom('lag_items').select('id').limit(1).execute()
        plainReads.push(Date.now() - started)
        return 'plain'
      },
      { maxMs: runMs },
    )
    await sleep(runMs)
    const operations = [...(await sessions.stop()), ...(await readers.stop())]
    const errors = operations.filter((op) => op.error)
    const stats = db.stats()
    return {
      maxWaitMs,
      sessionUsers: SESSION_USERS,
      replicas: target.replicaUrls.length,
      sessionReads: sessionReads.length,
      slowestSessionReadMs: Math.max(...sessionReads),
      plainReads: plainReads.length,
      plainReadP99Ms: percentile(plainReads, 99),
      stale,
      errors: errors.length,
      firstErrors: errors.slice(0, 3).map((op) => String(op.error)),
      waits: stats.waits,
      replayChecks: stats.replayChecks,
      replayCheckMisses: stats.replayCheckMisses,
      fallbacksByReason: stats.fallbacksByReason,
    }
  } finally {
    for (const control of target.controls) await control.resumeReplay()
    await db.destroy()
  }
}

/** Freezes and resumes one server's processes: SIGSTOP / SIGCONT, a hung node. */
export interface ProcessControl {
  freeze(): Promise<void>
  /** Always call it in cleanup: a stopped server cannot be removed. */
  thaw(): Promise<void>
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch (error) {
      // A child that exited since it was listed has nothing left to stop or resume.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
}

/** A PostgreSQL server by its data directory: the postmaster and its children. */
export function postgresProcesses(dataDir: string): ProcessControl {
  const pids = async () => {
    const postmaster = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
    const { stdout } = await execFileAsync('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }))
    return [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)]
  }
  let frozen: number[] = []
  return {
    async freeze() {
      frozen = await pids()
      signalAll(frozen, 'SIGSTOP')
    },
    async thaw() {
      signalAll(frozen, 'SIGCONT')
      frozen = []
    },
  }
}

/** A mariadbd by its pid file (one process). */
export function mariaDbProcess(pidFile: string): ProcessControl {
  let frozen: number[] = []
  return {
    async freeze() {
      frozen = [Number((await readFile(pidFile, 'utf8')).trim())]
      signalAll(frozen, 'SIGSTOP')
    },
    async thaw() {
      signalAll(frozen, 'SIGCONT')
      frozen = []
    },
  }
}

/** Starts a PostgreSQL primary that `killPrimary()` stopped again: after a failover, an old primary that still thinks it is one. */
export async function restartPostgresPrimary(pair: PostgresPair): Promise<void> {
  const pgCtl = path.join(pair.binDir, 'pg_ctl')
  const args = ['-D', path.join(pair.dir, 'primary'), '-l', path.join(pair.dir, 'primary.log'), '-w', 'start']
  const [file, argv] = pair.runAs ? ['runuser', ['-u', pair.runAs, '--', pgCtl, ...args]] : [pgCtl, args]
  await execFileAsync(file, argv, { cwd: pair.dir })
}

/**
 * Starts a MariaDB primary that `killPrimary()` killed again, writable as it was: its command line is
 * replica 1's (test/harness/replication.ts) with the primary's directory, port and server id 1, binary
 * log on and read_only off.
 */
export async function restartMariaDbPrimary(pair: MariaDbPair): Promise<void> {
  const port = new URL(pair.primaryUrl).port
  const [file, ...args] = [
    ...pair.replicaCommand
      .filter((arg) => arg !== '--read-only=1')
      .map((arg) =>
        arg
          .replaceAll(`${pair.dir}/replica`, `${pair.dir}/primary`)
          .replace(/^--port=\d+$/, `--port=${port}`)
          .replace(/^--server-id=\d+$/, '--server-id=1'),
      ),
    '--log-bin=mysql-bin',
    '--binlog-format=ROW',
  ]
  const server = spawn(file as string, args, { detached: true, stdio: 'ignore' })
  server.unref()
  const admin = pair.adminPrimaryUrl.replace(/\/app$/, '/')
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const connection = await mysql.createConnection({ uri: admin, connectTimeout: 2_000 })
      await connection.end()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await sleep(100)
    }
  }
}

export interface HungPrimaryResult {
  readonly freezeMs: number
  readonly reads: number
  readonly failedReads: number
  readonly firstReadErrors: readonly string[]
  readonly slowestReadMs: number
  readonly readThroughputBefore: number
  readonly readThroughputDuring: number
  readonly writes: number
  /** Errors of the writes that failed, by name. */
  readonly writeErrors: Readonly<Record<string, number>>
  readonly slowestWriteMs: number
  /** After SIGCONT, until a write succeeded. */
  readonly writesBackMs: number | undefined
  /** `destroy()` of a second backends group, with the primary frozen and writes in flight on it. */
  readonly destroyMs: number
  /** Workers that both read and write (every 10th operation a write): their reads per second, before and during. */
  readonly mixedReadThroughputBefore: number
  readonly mixedReadThroughputDuring: number
}

/**
 * The primary's server processes stopped (SIGSTOP) for `freezeMs` while `readers` loops read and
 * `writers` loops write, on default options; resumed (SIGCONT) before returning, also on failure.
 */
export async function hungPrimary(
  target: Pick<ScenarioTarget, 'dialect' | 'primaryUrl' | 'replicaUrls' | 'createTable'>,
  primary: ProcessControl,
  { readers = 30, writers = 6, mixed = 10, freezeMs = 6_000 } = {},
): Promise<HungPrimaryResult> {
  const config = { dialect: target.dialect, primary: target.primaryUrl, replicas: target.replicaUrls }
  const db = createBackends<DB>(config)
  const other = createBackends<DB>(config)
  let frozen = false
  try {
    await target.createTable(db.write, 'hung_primary_items')
    await until(() => db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')
    await until(() => other.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')
    const write = (backends: Backends<DB>, name: string) =>
      backends.write.insertInto('hung_primary_items').values({ name, qty: 1 }).execute()
    const reading = startLoad(
      readers,
      async () => {
        await db.read.selectFrom('hung_primary_items').select('id').limit(1).execute()
        return 'read'
      },
      { maxMs: freezeMs + 20_000 },
    )
    const writing = startLoad(
      writers,
      async (worker, i) => {
        await write(db, `w${worker}-${i}`)
        return 'write'
      },
      { maxMs: freezeMs + 20_000 },
    )
    // As an app's request handlers do: a write now and then among the reads. A write that waits on the frozen
    // primary holds its worker's reads back as long.
    const mixing = startLoad(
      mixed,
      async (worker, i) => {
        if (i % 10 === 0) {
          await write(db, `m${worker}-${i}`)
          return 'write'
        }
        await db.read.selectFrom('hung_primary_items').select('id').limit(1).execute()
        return 'read'
      },
      { maxMs: freezeMs + 20_000 },
    )
    // The second group's writes are in flight on the primary when it freezes, and when it is destroyed.
    const otherWrites = startLoad(
      4,
      async (worker, i) => {
        await write(other, `o${worker}-${i}`)
        return 'write'
      },
      { maxMs: freezeMs + 20_000 },
    )
    await sleep(1_500)
    const frozenAt = Date.now()
    await primary.freeze()
    frozen = true
    await sleep(1_000)
    const destroyStarted = Date.now()
    await other.destroy()
    const destroyMs = Date.now() - destroyStarted
    await otherWrites.stop()
    await sleep(Math.max(0, freezeMs - (Date.now() - frozenAt)))
    await primary.thaw()
    frozen = false
    const thawedAt = Date.now()
    let writesBackMs: number | undefined
    while (writesBackMs === undefined && Date.now() - thawedAt < 10_000) {
      try {
        await write(db, 'after')
        writesBackMs = Date.now() - thawedAt
      } catch {
        await sleep(20)
      }
    }
    const reads = await reading.stop()
    const writes = await writing.stop()
    const mixedReads = (await mixing.stop()).filter((op) => op.kind === 'read')
    const failedReads = reads.filter((op) => op.error)
    const writeErrors: Record<string, number> = {}
    for (const op of writes) {
      if (op.error) writeErrors[(op.error as Error).name] = (writeErrors[(op.error as Error).name] ?? 0) + 1
    }
    return {
      freezeMs,
      reads: reads.length,
      failedReads: failedReads.length,
      firstReadErrors: failedReads.slice(0, 3).map((op) => String(op.error)),
      slowestReadMs: slowest(reads),
      readThroughputBefore: throughput(reads, frozenAt - 1_000, frozenAt),
      readThroughputDuring: throughput(reads, frozenAt, frozenAt + freezeMs),
      writes: writes.length,
      writeErrors,
      slowestWriteMs: slowest(writes),
      writesBackMs,
      destroyMs,
      mixedReadThroughputBefore: throughput(mixedReads, frozenAt - 1_000, frozenAt),
      mixedReadThroughputDuring: throughput(mixedReads, frozenAt, frozenAt + freezeMs),
    }
  } finally {
    if (frozen) await primary.thaw()
    await Promise.all([db.destroy(), other.destroy()])
  }
}

/** The longest operation's time; a reduce, since a spread of many thousands of failed writes overflows the stack. */
function slowest(operations: readonly { readonly ms: number }[]): number {
  return operations.reduce((max, op) => Math.max(op.ms, max), Number.NEGATIVE_INFINITY)
}

// The fault scenarios of issue #9, as functions that return what an operator would watch. The
// integration tests assert their targets; `npm run bench` (bench/lib/faults.ts) reports the same figures.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Generated } from 'kysely'
import { type BackendEvent, type Backends, createBackends, type WriteBackend } from '../../src/index.js'
import type { ReplicaControl } from '../harness/replication.js'
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
}

/**
 * Replica 1's server processes stopped (SIGSTOP) for `freezeMs` while `workers` loops do 90% reads and
 * 10% writes on default options; resumed (SIGCONT) before returning, also on failure.
 */
export async function hungReplica(target: ScenarioTarget, workers = 40, freezeMs = 8_000): Promise<HungReplicaResult> {
  const [control] = target.controls
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
    await control.freezeReplica()
    frozen = true
    await until(() => db.replicas()[0]?.state !== 'up', 'the frozen replica to leave rotation', freezeMs)
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
      slowestMs: Math.max(...operations.map((op) => op.ms)),
      p99Ms: percentile(
        operations.map((op) => op.ms),
        99,
      ),
      outOfRotationMs,
      throughputBefore: throughput(operations, frozenAt - 1_500, frozenAt),
      throughputDuring: throughput(operations, frozenAt, frozenAt + freezeMs),
      destroyMs,
      downEvent: events.some((e) => e.type === 'down' && e.replica === db.replicas()[0]?.name),
    }
  } finally {
    // A stopped server left behind would block every later run and the removal of its directory.
    if (frozen) await control.thawReplica()
    await db.destroy()
    await control.waitForReplicaCatchUp(30_000)
  }
}

export interface LagUnderLoadResult {
  readonly maxWaitMs: number
  readonly sessionReads: number
  readonly slowestSessionReadMs: number
  readonly plainReads: number
  readonly plainReadP99Ms: number
  readonly stale: number
  readonly errors: number
  readonly firstErrors: readonly string[]
  readonly waits: number
  readonly fallbacksByReason: Readonly<Record<string, number>>
}

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
      40,
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
      sessionReads: sessionReads.length,
      slowestSessionReadMs: Math.max(...sessionReads),
      plainReads: plainReads.length,
      plainReadP99Ms: percentile(plainReads, 99),
      stale,
      errors: errors.length,
      firstErrors: errors.slice(0, 3).map((op) => String(op.error)),
      waits: stats.waits,
      fallbacksByReason: stats.fallbacksByReason,
    }
  } finally {
    for (const control of target.controls) await control.resumeReplay()
    await db.destroy()
  }
}

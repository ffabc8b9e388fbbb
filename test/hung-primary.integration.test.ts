// A primary that hangs instead of failing: its server processes stopped with SIGSTOP (a frozen VM, a
// partition that drops packets) while readers read and writers write, with default options. Reads keep
// going on the replicas; writes fail within a bounded time (PrimaryUnavailableError, or
// WriteOutcomeUnknownError for those in flight), never waiting for TCP to give up; once the primary
// answers again, writes succeed with no restart; destroy() returns within its bound meanwhile.
import path from 'node:path'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import { createBackends, PrimaryUnavailableError, readSql } from '../src/index.js'
import { replication } from './harness/control.js'
import { type Family, families, type Item, scenarioTarget, type TestDB } from './support/databases.js'
import { hungPrimary, mariaDbProcess, type ProcessControl, postgresProcesses } from './support/fault-scenarios.js'
import { until } from './support/load.js'

// Default timeouts.destroyMs is 5000.
const DESTROY_BOUND_MS = 5_000 + 1_500

/** The shared pair's primary, as processes to freeze (SIGSTOP) and thaw. */
function primaryOf(family: Family): ProcessControl {
  const env = replication()
  return family.dialect === 'postgres'
    ? postgresProcesses(path.join(env.postgres.dir, 'primary'))
    : mariaDbProcess(path.join(env.mariadb.dir, 'primary.pid'))
}

/** A statement that runs for half a second on the family's server. */
const halfSecond = (family: Family) =>
  sql.raw(family.dialect === 'postgres' ? 'select pg_sleep(0.5) as s' : 'select sleep(0.5) as s')

/**
 * Starts `run` on the primary, freezes it 100 ms later, and says how `run` ended: its error and when. Bounded at
 * 10 s, so that a call that never ends fails the test, and the caller still thaws the primary.
 */
async function frozenUnder(
  primary: ProcessControl,
  run: () => Promise<unknown>,
): Promise<{ error: unknown; ms: number }> {
  const started = performance.now()
  const ended = run().then(
    () => ({ error: undefined, ms: performance.now() - started }),
    (error: unknown) => ({ error, ms: performance.now() - started }),
  )
  await new Promise((resolve) => setTimeout(resolve, 100))
  await primary.freeze()
  return Promise.race([
    ended,
    new Promise<{ error: unknown; ms: number }>((resolve) =>
      setTimeout(() => resolve({ error: 'still pending after 10 s', ms: 10_000 }), 10_000),
    ),
  ])
}

describe.each(families)('%s', (_name, familyOf) => {
  it('keeps reads going and fails writes in bounded time with the primary frozen for 6 s', async () => {
    const family = familyOf()
    const primary = primaryOf(family)
    const result = await hungPrimary(scenarioTarget(family), primary)
    console.info(`${family.dialect}: ${JSON.stringify(result)}`)
    expect(result.firstReadErrors).toEqual([])
    expect(result.failedReads).toBe(0)
    expect(result.slowestReadMs).toBeLessThan(1_000)
    expect(result.readThroughputDuring).toBeGreaterThanOrEqual(0.3 * result.readThroughputBefore)
    // Writes fail, none hangs: two missed checks cut the primary's connections.
    expect(Object.keys(result.writeErrors)).not.toHaveLength(0)
    for (const name of Object.keys(result.writeErrors)) {
      expect(['PrimaryUnavailableError', 'WriteOutcomeUnknownError']).toContain(name)
    }
    expect(result.slowestWriteMs).toBeLessThan(5_000)
    expect(result.writesBackMs).toBeDefined()
    expect(result.writesBackMs).toBeLessThan(2_000)
    expect(result.destroyMs).toBeLessThan(DESTROY_BOUND_MS)
    // Once the primary is known to hang, writes are refused at once: a worker that also reads is not held.
    expect(result.mixedReadThroughputDuring).toBeGreaterThanOrEqual(0.3 * result.mixedReadThroughputBefore)
  })

  // Default health checks: every 1000 ms, each within 1000 ms; two missed ones cut the primary off.
  it('ends reads that fell back to the frozen primary once it misses its checks, and refuses later ones at once', async () => {
    const family = familyOf()
    const primary = primaryOf(family)
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      maxReplicaLagMs: 300,
    })
    try {
      await family.createItems(db.write, 'hung_fallback_items')
      await until(() => db.replicas()[0]?.state === 'up', 'the replica up')
      // The replica drained for lag: reads fall back to the primary.
      await family.control.pauseReplay()
      await sql`insert into hung_fallback_items (name, qty) values ('lag', 1)`.execute(db.write)
      await until(() => db.replicas()[0]?.state === 'lagging', 'the replica drained for lag', 5_000)
      const ended = await frozenUnder(primary, () => readSql`${halfSecond(family)}`.execute(db.read))
      expect(ended.error).toBeInstanceOf(PrimaryUnavailableError)
      expect(ended.ms).toBeLessThan(5_000)
      const next = performance.now()
      const refused = await readSql`select 1 as one`.execute(db.read).catch((error: unknown) => error)
      expect(refused).toBeInstanceOf(PrimaryUnavailableError)
      expect((refused as Error).message).toMatch(/health checks/)
      expect(performance.now() - next).toBeLessThan(100)
      console.info(`${family.dialect}: fallback read in flight ended after ${Math.round(ended.ms)} ms`)
      await primary.thaw()
      await family.control.resumeReplay()
      await until(() => db.replicas()[0]?.state === 'up', 'the replica back', 10_000)
      const { rows } = await readSql<{ one: number }>`select 1 as one`.execute(db.read)
      expect(Number(rows[0]?.one)).toBe(1)
    } finally {
      await primary.thaw()
      await family.control.resumeReplay()
      await db.destroy()
    }
  })

  // With several candidates, one that misses a check is no longer chosen at once: it must be cut all the same.
  it('fails a write in flight on the frozen primary within the check deadlines when several candidates are listed', async () => {
    const family = familyOf()
    const primary = primaryOf(family)
    const db = createBackends<{ hung_candidates_items: Item }>({
      dialect: family.dialect,
      primary: [family.primaryUrl, family.replicaUrl],
      replicas: [family.replicaUrl],
    })
    try {
      await family.createItems(db.write, 'hung_candidates_items')
      await until(() => db.replicas()[0]?.state === 'up', 'the replica up')
      const ended = await frozenUnder(primary, () =>
        db.write.transaction().execute(async (tx) => {
          await tx.insertInto('hung_candidates_items').values({ name: 'in flight', qty: 1 }).execute()
          await halfSecond(family).execute(tx)
        }),
      )
      expect((ended.error as Error | undefined)?.name).toBe('WriteOutcomeUnknownError')
      expect(ended.ms).toBeLessThan(5_000)
      console.info(`${family.dialect}: write in flight ended after ${Math.round(ended.ms)} ms`)
      await primary.thaw()
      await until(() => db.replicas()[0]?.state === 'up', 'the replica up again', 10_000)
    } finally {
      await primary.thaw()
      await db.destroy()
    }
  })
})

// A replica that hangs instead of failing: its server processes stopped with SIGSTOP (a frozen VM, a
// partition that drops packets) while 40 workers read and write, with default options. Nothing fails
// or waits for TCP to give up: the monitor declares the replica down within an interval plus its
// deadline, cuts its connections, and reads run on the other replica.
import { describe, expect, it } from 'vitest'
import { createBackends, readSql } from '../src/index.js'
import { families, scenarioTarget, type TestDB } from './support/databases.js'
import { hungReplica } from './support/fault-scenarios.js'
import { until } from './support/load.js'

// Default timeouts.destroyMs is 5000.
const DESTROY_BOUND_MS = 5_000 + 1_500

describe.each(families)('%s', (_name, familyOf) => {
  it('keeps reads and writes going with replica 1 frozen for 8 s under load', async () => {
    const family = familyOf()
    const result = await hungReplica(scenarioTarget(family))
    console.info(`${family.dialect}: ${JSON.stringify(result)}`)
    expect(result.firstErrors).toEqual([])
    expect(result.failed).toBe(0)
    expect(result.reads).toBeGreaterThan(100)
    expect(result.slowestMs).toBeLessThan(5_000)
    expect(result.outOfRotationMs).toBeLessThanOrEqual(3_000)
    expect(result.throughputDuring).toBeGreaterThanOrEqual(0.3 * result.throughputBefore)
    expect(result.destroyMs).toBeLessThan(DESTROY_BOUND_MS)
    expect(result.downEvent).toBe(true)
  })

  it('ends a connection attempt to a frozen replica after timeouts.connectMs, and serves the read elsewhere', async () => {
    const family = familyOf()
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      // Checks far apart: the read, not the monitor, meets the frozen replica first.
      healthCheckIntervalMs: 60_000,
      timeouts: { connectMs: 300 },
    })
    try {
      await until(() => db.replicas()[0]?.lastCheck != null, 'the first health check', 5_000)
      // The replica's read pool has no connection yet: the read must open one, to a server that never answers.
      await family.control.freezeReplica()
      const started = Date.now()
      const { rows } = await readSql<{ one: number }>`select 1 as one`.execute(db.read)
      const tookMs = Date.now() - started
      expect(rows.map((row) => Number(row.one))).toEqual([1])
      // Not the acquire deadline (5 s by default): the attempt itself ended.
      expect(tookMs).toBeLessThan(2_000)
      expect(db.stats().fallbacksByReason['replica-error']).toBe(1)
      expect(db.replicas()[0]?.state).toBe('down')
    } finally {
      await family.control.thawReplica()
      await db.destroy()
    }
  })
})

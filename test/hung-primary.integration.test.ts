// A primary that hangs instead of failing: its server processes stopped with SIGSTOP (a frozen VM, a
// partition that drops packets) while readers read and writers write, with default options. Reads keep
// going on the replicas; writes fail within a bounded time (PrimaryUnavailableError, or
// WriteOutcomeUnknownError for those in flight), never waiting for TCP to give up; once the primary
// answers again, writes succeed with no restart; destroy() returns within its bound meanwhile.
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { replication } from './harness/control.js'
import { families, scenarioTarget } from './support/databases.js'
import { hungPrimary, mariaDbProcess, postgresProcesses } from './support/fault-scenarios.js'

// Default timeouts.destroyMs is 5000.
const DESTROY_BOUND_MS = 5_000 + 1_500

describe.each(families)('%s', (_name, familyOf) => {
  it('keeps reads going and fails writes in bounded time with the primary frozen for 6 s', async () => {
    const family = familyOf()
    const env = replication()
    const primary =
      family.dialect === 'postgres'
        ? postgresProcesses(path.join(env.postgres.dir, 'primary'))
        : mariaDbProcess(path.join(env.mariadb.dir, 'primary.pid'))
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
})

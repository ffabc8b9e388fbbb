// Both replicas hang at once (their server processes stopped with SIGSTOP) while 40 workers read and
// write, with default options: both leave rotation within an interval plus the check deadline, reads in
// flight on them run again on the primary, and every read until they answer again runs on the primary
// within its fallback budget. Nothing fails, nothing waits for TCP to give up.
import { describe, expect, it } from 'vitest'
import { families, scenarioTarget } from './support/databases.js'
import { hungReplica } from './support/fault-scenarios.js'

// Default timeouts.destroyMs is 5000.
const DESTROY_BOUND_MS = 5_000 + 1_500

describe.each(families)('%s', (_name, familyOf) => {
  it('moves every read to the primary, within its budget, with both replicas frozen for 5 s under load', async () => {
    const family = familyOf()
    const result = await hungReplica(scenarioTarget(family), 40, 5_000, true)
    console.info(`${family.dialect}: ${JSON.stringify(result)}`)
    expect(result.firstErrors).toEqual([])
    expect(result.failed).toBe(0)
    expect(result.fallbacksRefused).toBe(0)
    expect(result.reads).toBeGreaterThan(100)
    expect(result.slowestMs).toBeLessThan(5_000)
    expect(result.outOfRotationMs).toBeLessThanOrEqual(3_000)
    expect(result.throughputDuring).toBeGreaterThanOrEqual(0.3 * result.throughputBefore)
    expect(result.destroyMs).toBeLessThan(DESTROY_BOUND_MS)
    // One `down` event per frozen replica, naming the missed check rather than kysely-rw's own cut, and
    // the reads counted as falling back for want of a replica (no wait ran).
    expect(Object.values(result.downEvents)).toEqual([1, 1])
    expect(result.firstDownError).not.toMatch(/kysely-rw cut the connection/)
    expect(result.fallbacksByReason['no-replica']).toBeGreaterThan(0)
    expect(result.fallbacksByReason['wait-timeout']).toBe(0)
  })
})

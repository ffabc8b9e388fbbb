// A replica that hangs instead of failing: its server processes stopped with SIGSTOP (a frozen VM, a
// partition that drops packets) while 40 workers read and write, with default options. Nothing fails
// or waits for TCP to give up: the monitor declares the replica down within an interval plus its
// deadline, cuts its connections, and reads run on the other replica.
import { describe, expect, it } from 'vitest'
import { families, scenarioTarget } from './support/databases.js'
import { hungReplica } from './support/fault-scenarios.js'

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
})

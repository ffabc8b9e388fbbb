// Replay paused on both replicas while 40 session users write then read back and 20 plain readers
// read: session waits keep their bound (one shared poll per replica, on its monitor connection), plain
// reads are not starved, and no session reads stale data.
import { describe, expect, it } from 'vitest'
import { families, scenarioTarget } from './support/databases.js'
import { lagUnderLoad } from './support/fault-scenarios.js'

describe.each(families)('%s', (_name, familyOf) => {
  it('bounds session reads by maxWaitMs 500 with both replicas paused, under load', async () => {
    const family = familyOf()
    const result = await lagUnderLoad(scenarioTarget(family), 500)
    console.info(`${family.dialect}: ${JSON.stringify(result)}`)
    expect(result.firstErrors).toEqual([])
    expect(result.errors).toBe(0)
    expect(result.stale).toBe(0)
    expect(result.sessionReads).toBeGreaterThan(100)
    expect(result.slowestSessionReadMs).toBeLessThanOrEqual(1_000)
    expect(result.plainReadP99Ms).toBeLessThanOrEqual(1_000)
    // A paused replica costs the reads under way when replay stopped one wait each, per replica, and no read
    // after them: not one wait per read. (A pause takes hold within a few milliseconds: reads whose writes were
    // still replayed meanwhile wait too, and are served by the replica, at most once per user.)
    expect(result.waits).toBeLessThanOrEqual(result.sessionUsers * (result.replicas + 1))
    expect(result.waits * 20).toBeLessThan(result.sessionReads)
    // Reads that checked a paused replica in their own round trip found it behind and were routed again; once
    // a wait on it has gone on 25 ms, later reads no longer try it: at most one miss per user and replica.
    expect(result.replayCheckMisses).toBe(result.replayChecks)
    expect(result.replayCheckMisses).toBeLessThanOrEqual(result.sessionUsers * (result.replicas + 1))
  })
})

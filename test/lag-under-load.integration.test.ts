// Replay paused on both replicas while 40 session users write then read back and 20 plain readers
// read: session waits keep their bound (one shared wait per replica, no pooled connection held), plain
// reads are not starved, and no session reads stale data.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { type Backends, createBackends } from '../src/index.js'
import { type Family, families, type Item } from './support/databases.js'
import { percentile, startLoad, until } from './support/load.js'

interface DB {
  lag_items: Item
}

const MAX_WAIT_MS = 500
const RUN_MS = 4_000

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family

  afterEach(async () => {
    await family.control.resumeReplay()
    await family.control2.resumeReplay()
  })

  it(`bounds session reads by maxWaitMs ${MAX_WAIT_MS} with both replicas paused, under load`, async () => {
    family = familyOf()
    const db: Backends<DB> = createBackends<DB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, family.replica2Url],
      readYourWrites: { maxWaitMs: MAX_WAIT_MS },
    })
    try {
      await family.createItems(db.write, 'lag_items')
      await family.control.waitForReplicaCatchUp()
      await family.control2.waitForReplicaCatchUp()
      await until(() => db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')
      await family.control.pauseReplay()
      await family.control2.pauseReplay()

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
          const row = await session.read
            .selectFrom('lag_items')
            .select('qty')
            .where('name', '=', name)
            .executeTakeFirst()
          sessionReads.push(Date.now() - started)
          if (row?.qty !== i) stale++
          return 'session'
        },
        { maxMs: RUN_MS },
      )
      const readers = startLoad(
        20,
        async () => {
          const started = Date.now()
          await db.read.selectFrom('lag_items').select('id').limit(1).execute()
          plainReads.push(Date.now() - started)
          return 'plain'
        },
        { maxMs: RUN_MS },
      )
      await sleep(RUN_MS)
      const operations = [...(await sessions.stop()), ...(await readers.stop())]
      const errors = operations.filter((op) => op.error)
      const stats = db.stats()
      console.info(
        `${family.dialect}: ${sessionReads.length} session reads (slowest ${Math.max(...sessionReads)} ms), ` +
          `${plainReads.length} plain reads (p99 ${percentile(plainReads, 99)} ms), ${stale} stale, ` +
          `${errors.length} errors, ${stats.waits} waits, fallbacks ${JSON.stringify(stats.fallbacksByReason)}`,
      )
      expect(errors.map((op) => String(op.error)).slice(0, 3)).toEqual([])
      expect(stale).toBe(0)
      expect(sessionReads.length).toBeGreaterThan(100)
      expect(Math.max(...sessionReads)).toBeLessThanOrEqual(1_000)
      expect(percentile(plainReads, 99)).toBeLessThanOrEqual(1_000)
      // A paused replica costs a few waits, not one per read.
      expect(stats.waits).toBeLessThanOrEqual(10)
    } finally {
      await db.destroy()
    }
  })
})

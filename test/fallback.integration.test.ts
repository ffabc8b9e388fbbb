// Where reads go when no replica is within the lag budget: the primary, within a budget of its own, or
// (opted in) the least lagged replica up to a second lag budget. Lag is real: replay paused on both.
import { sql } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { type Backends, type BackendsConfig, createBackends, NoReplicaAvailableError, readSql } from '../src/index.js'
import { type Family, families, type Item } from './support/databases.js'
import { until } from './support/load.js'

interface DB {
  fallback_items: Item
}

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<DB> | undefined

  afterEach(async () => {
    await family.control.resumeReplay()
    await family.control2.resumeReplay()
    await db?.destroy()
  })

  async function drained(config: Partial<BackendsConfig>): Promise<Backends<DB>> {
    family = familyOf()
    db = createBackends<DB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, family.replica2Url],
      healthCheckIntervalMs: 100,
      maxReplicaLagMs: 300,
      ...config,
    })
    await family.createItems(db.write, 'fallback_items')
    await family.control.waitForReplicaCatchUp()
    await family.control2.waitForReplicaCatchUp()
    await until(() => db?.replicas().every((r) => r.state === 'up') === true, 'both replicas up')
    await family.control.pauseReplay()
    await family.control2.pauseReplay()
    const live = db
    const writes = setInterval(() => {
      void live.write
        .insertInto('fallback_items')
        .values({ name: 'tick', qty: 0 })
        .execute()
        .catch(() => {})
    }, 50)
    try {
      await until(() => live.replicas().every((r) => r.state === 'lagging'), 'both replicas drained for lag')
    } finally {
      clearInterval(writes)
    }
    return live
  }

  it('runs at most fallbackReads.maxConcurrent reads on the primary; the surplus fails after maxQueueMs', async () => {
    const live = await drained({ fallbackReads: { maxConcurrent: 3, maxQueueMs: 100 } })
    const sleep =
      family.dialect === 'postgres' ? sql.raw('select pg_sleep(0.5) as s') : sql.raw('select sleep(0.5) as s')
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        readSql`${sleep}`.execute(live.read).then(
          () => 'ran',
          (error: unknown) => error,
        ),
      ),
    )
    const refused = outcomes.filter((o) => o instanceof NoReplicaAvailableError)
    expect(outcomes.filter((o) => o === 'ran')).toHaveLength(3)
    expect(refused).toHaveLength(17)
    expect((refused[0] as Error).message).toMatch(/fallbackReads\.maxConcurrent/)
    const stats = live.stats()
    expect(stats.fallbacksRefused).toBe(17)
    // The table was just created: reads are held to the schema floor, so they fall back as 'wait-timeout'.
    const byReason = Object.values(stats.fallbacksByReason).reduce((a, b) => a + b, 0)
    expect(byReason).toBe(stats.fallbacks)
    expect(stats.fallbacks).toBeGreaterThanOrEqual(3)
  })

  it('with staleReads, plain reads stay on the least lagged replica; session reads still see their writes', async () => {
    const live = await drained({ staleReads: { maxLagMs: 600_000 } })
    const before = live.stats()
    for (let i = 0; i < 20; i++) await live.read.selectFrom('fallback_items').select('id').limit(1).execute()
    const after = live.stats()
    expect(after.staleReads - before.staleReads).toBe(20)
    expect(after.fallbacks - before.fallbacks).toBe(0)
    const session = live.session()
    await session.write.insertInto('fallback_items').values({ name: 'mine', qty: 7 }).execute()
    const row = await session.read
      .selectFrom('fallback_items')
      .select('qty')
      .where('name', '=', 'mine')
      .executeTakeFirst()
    expect(row?.qty).toBe(7)
  })
})

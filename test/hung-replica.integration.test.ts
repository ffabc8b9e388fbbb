// A replica that hangs instead of failing: its server processes stopped with SIGSTOP (a frozen VM, a
// partition that drops packets) while 40 workers read and write, with default options. Nothing fails
// or waits for TCP to give up: the monitor declares the replica down within an interval plus its
// deadline, cuts its connections, and reads run on the other replica.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { type BackendEvent, type Backends, createBackends } from '../src/index.js'
import { type Family, families, type Item } from './support/databases.js'

interface DB {
  hung_items: Item
}

import { percentile, startLoad, throughput, until } from './support/load.js'

const FREEZE_MS = 8_000
const WORKERS = 40
// Defaults: timeouts.destroyMs 5000.
const DESTROY_BOUND_MS = 5_000 + 1_500

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let thaw: (() => Promise<void>) | undefined

  afterEach(async () => {
    // A stopped server left behind would block every later test and the removal of its directory.
    await thaw?.()
    thaw = undefined
    await family?.control.waitForReplicaCatchUp(30_000)
  })

  it(`keeps reads and writes going with replica 1 frozen for ${FREEZE_MS / 1000} s under load`, async () => {
    family = familyOf()
    const events: BackendEvent[] = []
    const db: Backends<DB> = createBackends<DB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl, family.replica2Url],
      onEvent: (event) => events.push(event),
    })
    await family.createItems(db.write, 'hung_items')
    await family.control.waitForReplicaCatchUp()
    await family.control2.waitForReplicaCatchUp()
    await until(() => db.replicas().every((r) => r.state === 'up' && r.lastCheck !== null), 'both replicas up')

    // 90% reads, 10% writes.
    const load = startLoad(
      WORKERS,
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
      { maxMs: 40_000 },
    )
    await sleep(2_000)
    const frozenAt = Date.now()
    await family.control.freezeReplica()
    thaw = () => family.control.thawReplica()
    await until(() => db.replicas()[0]?.state !== 'up', 'the frozen replica to leave rotation', FREEZE_MS)
    const outAfterMs = Date.now() - frozenAt
    await sleep(Math.max(0, FREEZE_MS - (Date.now() - frozenAt)))
    const operations = await load.stop()

    // Still frozen: destroy() must not wait on it past its bound.
    const destroyStarted = Date.now()
    await db.destroy()
    const destroyMs = Date.now() - destroyStarted

    const reads = operations.filter((op) => op.kind === 'read')
    const failed = operations.filter((op) => op.error)
    const slowest = Math.max(...operations.map((op) => op.ms))
    const before = throughput(operations, frozenAt - 1_500, frozenAt)
    const during = throughput(operations, frozenAt, frozenAt + FREEZE_MS)
    console.info(
      `${family.dialect}: ${operations.length} operations (${reads.length} reads), ${failed.length} failed, ` +
        `slowest ${slowest} ms, p99 ${percentile(
          operations.map((op) => op.ms),
          99,
        )} ms, out of rotation after ${outAfterMs} ms, throughput ${before.toFixed(0)}/s before and ` +
        `${during.toFixed(0)}/s during the freeze, destroy() ${destroyMs} ms`,
    )
    expect(failed.map((op) => String(op.error)).slice(0, 3)).toEqual([])
    expect(reads.length).toBeGreaterThan(100)
    expect(slowest).toBeLessThan(5_000)
    expect(outAfterMs).toBeLessThanOrEqual(3_000)
    expect(during).toBeGreaterThanOrEqual(0.3 * before)
    expect(destroyMs).toBeLessThan(DESTROY_BOUND_MS)
    expect(events.some((e) => e.type === 'down' && e.replica === db.replicas()[0]?.name)).toBe(true)
  })
})

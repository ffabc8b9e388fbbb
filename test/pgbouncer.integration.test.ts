// PgBouncer (transaction pooling) in front of the PostgreSQL replica: misconfiguration is an error,
// never a silent fallback. In its default setup it refuses the read-only startup parameter; told to
// ignore it, it drops it, so sessions are not read-only; 'transaction' mode works through it.
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type BackendEvent,
  ConfigurationError,
  createBackends,
  readSql,
  type WriteOnReadBackendError,
} from '../src/index.js'
import { replication } from './harness/control.js'
import { type PgBouncer, startPgBouncer } from './harness/pgbouncer.js'
import { postgresFamily } from './support/databases.js'

const HINT = /readOnlySessions: 'transaction'/

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('PgBouncer in its default setup (refuses the startup parameter)', () => {
  let bouncer: PgBouncer

  beforeAll(async () => {
    bouncer = await startPgBouncer(replication().postgres)
    const setUp = createBackends({ dialect: 'postgres', primary: postgresFamily().primaryUrl })
    await postgresFamily().createItems(setUp.write as never, 'bouncer_items')
    await setUp.destroy()
    await postgresFamily().control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    await bouncer?.stop()
  })

  it("in 'connection' mode, marks the replica down at once with an event that says what to use", async () => {
    const events: BackendEvent[] = []
    const db = createBackends({
      dialect: 'postgres',
      primary: postgresFamily().primaryUrl,
      replicas: [bouncer.url],
      onEvent: (e) => events.push(e),
    })
    try {
      await until(() => events.some((e) => e.type === 'down'), 'the down event')
      const down = events.find((e) => e.type === 'down') as Extract<BackendEvent, { type: 'down' }>
      expect(down.error).toMatch(HINT)
      expect(down.error).toMatch(/unsupported startup parameter/)
      expect(db.replicas()[0]?.state).toBe('down')
    } finally {
      await db.destroy()
    }
  })

  it("in 'connection' mode, a read fails with ConfigurationError or meets a replica marked down, never silently", async () => {
    // No health round can run first: the read itself meets the refusal.
    const db = createBackends({
      dialect: 'postgres',
      primary: postgresFamily().primaryUrl,
      replicas: [bouncer.url],
      healthCheckIntervalMs: 60_000,
      migrationTable: false,
    })
    try {
      const error = await db.read
        .selectFrom('bouncer_items' as never)
        .selectAll()
        .execute()
        .catch((e: unknown) => e)
      // Either the read met the refusal itself, or the first health round marked the replica down first
      // and the read ran on the primary's read view: both are visible, neither is silent.
      if (error === undefined || Array.isArray(error)) {
        expect(db.replicas()[0]?.state).toBe('down')
        expect(db.stats().fallbacks).toBeGreaterThan(0)
      } else {
        expect(error).toBeInstanceOf(ConfigurationError)
        expect((error as Error).message).toMatch(HINT)
      }
    } finally {
      await db.destroy()
    }
  })

  it("in 'transaction' mode, reads run through it on the replica, each in a read-only transaction", async () => {
    const family = postgresFamily()
    const db = createBackends({
      dialect: 'postgres',
      primary: family.primaryUrl,
      replicas: [bouncer.url],
      readOnlySessions: 'transaction',
      migrationTable: false,
    })
    try {
      await until(() => db.replicas()[0]?.lastCheck != null, 'the first health check')
      expect(db.replicas()[0]?.state).toBe('up')
      const where = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(db.read)
      expect(where.rows[0]?.where).toBe('replica')
      const ro = await readSql<{ ro: boolean }>`${sql.raw(family.readOnlySql)}`.execute(db.read)
      expect(ro.rows[0]?.ro).toBe(true)
      const refused = await db.read
        .selectNoFrom(sql.raw<number>(family.writingSelect).as('n'))
        .execute()
        .catch((e: unknown) => e)
      expect((refused as WriteOnReadBackendError).kind).toBe('database refusal')
    } finally {
      await db.destroy()
    }
  })
})

// In front of a hot standby every transaction is read-only anyway; in front of the primary (whose read
// view serves reads when there are no replicas) a dropped parameter leaves the session writable.
describe('PgBouncer in front of the primary, ignoring the startup parameter', () => {
  let bouncer: PgBouncer

  beforeAll(async () => {
    bouncer = await startPgBouncer(replication().postgres, { ignoreStartupParameters: ['options'], target: 'primary' })
  })

  afterAll(async () => {
    await bouncer?.stop()
  })

  it("in 'connection' mode, refuses the connection that is not read-only instead of reading on it", async () => {
    const db = createBackends({ dialect: 'postgres', primary: bouncer.url, migrationTable: false })
    try {
      const error = await readSql`select 1 as one`.execute(db.read).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toMatch(/not read-only/)
      expect((error as Error).message).toMatch(HINT)
      // Not once, but on every read: the connection serves nothing.
      await expect(readSql`select 1 as one`.execute(db.read)).rejects.toBeInstanceOf(ConfigurationError)
      // 'transaction' mode through the same pooler reads, read-only.
      const inTransactions = createBackends({
        dialect: 'postgres',
        primary: bouncer.url,
        readOnlySessions: 'transaction',
        migrationTable: false,
      })
      try {
        const { rows } = await readSql<{ ro: boolean }>`${sql.raw(postgresFamily().readOnlySql)}`.execute(
          inTransactions.read,
        )
        expect(rows[0]?.ro).toBe(true)
      } finally {
        await inTransactions.destroy()
      }
    } finally {
      await db.destroy()
    }
  })
})

// The read/write routing strategies compared in the consistency and failover benchmarks. Each gives
// every virtual user a handle that reads the user's own counter (and the port of the server that
// answered) and writes it.
import { sql as dsql, eq } from 'drizzle-orm'
import { int, mysqlTable, withReplicas as mysqlWithReplicas } from 'drizzle-orm/mysql-core'
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { integer, pgTable, withReplicas as pgWithReplicas } from 'drizzle-orm/pg-core'
import type { Kysely } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import type { BenchDB, Family } from './db.js'
import { type BackendEvent, type Backends, type BackendsConfig, createBackends } from './kysely-rw.js'

export interface Row {
  readonly value: number
  /** Port of the server that answered: tells the primary from the replica. */
  readonly port: number
}

export interface UserHandle {
  read(): Promise<Row | undefined>
  write(value: number): Promise<void>
}

export interface Strategy {
  readonly label: string
  readonly kind: 'primary' | 'naive' | 'rails' | 'session'
  forUser(user: number): UserHandle
  /** kysely-rw only: its counters. */
  stats?(): { waits: number; waitMs: number; fallbacks: number }
  destroy(): Promise<void>
}

export type StrategyFactory = (family: Family) => Promise<Strategy>

const readOwn = (family: Family, db: Kysely<BenchDB>, user: number) =>
  db
    .selectFrom('counters')
    .select(['value', family.serverPort().as('port')])
    .where('user_id', '=', user)
    .executeTakeFirst()
    .then((row) => (row ? { value: Number(row.value), port: Number(row.port) } : undefined))

const writeOwn = async (db: Kysely<BenchDB>, user: number, value: number) => {
  await db.updateTable('counters').set({ value }).where('user_id', '=', user).execute()
}

// kysely-rw's backends are Kysely instances at run time; the cast lets the same query functions serve.
const asKysely = (backend: unknown) => backend as Kysely<BenchDB>

/** One Kysely instance serving both the reads and the writes of every user. */
const kyselyStrategy = (family: Family, label: string, kind: Strategy['kind'], db: Kysely<BenchDB>): Strategy => ({
  label,
  kind,
  forUser: (user) => ({ read: () => readOwn(family, db, user), write: (value) => writeOwn(db, user, value) }),
  destroy: () => db.destroy(),
})

export const primaryOnly: StrategyFactory = async (family) => {
  return kyselyStrategy(family, 'everything on the primary (plain Kysely)', 'primary', family.plain(family.primaryUrl))
}

export const kyselyReplication: StrategyFactory = async (family) => {
  // bench/peers: kysely-replication needs its own kysely 0.28 (see peers.ts).
  const { createKyselyReplication } = await import('../peers/kysely-replication.mjs')
  const db = asKysely(
    createKyselyReplication({
      dialect: family.dialect,
      primaryUrl: family.primaryUrl,
      replicaUrls: [family.replicaUrl],
    }),
  )
  return kyselyStrategy(family, 'naive routing: kysely-replication', 'naive', db)
}

export const drizzleReplicas: StrategyFactory = async (family) => {
  if (family.name === 'postgres') {
    const counters = pgTable('counters', { userId: integer('user_id').primaryKey(), value: integer('value').notNull() })
    const pools = [family.primaryUrl, family.replicaUrl].map((url) => {
      const pool = new pg.Pool({ connectionString: url })
      // A killed server must not crash the benchmark through an unheard 'error' (the query in flight still rejects).
      pool.on('error', () => {})
      pool.on('connect', (client) => client.on('error', () => {}))
      return pool
    }) as [pg.Pool, pg.Pool]
    const db = pgWithReplicas(drizzlePg(pools[0]), [drizzlePg(pools[1])])
    return {
      label: 'naive routing: drizzle-orm withReplicas',
      kind: 'naive',
      forUser: (user) => ({
        read: async () => {
          const [row] = await db
            .select({ value: counters.value, port: dsql<number>`inet_server_port()` })
            .from(counters)
            .where(eq(counters.userId, user))
          return row ? { value: Number(row.value), port: Number(row.port) } : undefined
        },
        write: async (value) => {
          await db.update(counters).set({ value }).where(eq(counters.userId, user))
        },
      }),
      destroy: async () => {
        await Promise.all(pools.map((pool) => pool.end()))
      },
    }
  }
  const counters = mysqlTable('counters', { userId: int('user_id').primaryKey(), value: int('value').notNull() })
  const pools = [mysql2.createPool({ uri: family.primaryUrl }), mysql2.createPool({ uri: family.replicaUrl })] as const
  const db = mysqlWithReplicas(drizzleMysql(pools[0]), [drizzleMysql(pools[1])])
  return {
    label: 'naive routing: drizzle-orm withReplicas',
    kind: 'naive',
    forUser: (user) => ({
      read: async () => {
        const [row] = await db
          .select({ value: counters.value, port: dsql<number>`@@port` })
          .from(counters)
          .where(eq(counters.userId, user))
        return row ? { value: Number(row.value), port: Number(row.port) } : undefined
      },
      write: async (value) => {
        await db.update(counters).set({ value }).where(eq(counters.userId, user))
      },
    }),
    destroy: async () => {
      await Promise.all(pools.map((pool) => new Promise<void>((resolve) => pool.end(() => resolve()))))
    },
  }
}

/** kysely-rw with its defaults unless `options` say otherwise. */
export function rwBackends(family: Family, options: Partial<BackendsConfig> = {}): Backends<BenchDB> {
  return createBackends<BenchDB>({
    dialect: family.dialect,
    primary: family.primaryUrl,
    replicas: [family.replicaUrl],
    ...options,
  })
}

function rwStats(db: Backends<BenchDB>) {
  return () => {
    const { waits, waitMs, fallbacks } = db.stats()
    return { waits, waitMs, fallbacks }
  }
}

export const rwNaive =
  (options: Partial<BackendsConfig> = {}): StrategyFactory =>
  async (family) => {
    const db = rwBackends(family, options)
    return {
      label: 'naive routing: kysely-rw `db.read` (no session)',
      kind: 'naive',
      forUser: (user) => ({
        read: () => readOwn(family, asKysely(db.read), user),
        write: (value) => writeOwn(asKysely(db.write), user, value),
      }),
      stats: rwStats(db),
      destroy: () => db.destroy(),
    }
  }

export const rwSessions =
  (label: string, options: Partial<BackendsConfig> = {}): StrategyFactory =>
  async (family) => {
    const db = rwBackends(family, options)
    return {
      label,
      kind: 'session',
      forUser: (user) => {
        const session = db.session()
        return {
          read: () => readOwn(family, asKysely(session.read), user),
          write: (value) => writeOwn(asKysely(session.write), user, value),
        }
      },
      stats: rwStats(db),
      destroy: () => db.destroy(),
    }
  }

/** Rails' default automatic role switching: a user's reads go to the primary for 2 s after its last write. */
export const railsDelay =
  (delayMs: number): StrategyFactory =>
  async (family) => {
    const primary = family.plain(family.primaryUrl)
    const replica = family.plain(family.replicaUrl)
    return {
      label: `primary for ${delayMs / 1000} s after a write (the Rails default; plain Kysely)`,
      kind: 'rails',
      forUser: (user) => {
        let lastWrite = Number.NEGATIVE_INFINITY
        return {
          read: () => readOwn(family, performance.now() - lastWrite < delayMs ? primary : replica, user),
          write: async (value) => {
            await writeOwn(primary, user, value)
            lastWrite = performance.now()
          },
        }
      },
      destroy: async () => {
        await Promise.all([primary.destroy(), replica.destroy()])
      },
    }
  }

export type { BackendEvent }

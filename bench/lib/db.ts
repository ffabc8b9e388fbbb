// The real database pairs the runtime benchmarks use, their schema and seed, plain Kysely clients,
// replica lag control, and a client-side count of round trips.
import { type Generated, Kysely, MysqlDialect, PostgresDialect, type RawBuilder, sql } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import {
  type MariaDbPair,
  type PostgresPair,
  startMariaDbPair,
  startPostgresPair,
} from '../../test/harness/replication.js'
import { pipelinedBehind } from '../../test/support/round-trips.js'
import { log, sleep } from './util.js'

export interface BenchDB {
  users: { id: Generated<number>; name: string; email: string; score: number }
  orders: { id: Generated<number>; user_id: number; status: string; total: number }
  events: { id: Generated<number>; user_id: number; kind: string; payload: string }
  counters: { user_id: number; value: number }
}

export const USERS = 1000
export const ORDERS_PER_USER = 5

export type FamilyName = 'postgres' | 'mariadb'

export interface Family {
  readonly name: FamilyName
  /** 'PostgreSQL' | 'MariaDB' */
  readonly label: string
  /** kysely-rw's dialect name. */
  readonly dialect: 'postgres' | 'mysql'
  readonly pair: PostgresPair | MariaDbPair
  readonly primaryUrl: string
  readonly replicaUrl: string
  readonly primaryPort: number
  readonly replicaPort: number
  /** The server's version string, from the server. */
  readonly version: string
  /** A select expression naming the port of the server that answers, to see where a read ran. */
  readonly serverPort: () => RawBuilder<number>
  /** A plain Kysely 0.29 client on one node, with the driver's default pool. */
  plain(url: string): Kysely<BenchDB>
  /** Constant replica lag for the consistency benchmark; returns what was set. */
  setLag(): Promise<string>
  clearLag(): Promise<void>
  stop(): Promise<void>
}

const portOf = (url: string) => Number(new URL(url).port)

export async function startFamily(name: FamilyName): Promise<Family> {
  const started = Date.now()
  const family = name === 'postgres' ? await postgresFamily() : await mariadbFamily()
  log(`${family.label} ${family.version} primary+replica up in ${Date.now() - started} ms`)
  return family
}

async function postgresFamily(): Promise<Family> {
  const pair = await startPostgresPair()
  try {
    const admin = (url: string) =>
      new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) })
    const version = await oneValue(
      admin(pair.adminPrimaryUrl),
      sql<{ v: string }>`select current_setting('server_version') as v`,
    )
    const setDelay = async (value: string) => {
      const db = admin(pair.adminReplicaUrl)
      try {
        await sql`alter system set recovery_min_apply_delay = ${sql.lit(value)}`.execute(db)
        await sql`select pg_reload_conf()`.execute(db)
      } finally {
        await db.destroy()
      }
    }
    return {
      name: 'postgres',
      label: 'PostgreSQL',
      dialect: 'postgres',
      pair,
      primaryUrl: pair.primaryUrl,
      replicaUrl: pair.replicaUrl,
      primaryPort: portOf(pair.primaryUrl),
      replicaPort: portOf(pair.replicaUrl),
      version,
      serverPort: () => sql<number>`inet_server_port()`,
      plain: (url) =>
        new Kysely<BenchDB>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) }),
      async setLag() {
        await setDelay('50ms')
        return "PostgreSQL `recovery_min_apply_delay = '50ms'` on the replica (ALTER SYSTEM + pg_reload_conf())"
      },
      clearLag: () => setDelay('0'),
      stop: () => pair.stop(),
    }
  } catch (error) {
    await pair.stop()
    throw error
  }
}

async function mariadbFamily(): Promise<Family> {
  const pair = await startMariaDbPair()
  try {
    const admin = (url: string) =>
      new Kysely<unknown>({ dialect: new MysqlDialect({ pool: mysql2.createPool({ uri: url, connectionLimit: 1 }) }) })
    const version = await oneValue(admin(pair.adminPrimaryUrl), sql<{ v: string }>`select version() as v`)
    const setDelay = async (seconds: number) => {
      const db = admin(pair.adminReplicaUrl)
      try {
        await sql`STOP SLAVE`.execute(db)
        await sql`CHANGE MASTER TO MASTER_DELAY = ${sql.lit(seconds)}`.execute(db)
        await sql`START SLAVE`.execute(db)
      } finally {
        await db.destroy()
      }
    }
    return {
      name: 'mariadb',
      label: 'MariaDB',
      dialect: 'mysql',
      pair,
      primaryUrl: pair.primaryUrl,
      replicaUrl: pair.replicaUrl,
      primaryPort: portOf(pair.primaryUrl),
      replicaPort: portOf(pair.replicaUrl),
      version,
      serverPort: () => sql<number>`@@port`,
      plain: (url) => new Kysely<BenchDB>({ dialect: new MysqlDialect({ pool: mysql2.createPool({ uri: url }) }) }),
      async setLag() {
        await setDelay(1)
        return 'MariaDB `CHANGE MASTER TO MASTER_DELAY = 1` on the replica (1 s is its smallest step)'
      },
      clearLag: () => setDelay(0),
      stop: () => pair.stop(),
    }
  } catch (error) {
    await pair.stop()
    throw error
  }
}

async function oneValue(db: Kysely<unknown>, query: RawBuilder<{ v: string }>): Promise<string> {
  try {
    const { rows } = await query.execute(db)
    return String(rows[0]?.v ?? 'unknown')
  } finally {
    await db.destroy()
  }
}

/** Creates and seeds the benchmark tables on the primary (dropping old ones), and waits for the replica. */
export async function createSchema(family: Family): Promise<void> {
  const db = family.plain(family.primaryUrl)
  try {
    for (const table of ['orders', 'events', 'counters', 'users']) {
      await sql`drop table if exists ${sql.table(table)}`.execute(db)
    }
    const pg = family.name === 'postgres'
    const id = pg ? 'id serial primary key' : 'id int auto_increment primary key'
    const text = pg ? 'text' : 'varchar(100)'
    await sql
      .raw(`create table users (${id}, name ${text} not null, email ${text} not null, score int not null default 0)`)
      .execute(db)
    await sql
      .raw(
        `create table orders (${id}, user_id int not null references users(id), status ${text} not null, total int not null)`,
      )
      .execute(db)
    await sql.raw('create index orders_user_status on orders (user_id, status)').execute(db)
    await sql
      .raw(`create table events (${id}, user_id int not null, kind ${text} not null, payload ${text} not null)`)
      .execute(db)
    await sql.raw('create table counters (user_id int primary key, value int not null)').execute(db)
    const users = Array.from({ length: USERS }, (_, i) => ({
      name: `user ${i + 1}`,
      email: `user${i + 1}@example.com`,
      score: i % 100,
    }))
    await db.insertInto('users').values(users).execute()
    const statuses = ['paid', 'open', 'shipped', 'paid', 'refunded']
    const orders = Array.from({ length: USERS * ORDERS_PER_USER }, (_, i) => ({
      user_id: (i % USERS) + 1,
      status: statuses[Math.floor(i / USERS) % statuses.length] as string,
      total: (i * 37) % 1000,
    }))
    for (let i = 0; i < orders.length; i += 1000)
      await db
        .insertInto('orders')
        .values(orders.slice(i, i + 1000))
        .execute()
    await db
      .insertInto('counters')
      .values(Array.from({ length: 64 }, (_, i) => ({ user_id: i + 1, value: 0 })))
      .execute()
    if (pg) await sql`analyze`.execute(db)
  } finally {
    await db.destroy()
  }
  await family.pair.waitForReplicaCatchUp()
}

/** Resets the consistency benchmark's counters to 0 and waits for the replica. */
export async function resetCounters(family: Family): Promise<void> {
  const db = family.plain(family.primaryUrl)
  try {
    await db.updateTable('counters').set({ value: 0 }).execute()
  } finally {
    await db.destroy()
  }
  await family.pair.waitForReplicaCatchUp(30_000)
}

/**
 * How long a committed write takes to become visible on the replica: median of `samples` probes,
 * each an update on the primary followed by polling the replica every 2 ms.
 */
export async function measureVisibilityDelay(family: Family, samples = 5): Promise<number[]> {
  const primary = family.plain(family.primaryUrl)
  const replica = family.plain(family.replicaUrl)
  const delays: number[] = []
  try {
    for (let i = 0; i < samples; i++) {
      const marker = 1_000_000 + Math.floor(Math.random() * 1_000_000)
      await primary.updateTable('counters').set({ value: marker }).where('user_id', '=', 64).execute()
      const committed = performance.now()
      for (;;) {
        const row = await replica.selectFrom('counters').select('value').where('user_id', '=', 64).executeTakeFirst()
        if (row?.value === marker) break
        if (performance.now() - committed > 10_000) throw new Error('replica did not show a write within 10 s')
        await sleep(2)
      }
      delays.push(performance.now() - committed)
    }
  } finally {
    await Promise.all([primary.destroy(), replica.destroy()])
  }
  return delays
}

// ---------------------------------------------------------------------------------------------
// Round trips, counted in the client: every query call a pg Client or mysql2 Connection makes is one
// round trip (a multi-statement simple query is one; a query pg pipelines behind one in flight rides in its round
// trip and is not counted), while `countRoundTrips` runs. Not told apart by an
// AsyncLocalStorage: on Node 20 and 22 one left a promise hook on for the rest of the process, which every
// later benchmark would pay. So a health check sent during the run counts too: at most a few per second per
// node, against the thousands of queries of a load run (and rarely one in the 50 queries of benchmark 1).

let counting: Map<number, number> | undefined
let patched = 0
const restore: (() => void)[] = []

type AnyFn = (this: unknown, ...args: unknown[]) => unknown

function wrap(proto: { query: AnyFn }, portOfThis: (self: unknown) => number | undefined): void {
  const original = proto.query
  proto.query = function (this: unknown, ...args: unknown[]) {
    const counts = counting
    if (counts && !pipelinedBehind(this)) {
      const port = portOfThis(this) ?? 0
      counts.set(port, (counts.get(port) ?? 0) + 1)
    }
    return original.apply(this, args)
  }
  restore.push(() => {
    proto.query = original
  })
}

export async function countRoundTrips<T>(run: () => Promise<T>): Promise<Map<number, number>> {
  if (patched++ === 0) {
    wrap(pg.Client.prototype as unknown as { query: AnyFn }, (self) => (self as { port?: number }).port)
    wrap(
      mysql2.Connection.prototype as unknown as { query: AnyFn },
      (self) => (self as { config?: { port?: number } }).config?.port,
    )
  }
  const counts = new Map<number, number>()
  counting = counts
  try {
    await run()
  } finally {
    counting = undefined
    if (--patched === 0) for (const undo of restore.splice(0)) undo()
  }
  return counts
}

// ---------------------------------------------------------------------------------------------
// Statements the PostgreSQL servers parse, counted where pg writes them: a Parse message (the extended
// protocol, one statement) or a Query message (the simple protocol, as many statements as its text has).
// Unlike round trips, this counts what rides in another's round trip: a session write's position statement,
// a replica read's replay check. Health checks sent during the run count too (a few per second per node).

type PgWire = { parse: AnyFn; query: AnyFn; stream?: { remotePort?: number } }

export async function countStatements<T>(run: () => Promise<T>): Promise<Map<number, number>> {
  const proto = (pg as unknown as { Connection: { prototype: PgWire } }).Connection.prototype
  const [parse, query] = [proto.parse, proto.query]
  const counts = new Map<number, number>()
  const add = (self: unknown, n: number) => {
    const port = (self as PgWire).stream?.remotePort ?? 0
    counts.set(port, (counts.get(port) ?? 0) + n)
  }
  proto.parse = function (this: unknown, ...args: unknown[]) {
    add(this, 1)
    return parse.apply(this, args)
  }
  proto.query = function (this: unknown, ...args: unknown[]) {
    // Statements in one text: kysely-rw's own multi-statement texts have no semicolon inside a literal.
    add(
      this,
      String(args[0])
        .split(';')
        .filter((part) => part.trim() !== '').length,
    )
    return query.apply(this, args)
  }
  try {
    await run()
  } finally {
    proto.parse = parse
    proto.query = query
  }
  return counts
}

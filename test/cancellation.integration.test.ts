// Kysely's query cancellation through kysely-rw's connections, checked on the servers themselves:
// the aborted query is gone from pg_stat_activity / the PROCESSLIST, and its pool connection is back.
import { type InflightQueryAbortStrategy, Kysely, MysqlDialect, PostgresDialect, sql } from 'kysely'
import mysqlCallbacks from 'mysql2'
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, type BackendsConfig, type CanRead, createBackends, fromKysely, readSql } from '../src/index.js'
import { type Family, families, mariadbFamily, postgresFamily, type TestDB } from './support/databases.js'

// Longer than any wait below: a query that was not cancelled is still running when it is looked for.
const SLEEP_S = 60
// Both pools hold two connections: one runs the sleep, the other serves health checks and the cancel
// on MariaDB (whose control query runs on a pool connection of the same server).
const POOL_SIZE = 2

/** How many queries whose text contains `marker` run on the server at `url`, as the server reports. */
async function running(family: Family, url: string, marker: string): Promise<number> {
  if (family.dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const { rows } = await client.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() and query like $1`,
        [`%${marker}%`],
      )
      return rows[0]?.n ?? 0
    } finally {
      await client.end()
    }
  }
  const connection = await mysql2.createConnection({ uri: url })
  try {
    const [rows] = await connection.query(
      `select count(*) as n from information_schema.processlist where id <> connection_id() and command = 'Query' and info like ?`,
      [`%${marker}%`],
    )
    return Number((rows as { n: number }[])[0]?.n ?? 0)
  } finally {
    await connection.end()
  }
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<TestDB>

  const pooled = (url: string) =>
    family.dialect === 'postgres' ? { connectionString: url, max: POOL_SIZE } : { uri: url, connectionLimit: POOL_SIZE }

  const server = async (backend: CanRead<TestDB>) => {
    const { rows } = await readSql<{ server: string }>`${sql.raw(family.serverSql)}`.execute(backend)
    return rows[0]?.server
  }

  beforeAll(() => {
    family = familyOf()
    // One replica, so that every read goes to it and the test knows which server to look at.
    db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: pooled(family.primaryUrl),
      replicas: [pooled(family.replicaUrl)],
    })
  })

  afterAll(async () => {
    await db?.destroy()
  })

  const cases: ['read' | 'write', InflightQueryAbortStrategy][] = [
    ['read', 'cancel query'],
    ['read', 'kill session'],
    ['write', 'cancel query'],
    ['write', 'kill session'],
  ]

  it.each(cases)(
    'aborting a query on db.%s with %j stops it on the server and frees its connection',
    async (role, strategy) => {
      const url = role === 'read' ? family.replicaUrl : family.primaryUrl
      const backend = role === 'read' ? db.read : db.write
      expect(await server(backend)).toBe(role === 'read' ? 'replica 1' : 'primary')
      const marker = `aborted_${role}_${strategy.replace(' ', '_')}_${Date.now()}`
      const sleep = family.dialect === 'postgres' ? `pg_sleep(${SLEEP_S})` : `sleep(${SLEEP_S})`

      const controller = new AbortController()
      const started = Date.now()
      const query = backend
        .selectNoFrom(sql<unknown>`${sql.raw(sleep)}`.as(marker))
        .execute({ signal: controller.signal, inflightQueryAbortStrategy: strategy })
      const outcome = query.then(
        () => 'resolved',
        (error: unknown) => error,
      )
      await until(async () => (await running(family, url, marker)) === 1, 'the query runs on the server')
      controller.abort()
      const error = await outcome
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).name).toBe('AbortError')

      await until(async () => (await running(family, url, marker)) === 0, 'the server no longer runs the query')
      // Every pool connection serves again: with the aborted one still held, one of these would wait
      // for the sleep to end.
      const servers = await Promise.all(Array.from({ length: POOL_SIZE }, () => server(backend)))
      expect(servers).toEqual(Array(POOL_SIZE).fill(role === 'read' ? 'replica 1' : 'primary'))
      expect(Date.now() - started).toBeLessThan((SLEEP_S / 2) * 1000)
      // An abort the user asked for says nothing about the replica: it stays in rotation.
      expect(db.replicas().map((r) => r.state)).toEqual(['up'])
    },
  )
})

// The other handles a query can be aborted on: a session's backends, reads in 'transaction' mode, reads that
// are logged (their connections are observed), readSql, backends over an existing Kysely instance, and a
// stream left by its signal. Each case gets backends of its own, with pools of POOL_SIZE.
describe.each(families)('%s: every handle', (_name, familyOf) => {
  let family: Family
  beforeAll(() => {
    family = familyOf()
  })

  const pooled = (url: string) =>
    family.dialect === 'postgres' ? { connectionString: url, max: POOL_SIZE } : { uri: url, connectionLimit: POOL_SIZE }
  const open = (extra: Partial<BackendsConfig> = {}) =>
    createBackends<TestDB>({
      dialect: family.dialect,
      primary: pooled(family.primaryUrl),
      replicas: [pooled(family.replicaUrl)],
      ...extra,
    } as BackendsConfig)
  const sleep = () => (family.dialect === 'postgres' ? `pg_sleep(${SLEEP_S})` : `sleep(${SLEEP_S})`)
  const server = async (backend: CanRead<TestDB>) => {
    const { rows } = await readSql<{ server: string }>`${sql.raw(family.serverSql)}`.execute(backend)
    return rows[0]?.server
  }

  /** Starts `run`, aborts it once the server runs it, and checks that it is gone and the pool serves again. */
  async function abortOnServer(
    url: string,
    marker: string,
    run: (signal: AbortSignal) => Promise<unknown>,
    after: () => Promise<unknown>[],
  ): Promise<void> {
    const controller = new AbortController()
    const started = Date.now()
    const outcome = run(controller.signal).then(
      () => 'resolved',
      (error: unknown) => error,
    )
    await until(async () => (await running(family, url, marker)) === 1, 'the query runs on the server')
    controller.abort()
    expect(((await outcome) as Error).name).toBe('AbortError')
    await until(async () => (await running(family, url, marker)) === 0, 'the server no longer runs the query')
    await Promise.all(after())
    expect(Date.now() - started).toBeLessThan((SLEEP_S / 2) * 1000)
  }

  const strategies: InflightQueryAbortStrategy[] = ['cancel query', 'kill session']

  it.each(strategies)("a session's read and write, with %j", async (strategy) => {
    await using db = open()
    const session = db.session()
    for (const role of ['read', 'write'] as const) {
      const marker = `session_${role}_${strategy.replace(' ', '_')}_${Date.now()}`
      await abortOnServer(
        role === 'read' ? family.replicaUrl : family.primaryUrl,
        marker,
        (signal) =>
          session[role]
            .selectNoFrom(sql<unknown>`${sql.raw(sleep())}`.as(marker))
            .execute({ signal, inflightQueryAbortStrategy: strategy }),
        () => Array.from({ length: POOL_SIZE }, () => server(session[role])),
      )
    }
    expect(db.replicas().map((r) => r.state)).toEqual(['up'])
  })

  it.each(strategies)("a session's write that brings its position back with it, with %j", async (strategy) => {
    await using db = open()
    await family.createItems(db.write, 'cancel_items')
    // The session's first write: on PostgreSQL its position's statement is pipelined behind it.
    const session = db.session()
    const marker = `session_positioned_write_${strategy.replace(' ', '_')}_${Date.now()}`
    const slowOne =
      family.dialect === 'postgres'
        ? sql<number>`(select 1 as ${sql.raw(marker)} from ${sql.raw(sleep())})`
        : sql<number>`(select 1 as ${sql.raw(marker)} from (select ${sql.raw(sleep())}) as s)`
    await abortOnServer(
      family.primaryUrl,
      marker,
      (signal) =>
        session.write
          .insertInto('cancel_items' as 'items')
          .values({ name: marker, qty: slowOne })
          .execute({ signal, inflightQueryAbortStrategy: strategy }),
      () =>
        Array.from({ length: POOL_SIZE }, async (_, i) => {
          await session.write
            .insertInto('cancel_items' as 'items')
            .values({ name: `after-${i}`, qty: i })
            .execute()
          // The connections answer in order, and the session reads its own write back.
          expect(
            await session.read
              .selectFrom('cancel_items' as 'items')
              .select('qty')
              .where('name', '=', `after-${i}`)
              .execute(),
          ).toEqual([{ qty: i }])
        }),
    )
    // The aborted write never committed.
    expect(
      await session.write
        .selectFrom('cancel_items' as 'items')
        .select('name')
        .where('name', '=', marker)
        .execute(),
    ).toEqual([])
  })

  it.each(strategies)(
    "a read in readOnlySessions: 'transaction' mode, and a logged read, with %j",
    async (strategy) => {
      const logged: string[] = []
      for (const extra of [
        { readOnlySessions: 'transaction' },
        { log: (event: { level: string }) => void logged.push(event.level) },
      ] as Partial<BackendsConfig>[]) {
        await using db = open(extra)
        const marker = `mode_${Object.keys(extra)[0]}_${strategy.replace(' ', '_')}_${Date.now()}`
        await abortOnServer(
          family.replicaUrl,
          marker,
          (signal) =>
            db.read
              .selectNoFrom(sql<unknown>`${sql.raw(sleep())}`.as(marker))
              .execute({ signal, inflightQueryAbortStrategy: strategy }),
          () => Array.from({ length: POOL_SIZE }, () => server(db.read)),
        )
        // The aborted query's own failure reaches the log once the server ends it. (MySQL's 'kill session'
        // destroys the mysql2 connection under the query, whose promise then never settles: not logged.)
        if ('log' in extra && (strategy === 'cancel query' || family.dialect === 'postgres')) {
          await until(async () => logged.includes('error'), 'the aborted query is logged as an error')
        }
      }
    },
  )

  it('readSql, with its execute options', async () => {
    await using db = open()
    const marker = `readsql_${Date.now()}`
    await abortOnServer(
      family.replicaUrl,
      marker,
      (signal) =>
        readSql`select ${sql.raw(sleep())} as ${sql.raw(marker)}`.execute(db.read, {
          signal,
          inflightQueryAbortStrategy: 'cancel query',
        }),
      () => Array.from({ length: POOL_SIZE }, () => server(db.read)),
    )
  })

  it.each(strategies)('backends over an existing Kysely instance (fromKysely), with %j', async (strategy) => {
    const pgPool = new pg.Pool({ connectionString: family.primaryUrl, max: POOL_SIZE })
    // The application's pool, as plain Kysely needs it for 'kill session': pg emits the killed client's
    // 'Connection terminated unexpectedly' as an 'error' event, which no one else listens to.
    pgPool.on('connect', (client) => client.on('error', () => {}))
    const dialect =
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: pgPool })
        : new MysqlDialect({ pool: mysqlCallbacks.createPool({ uri: family.primaryUrl, connectionLimit: POOL_SIZE }) })
    const kysely = new Kysely<TestDB>({ dialect })
    try {
      await using db = fromKysely(kysely, { dialect: family.dialect, migrationTable: false })
      for (const role of ['write', 'read'] as const) {
        const marker = `from_kysely_${role}_${strategy.replace(' ', '_')}_${Date.now()}`
        // SLEEP is a built-in that changes nothing: a read on a MySQL pool kysely-rw cannot reset may call it.
        const slow = sql<unknown>`${sql.raw(sleep())}`
        await abortOnServer(
          family.primaryUrl,
          marker,
          (signal) => db[role].selectNoFrom(slow.as(marker)).execute({ signal, inflightQueryAbortStrategy: strategy }),
          () => [server(db.read), server(db.write), kysely.selectNoFrom(sql<number>`1`.as('one')).execute()],
        )
      }
    } finally {
      await kysely.destroy()
      if (family.dialect !== 'postgres') await pgPool.end()
    }
  })

  // PostgreSQL only: on MySQL and MariaDB a stream left early waits for the server to send the rest of its
  // result, as with plain Kysely and mysql2 (docs/queries-at-run-time.md).
  it.each(strategies)(
    'pools the application made and handed in, with no listener of their own, with %j',
    async (strategy) => {
      // The application's pools as they come: no 'error' listener. A killed pg session errors its client, and an
      // unheard 'error' event would end the process; vitest fails the run on one.
      const pools =
        family.dialect === 'postgres'
          ? [family.primaryUrl, family.replicaUrl].map((url) => new pg.Pool({ connectionString: url, max: POOL_SIZE }))
          : [family.primaryUrl, family.replicaUrl].map((url) =>
              mysqlCallbacks.createPool({ uri: url, connectionLimit: POOL_SIZE }),
            )
      await using db = createBackends<TestDB>({
        dialect: family.dialect,
        primary: pools[0] as never,
        replicas: [pools[1] as never],
      })
      for (const role of ['read', 'write'] as const) {
        const marker = `handed_in_${role}_${strategy.replace(' ', '_')}_${Date.now()}`
        // SLEEP is a built-in that changes nothing: a read on a MySQL pool kysely-rw cannot reset may call it.
        const slow = sql<unknown>`${sql.raw(sleep())}`
        await abortOnServer(
          role === 'read' ? family.replicaUrl : family.primaryUrl,
          marker,
          (signal) => db[role].selectNoFrom(slow.as(marker)).execute({ signal, inflightQueryAbortStrategy: strategy }),
          () => Array.from({ length: POOL_SIZE }, () => server(db[role])),
        )
      }
    },
  )

  // Defined for PostgreSQL alone, so that no skipped test stands for MariaDB.
  const onPostgres = _name === 'PostgreSQL' ? it : undefined
  onPostgres?.('a stream left through its signal ends on the server and gives its connection back', async () => {
    await using db = open()
    const marker = `stream_${Date.now()}`
    // Rows that come slowly: the stream is mid-way when its signal aborts it.
    const slow = sql<number>`(select g from generate_series(1, 100000) g, pg_sleep(0.01))`
    const rows = db.read.selectFrom(slow.as(marker)).selectAll()
    const controller = new AbortController()
    let seen = 0
    const started = Date.now()
    const outcome = (async () => {
      for await (const _row of rows.stream({ chunkSize: 1, signal: controller.signal })) {
        if (++seen === 3) controller.abort()
      }
    })().then(
      () => 'ended',
      (error: unknown) => error,
    )
    expect(((await outcome) as Error).name).toBe('AbortError')
    await until(async () => (await running(family, family.replicaUrl, marker)) === 0, 'the server no longer runs it')
    const servers = await Promise.all(Array.from({ length: POOL_SIZE }, () => server(db.read)))
    expect(servers).toEqual(Array(POOL_SIZE).fill('replica 1'))
    expect(Date.now() - started).toBeLessThan(20_000)
    // The stream counts as a read of the replica, as the reads after it do.
    const reads = Object.entries(db.stats().readsByNode)
    expect(reads).toHaveLength(1)
    expect(reads[0]?.[0]).toMatch(/^replica 1 /)
    expect(reads[0]?.[1]).toBe(POOL_SIZE + 1)
  })
})

// A read that no replica can take runs on the primary in a turn of its fallback budget; an aborted one must give
// its turn back. With the only replica unreachable, one turn at most: a kept turn refuses the next read.
async function fallbackAfterAbort(family: Family, strategy: InflightQueryAbortStrategy): Promise<string> {
  const unreachable = `${family.dialect}://app@127.0.0.1:1/app`
  await using db = createBackends<TestDB>({
    dialect: family.dialect,
    primary: family.primaryUrl,
    replicas: [unreachable],
    fallbackReads: { maxConcurrent: 1, maxQueueMs: 300 },
    healthCheckIntervalMs: 200,
  })
  await until(async () => db.replicas()[0]?.state === 'down', 'the replica is down')
  const sleep = family.dialect === 'postgres' ? `pg_sleep(${SLEEP_S})` : `sleep(${SLEEP_S})`
  const marker = `fallback_${strategy.replace(' ', '_')}_${Date.now()}`
  const controller = new AbortController()
  const query = db.read
    .selectNoFrom(sql<unknown>`${sql.raw(sleep)}`.as(marker))
    .execute({ signal: controller.signal, inflightQueryAbortStrategy: strategy })
    .catch((error: unknown) => error)
  await until(async () => (await running(family, family.primaryUrl, marker)) === 1, 'the query runs on the primary')
  controller.abort()
  expect(((await query) as Error).name).toBe('AbortError')
  await until(async () => (await running(family, family.primaryUrl, marker)) === 0, 'the primary no longer runs it')
  const { rows } = await readSql<{ where: string }>`${sql.raw(family.whereSql)}`.execute(db.read)
  return rows[0]?.where ?? 'none'
}

describe('an aborted fallback read gives back its turn of the fallback budget', () => {
  it.each(['cancel query', 'kill session'] as const)('PostgreSQL, %j', async (strategy) => {
    expect(await fallbackAfterAbort(postgresFamily(), strategy)).toBe('primary')
  })

  it('MariaDB, "cancel query"', async () => {
    expect(await fallbackAfterAbort(mariadbFamily(), 'cancel query')).toBe('primary')
  })

  // On MySQL 'kill session' destroys mysql2's connection under the query, whose promise never settles: kysely-rw
  // ends the query itself once the session is killed, so the connection and its budget turn are given back.
  it('MariaDB, "kill session"', async () => {
    expect(await fallbackAfterAbort(mariadbFamily(), 'kill session')).toBe('primary')
  })
})

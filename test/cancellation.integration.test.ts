// Kysely's query cancellation through kysely-rw's connections, checked on the servers themselves:
// the aborted query is gone from pg_stat_activity / the PROCESSLIST, and its pool connection is back.
import { type InflightQueryAbortStrategy, sql } from 'kysely'
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Backends, type CanRead, createBackends, readSql } from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

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

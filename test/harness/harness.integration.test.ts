// Proves the harness gives real replication: replicas lag when paused, refuse writes, die and come back,
// and the second replica of each primary is controlled on its own.
import { randomUUID } from 'node:crypto'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { controlMariaDb, controlPostgres, type ReplicaControl, replication } from './control.js'

const env = replication()

/** Replay lag a paused replica must show; well above normal streaming latency. */
const PAUSED_WAIT_MS = 300

const uniqueTable = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('PostgreSQL pair', () => {
  const { primaryUrl, replicaUrl, adminPrimaryUrl, adminReplicaUrl, replica2Url, adminReplica2Url } = env.postgres
  const replica = controlPostgres(env.postgres)
  const replica2 = controlPostgres(env.postgres, 2)

  async function query<Row = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []) {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(sql, params)).rows as Row[]
    } finally {
      await client.end()
    }
  }

  async function createTable(): Promise<string> {
    const table = uniqueTable()
    await query(primaryUrl, `create table ${table} (id int primary key)`)
    return table
  }

  async function ids(url: string, table: string): Promise<number[]> {
    return (await query<{ id: number }>(url, `select id from ${table} order by id`)).map((row) => row.id)
  }

  it('has a replica in recovery and a primary that is not', async () => {
    expect(await query(adminPrimaryUrl, 'select pg_is_in_recovery() as r')).toEqual([{ r: false }])
    expect(await query(adminReplicaUrl, 'select pg_is_in_recovery() as r')).toEqual([{ r: true }])
  })

  it('connects as the non-superuser app role', async () => {
    expect(
      await query(primaryUrl, 'select current_user as u, usesuper from pg_user where usename = current_user'),
    ).toEqual([{ u: 'app', usesuper: false }])
  })

  it('replicates a new table and row', async () => {
    const table = await createTable()
    await query(primaryUrl, `insert into ${table} values (1)`)
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1])
  })

  it('refuses writes on the replica', async () => {
    const table = await createTable()
    await replica.waitForReplicaCatchUp()
    await expect(query(replicaUrl, `insert into ${table} values (1)`)).rejects.toThrow(/read-only/)
  })

  it('hides new rows while replay is paused and shows them after resuming', async () => {
    const table = await createTable()
    await query(primaryUrl, `insert into ${table} values (1)`)
    await replica.waitForReplicaCatchUp()
    await replica.pauseReplay()
    try {
      await query(primaryUrl, `insert into ${table} values (2)`)
      await sleep(PAUSED_WAIT_MS)
      expect(await ids(replicaUrl, table)).toEqual([1])
    } finally {
      await replica.resumeReplay()
    }
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1, 2])
  })

  it('refuses connections while the replica is killed and catches up after a restart', async () => {
    const table = await createTable()
    await replica.killReplica()
    try {
      await expect(query(replicaUrl, 'select 1')).rejects.toThrow(/ECONNREFUSED/)
      await query(primaryUrl, `insert into ${table} values (1)`)
    } finally {
      await replica.startReplica()
    }
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1])
  })

  it('has a second replica in recovery on a port of its own', async () => {
    expect(await query(adminReplica2Url, 'select pg_is_in_recovery() as r, inet_server_port() as port')).toEqual([
      { r: true, port: Number(new URL(replica2Url).port) },
    ])
    expect(new URL(replica2Url).port).not.toBe(new URL(replicaUrl).port)
  })

  it('pauses, waits on, kills and restarts the second replica alone', async () => {
    await pausesAndKillsReplica2Alone({
      primaryUrl,
      replicaUrl,
      replica2Url,
      replica,
      replica2,
      createTable,
      ids,
      query,
    })
  })
})

describe('MariaDB pair', () => {
  const { primaryUrl, replicaUrl, replica2Url } = env.mariadb
  const replica = controlMariaDb(env.mariadb)
  const replica2 = controlMariaDb(env.mariadb, 2)

  async function query<Row = Record<string, unknown>>(url: string, sql: string) {
    const connection = await mysql.createConnection(url)
    try {
      return (await connection.query(sql))[0] as Row[]
    } finally {
      await connection.end()
    }
  }

  async function createTable(): Promise<string> {
    const table = uniqueTable()
    await query(primaryUrl, `CREATE TABLE ${table} (id INT PRIMARY KEY)`)
    return table
  }

  async function ids(url: string, table: string): Promise<number[]> {
    return (await query<{ id: number }>(url, `SELECT id FROM ${table} ORDER BY id`)).map((row) => row.id)
  }

  it('tells primary and replica apart by server id', async () => {
    expect(await query(primaryUrl, 'SELECT @@server_id AS id')).toEqual([{ id: 1 }])
    expect(await query(replicaUrl, 'SELECT @@server_id AS id')).toEqual([{ id: 2 }])
    expect(await query(replica2Url, 'SELECT @@server_id AS id, @@read_only AS ro')).toEqual([{ id: 3, ro: 1 }])
  })

  it('replicates a new table and row', async () => {
    const table = await createTable()
    await query(primaryUrl, `INSERT INTO ${table} VALUES (1)`)
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1])
  })

  it('refuses writes by app on the replica', async () => {
    const table = await createTable()
    await replica.waitForReplicaCatchUp()
    const error = await query(replicaUrl, `INSERT INTO ${table} VALUES (1)`).then(
      () => null,
      (error: { errno?: number }) => error,
    )
    // 1290: server runs with --read-only; 1792: read-only transaction.
    expect([1290, 1792]).toContain(error?.errno)
  })

  it('hides new rows while the SQL thread is stopped and shows them after restarting it', async () => {
    const table = await createTable()
    await query(primaryUrl, `INSERT INTO ${table} VALUES (1)`)
    await replica.waitForReplicaCatchUp()
    await replica.pauseReplay()
    try {
      await query(primaryUrl, `INSERT INTO ${table} VALUES (2)`)
      await sleep(PAUSED_WAIT_MS)
      expect(await ids(replicaUrl, table)).toEqual([1])
    } finally {
      await replica.resumeReplay()
    }
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1, 2])
  })

  it('refuses connections while the replica is killed and catches up after a restart', async () => {
    const table = await createTable()
    await replica.killReplica()
    try {
      await expect(query(replicaUrl, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/)
      await query(primaryUrl, `INSERT INTO ${table} VALUES (1)`)
    } finally {
      await replica.startReplica()
    }
    await replica.waitForReplicaCatchUp()
    expect(await ids(replicaUrl, table)).toEqual([1])
    expect(await query(replicaUrl, 'SELECT @@server_id AS id')).toEqual([{ id: 2 }])
  })

  it('pauses, waits on, kills and restarts the second replica alone', async () => {
    await pausesAndKillsReplica2Alone({
      primaryUrl,
      replicaUrl,
      replica2Url,
      replica,
      replica2,
      createTable,
      ids,
      query,
    })
  })
})

/**
 * Replica 2's controls act on replica 2 and leave replica 1 alone: its paused replay hides a row that
 * replica 1 shows (and its catch-up wait times out), and while it is killed replica 1 still answers.
 */
async function pausesAndKillsReplica2Alone(pair: {
  primaryUrl: string
  replicaUrl: string
  replica2Url: string
  replica: ReplicaControl
  replica2: ReplicaControl
  createTable(): Promise<string>
  ids(url: string, table: string): Promise<number[]>
  query(url: string, sql: string): Promise<unknown[]>
}): Promise<void> {
  const { primaryUrl, replicaUrl, replica2Url, replica, replica2 } = pair
  const table = await pair.createTable()
  await pair.query(primaryUrl, `insert into ${table} values (1)`)
  await replica2.waitForReplicaCatchUp()
  expect(await pair.ids(replica2Url, table)).toEqual([1])

  await replica2.pauseReplay()
  try {
    await pair.query(primaryUrl, `insert into ${table} values (2)`)
    await replica.waitForReplicaCatchUp()
    expect(await pair.ids(replicaUrl, table)).toEqual([1, 2])
    await expect(replica2.waitForReplicaCatchUp(PAUSED_WAIT_MS)).rejects.toThrow(/did not reach|Timed out/)
    expect(await pair.ids(replica2Url, table)).toEqual([1])
  } finally {
    await replica2.resumeReplay()
  }
  await replica2.waitForReplicaCatchUp()
  expect(await pair.ids(replica2Url, table)).toEqual([1, 2])

  await replica2.killReplica()
  try {
    await expect(pair.query(replica2Url, 'select 1')).rejects.toThrow(/ECONNREFUSED/)
    await pair.query(primaryUrl, `insert into ${table} values (3)`)
    await replica.waitForReplicaCatchUp()
    expect(await pair.ids(replicaUrl, table)).toEqual([1, 2, 3])
  } finally {
    await replica2.startReplica()
  }
  await replica2.waitForReplicaCatchUp()
  expect(await pair.ids(replica2Url, table)).toEqual([1, 2, 3])
}

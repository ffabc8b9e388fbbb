// Proves the harness gives real replication: replicas lag when paused, refuse writes, die and come back.
import { randomUUID } from 'node:crypto'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { controlMariaDb, controlPostgres, replication } from './control.js'

const env = replication()

/** Replay lag a paused replica must show; well above normal streaming latency. */
const PAUSED_WAIT_MS = 300

const uniqueTable = () => `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('PostgreSQL pair', () => {
  const { primaryUrl, replicaUrl, adminPrimaryUrl, adminReplicaUrl } = env.postgres
  const replica = controlPostgres(env.postgres)

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
})

describe('MariaDB pair', () => {
  const { primaryUrl, replicaUrl } = env.mariadb
  const replica = controlMariaDb(env.mariadb)

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
})

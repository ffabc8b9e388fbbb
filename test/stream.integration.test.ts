// `.stream()` on backends built from connection strings: PostgreSQL through pg-cursor (loaded on
// demand), MariaDB through mysql2's row stream; on the replica, counted as a read of that replica.
import { sql } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import Cursor from 'pg-cursor'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Backends,
  type BackendsConfig,
  type CanRead,
  createBackends,
  type WriteBackend,
  WriteOnReadBackendError,
} from '../src/index.js'
import { type Family, families, type Item, type TestDB } from './support/databases.js'

interface StreamDB {
  stream_items: Item
}

const ROWS = 250

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  let db: Backends<StreamDB>

  beforeAll(async () => {
    family = familyOf()
    db = createBackends<StreamDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
    })
    // createItems names the table itself; its schema type is only that of the default table.
    await family.createItems(db.write as unknown as WriteBackend<TestDB>, 'stream_items')
    const values = Array.from({ length: ROWS }, (_, i) => ({ name: `item ${i}`, qty: i }))
    await db.write.insertInto('stream_items').values(values).execute()
    await family.control.waitForReplicaCatchUp()
  })

  afterAll(async () => {
    if (db) await sql`drop table if exists stream_items`.execute(db.write)
    await db?.destroy()
  })

  // Which server sends each row, as the server itself says.
  const serverOf = () =>
    family.dialect === 'postgres'
      ? sql<string>`case inet_server_port() when ${Number(new URL(family.replicaUrl).port)} then 'replica' else 'other' end`
      : sql<string>`case @@server_id when 2 then 'replica' else 'other' end`

  it('streams every row from the replica in order', async () => {
    const seen: number[] = []
    const servers = new Set<string>()
    const query = db.read
      .selectFrom('stream_items')
      .select(['qty', serverOf().as('server')])
      .orderBy('qty')
    for await (const row of query.stream(10)) {
      seen.push(row.qty)
      servers.add(row.server)
    }
    expect(seen).toEqual(Array.from({ length: ROWS }, (_, i) => i))
    expect([...servers]).toEqual(['replica'])
  })

  it('a stream left early releases its connection: the next queries run', async () => {
    const items = db.read
    for (let round = 0; round < 15; round++) {
      for await (const row of items.selectFrom('stream_items').select(['qty']).orderBy('qty').stream(5)) {
        if (row.qty >= 2) break
      }
    }
    // pg's and mysql2's pools hold 10 connections: 15 streams that leaked theirs would hang this read.
    const count = await items
      .selectFrom('stream_items')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    expect(Number(count.n)).toBe(ROWS)
  })

  it('streams on the primary through db.write', async () => {
    const items = db.write
    let rows = 0
    for await (const _row of items.selectFrom('stream_items').selectAll().stream(50)) rows++
    expect(rows).toBe(ROWS)
  })

  const drain = async (backend: CanRead<StreamDB>) => {
    let rows = 0
    for await (const _row of backend.selectFrom('stream_items').select('qty').stream(25)) rows++
    return rows
  }
  const totalReads = (backends: Backends<StreamDB>) =>
    Object.values(backends.stats().readsByNode).reduce((sum, n) => sum + n, 0)

  it('streams with pools handed in, pool configs, an explicit cursor and read-only transactions per read', async () => {
    const configs: Partial<BackendsConfig>[] =
      family.dialect === 'postgres'
        ? [
            {
              primary: new pg.Pool({ connectionString: family.primaryUrl }),
              replicas: [new pg.Pool({ connectionString: family.replicaUrl })],
            },
            { primary: { connectionString: family.primaryUrl }, replicas: [{ connectionString: family.replicaUrl }] },
            { cursor: Cursor },
            { readOnlySessions: 'transaction' },
          ]
        : [
            {
              primary: mysql2.createPool({ uri: family.primaryUrl }),
              replicas: [mysql2.createPool({ uri: family.replicaUrl })],
            },
            { primary: { uri: family.primaryUrl }, replicas: [{ uri: family.replicaUrl }] },
            { readOnlySessions: 'transaction' },
          ]
    for (const extra of configs) {
      await using other = createBackends<StreamDB>({
        dialect: family.dialect,
        primary: family.primaryUrl,
        replicas: [family.replicaUrl],
        ...extra,
      } as BackendsConfig)
      expect(await drain(other.read)).toBe(ROWS)
      expect(await drain(other.write)).toBe(ROWS)
      // A stream is one read of the replica; a plain read after it runs as usual.
      expect(Object.keys(other.stats().readsByNode)).toEqual([expect.stringMatching(/^replica 1\b/)])
      expect(totalReads(other)).toBe(1)
      const count = await other.read
        .selectFrom('stream_items')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
      expect(Number(count.n)).toBe(ROWS)
    }
  })

  it("streams in transactions and on a session's read backend", async () => {
    const before = totalReads(db)
    expect(await db.read.transaction().execute((tx) => drain(tx))).toBe(ROWS)
    expect(await db.write.transaction().execute((tx) => drain(tx))).toBe(ROWS)
    const session = db.session()
    await session.write.updateTable('stream_items').set({ name: 'seen' }).where('qty', '=', 0).execute()
    let first: string | undefined
    for await (const row of session.read.selectFrom('stream_items').select('name').where('qty', '=', 0).stream()) {
      first = row.name
    }
    // The session's read sees its own write, wherever it ran.
    expect(first).toBe('seen')
    expect(totalReads(db) - before).toBe(2)
  })

  it('refuses a write streamed through db.read before it is sent', async () => {
    const read = db.read as unknown as WriteBackend<StreamDB>
    const attempt = (async () => {
      for await (const _row of read.deleteFrom('stream_items').returning('id').stream()) {
        // never reached
      }
    })()
    await expect(attempt).rejects.toBeInstanceOf(WriteOnReadBackendError)
    const count = await db.write
      .selectFrom('stream_items')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow()
    expect(Number(count.n)).toBe(ROWS)
  })
})

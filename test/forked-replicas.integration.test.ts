// Replicas that follow another history than the primary's, on clusters of their own: once a probe of the
// primary shows one (it replayed past the primary), it serves nothing until its server restarts, also after
// the primary has written past it, when positions alone no longer show it. PostgreSQL: a replica still on
// the old primary's history after a failover, ahead of the promoted one. MariaDB: a replica of another
// cluster whose GTIDs are ahead of the primary's, from the first round of checks on.
import { sql } from 'kysely'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BackendEvent, createBackends, readSql } from '../src/index.js'
import { replication } from './harness/control.js'
import {
  controlMariaDb,
  type MariaDbPair,
  type PostgresPair,
  startMariaDbPair,
  startPostgresPair,
} from './harness/replication.js'
import { type Item, mariadbFamily, type TestDB } from './support/databases.js'
import { until } from './support/load.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const portOf = (url: string) => Number(new URL(url).port)

describe('PostgreSQL: a replica left on the old history by a failover', () => {
  let pair: PostgresPair
  beforeAll(async () => {
    pair = await startPostgresPair()
  })
  afterAll(async () => {
    await pair?.stop()
  })

  it('serves no session read and no row of the old history, also once the new primary wrote past it', async () => {
    const events: BackendEvent[] = []
    const db = createBackends<{ fork_items: Item }>({
      dialect: 'postgres',
      primary: [pair.primaryUrl, pair.replicaUrl],
      replicas: [pair.replicaUrl, pair.replica2Url],
      healthCheckIntervalMs: 200,
      onEvent: (event) => events.push(event),
    })
    try {
      await sql`create table fork_items (id serial primary key, name text not null, qty int not null)`.execute(db.write)
      await pair.waitForReplicaCatchUp()
      await until(() => db.replicas().every((r) => r.state === 'up'), 'both replicas up')

      // Replica 1, to be promoted, receives nothing more; replica 2 still gets the old primary's last rows.
      const admin = new pg.Client({ connectionString: pair.adminReplicaUrl })
      await admin.connect()
      try {
        await admin.query("alter system set primary_conninfo = ''")
        await admin.query('select pg_reload_conf()')
        for (let receiving = true; receiving; await sleep(50)) {
          const { rows } = await admin.query('select count(*)::int as n from pg_stat_wal_receiver')
          receiving = rows[0].n > 0
        }
      } finally {
        await admin.end()
      }
      await db.write
        .insertInto('fork_items')
        .values(Array.from({ length: 5000 }, (_, i) => ({ name: `old-history-${i}`, qty: -1 })))
        .execute()
      await sleep(500)
      await pair.killPrimary()
      await pair.promoteReplica(1)
      await until(() => db.replicas()[1]?.state === 'not-a-replica', 'replica 2 to be found on another history', 10_000)

      const session = db.session()
      await session.write.insertInto('fork_items').values({ name: 'mine', qty: 7 }).execute()
      const token = session.token()
      // Other writes take the new primary's WAL past where replica 2 stopped.
      for (let k = 0; k < 6; k++) {
        await db.write
          .insertInto('fork_items')
          .values(Array.from({ length: 1000 }, (_, j) => ({ name: `filler-${k}-${j}`, qty: 0 })))
          .execute()
      }
      await sleep(1_500)

      const read = async (backend: Parameters<ReturnType<typeof readSql>['execute']>[0]) => {
        const { rows } = await readSql<{ port: number; mine: number; old: number }>`
          select inet_server_port() as port,
            (select count(*)::int from fork_items where name = 'mine') as mine,
            (select count(*)::int from fork_items where name like 'old-history-%') as old`.execute(backend)
        return rows[0] as { port: number; mine: number; old: number }
      }
      const answers = []
      for (let k = 0; k < 10; k++) {
        answers.push(await read(session.read), await read(db.session(token).read), await read(db.read))
      }
      expect(answers.filter((a) => a.port === portOf(pair.replica2Url))).toEqual([])
      expect(answers.filter((a) => a.old !== 0)).toEqual([])
      expect(answers.slice(0, 2).map((a) => a.mine)).toEqual([1, 1])
      expect(db.replicas()[1]?.state).toBe('not-a-replica')
      expect(events.filter((e) => e.type === 'readmit' && e.replica.startsWith('replica 2'))).toEqual([])
    } finally {
      await db.destroy()
    }
  })
})

describe('MariaDB: a replica of another cluster, ahead of the primary', () => {
  let other: MariaDbPair
  beforeAll(async () => {
    other = await startMariaDbPair()
  })
  afterAll(async () => {
    await other?.stop()
  })

  it('serves no read from the first round of checks on, also once the primary wrote past it', async () => {
    const family = mariadbFamily()
    const realAdmin = await mysql.createConnection({ uri: replication().mariadb.adminPrimaryUrl })
    const otherAdmin = await mysql.createConnection({ uri: other.adminPrimaryUrl })
    const seqOf = async (admin: mysql.Connection) => {
      const [rows] = (await admin.query('select @@gtid_binlog_pos as pos')) as unknown as [{ pos: string }[]]
      return Number(String(rows[0]?.pos).split('-')[2])
    }
    try {
      // The other cluster's servers have the same server ids and domain: its GTIDs read 0-1-N too.
      await realAdmin.query('create table if not exists app.forked_n (n int)')
      await otherAdmin.query('create table if not exists app.forked_n (n int)')
      const realSeq = await seqOf(realAdmin)
      while ((await seqOf(otherAdmin)) < realSeq + 30) await otherAdmin.query('insert into app.forked_n values (1)')
      const otherSeq = await seqOf(otherAdmin)
      await controlMariaDb(other, 2).waitForReplicaCatchUp()

      const events: BackendEvent[] = []
      const db = createBackends<TestDB>({
        dialect: 'mysql',
        primary: family.primaryUrl,
        replicas: [family.replicaUrl, other.replica2Url],
        onEvent: (event) => events.push(event),
      })
      const onOther = async (reads: number) => {
        let count = 0
        for (let i = 0; i < reads; i++) {
          const { rows } = await readSql<{ port: number }>`select @@port as port`.execute(db.read)
          if (Number(rows[0]?.port) === portOf(other.replica2Url)) count++
        }
        return count
      }
      try {
        await until(() => db.replicas().every((r) => r.lastCheck !== null), 'the first round of checks')
        expect(db.replicas()[1]?.state).toBe('not-a-replica')
        expect(await onOther(200)).toBe(0)

        for (let seq = await seqOf(realAdmin); seq <= otherSeq + 2; seq++) {
          await realAdmin.query('insert into app.forked_n values (2)')
        }
        await sleep(2_500)
        expect(await onOther(100)).toBe(0)
        expect(db.replicas()[1]?.state).toBe('not-a-replica')
        expect(events.filter((e) => e.type === 'readmit')).toEqual([])
      } finally {
        await db.destroy()
      }
    } finally {
      await realAdmin.end()
      await otherAdmin.end()
    }
  })
})

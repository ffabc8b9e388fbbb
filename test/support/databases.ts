// What the integration tests need to know about each database family, so that one suite runs on both.
import { type Dialect, type Generated, MysqlDialect, PostgresDialect, sql } from 'kysely'
import mysql2 from 'mysql2'
import mysqlPromise from 'mysql2/promise'
import pg from 'pg'
import type { WriteBackend } from '../../src/index.js'
import { controlMariaDb, controlPostgres, type ReplicaControl, replication } from '../harness/control.js'
import type { ScenarioTarget } from './fault-scenarios.js'
import { queryText } from './round-trips.js'

export interface Item {
  id: Generated<number>
  name: string
  qty: number
}

export interface TestDB {
  items: Item
}

export interface Family {
  readonly dialect: 'postgres' | 'mysql'
  readonly primaryUrl: string
  /** Replica 1, the one most tests use. */
  readonly replicaUrl: string
  readonly control: ReplicaControl
  /** Replica 2 of the same primary, for tests that spread reads over two replicas. */
  readonly replica2Url: string
  readonly control2: ReplicaControl
  /** A `select` whose single row's `where` column says which server answered: 'primary' | 'replica'. */
  readonly whereSql: string
  /**
   * A `select` whose single row's `server` column names the server that answered, as the server
   * itself tells (its port, or its server id): 'primary' | 'replica 1' | 'replica 2'.
   */
  readonly serverSql: string
  /** A `select` whose single row's `ro` column is truthy when the session is read-only. */
  readonly readOnlySql: string
  /**
   * A select expression that the database refuses in a read-only session: a function of the app's own
   * that writes (the guard refuses built-ins such as nextval by name, before anything is sent).
   */
  readonly writingSelect: string
  /** A replica dialect whose driver records every SQL text it sends. */
  recordingReplica(sent: string[]): Dialect
  createItems(db: WriteBackend<any>, table: string): Promise<void>
}

export function postgresFamily(): Family {
  const env = replication().postgres
  return {
    dialect: 'postgres',
    primaryUrl: env.primaryUrl,
    replicaUrl: env.replicaUrl,
    control: controlPostgres(env),
    replica2Url: env.replica2Url,
    control2: controlPostgres(env, 2),
    whereSql: `select case when pg_is_in_recovery() then 'replica' else 'primary' end as "where"`,
    serverSql: [
      'select case inet_server_port()',
      ...[env.primaryUrl, env.replicaUrl, env.replica2Url].map(
        (url, i) => `when ${new URL(url).port} then '${i === 0 ? 'primary' : `replica ${i}`}'`,
      ),
      `else 'port ' || inet_server_port() end as server`,
    ].join(' '),
    readOnlySql: `select current_setting('transaction_read_only') = 'on' as ro`,
    writingSelect: 'kysely_rw_test_write()',
    recordingReplica(sent) {
      const pool = new pg.Pool({ connectionString: env.replicaUrl })
      pool.on('connect', (client) => {
        const query = client.query.bind(client) as (...args: unknown[]) => unknown
        ;(client as { query: unknown }).query = (...args: unknown[]) => {
          sent.push(queryText(args[0]))
          return query(...args)
        }
      })
      return new PostgresDialect({ pool })
    },
    async createItems(db, table) {
      await sql`drop table if exists ${sql.table(table)}`.execute(db)
      await sql`create table ${sql.table(table)} (id serial primary key, name text not null, qty int not null default 0)`.execute(
        db,
      )
      await sql`create sequence if not exists kysely_rw_test_seq`.execute(db)
      await sql`create table if not exists kysely_rw_test_writes (n int)`.execute(db)
      await sql`create or replace function kysely_rw_test_write() returns int language sql as $$ insert into kysely_rw_test_writes values (1) returning 1 $$`.execute(
        db,
      )
    },
  }
}

export function mariadbFamily(): Family {
  const env = replication().mariadb
  return {
    dialect: 'mysql',
    primaryUrl: env.primaryUrl,
    replicaUrl: env.replicaUrl,
    control: controlMariaDb(env),
    replica2Url: env.replica2Url,
    control2: controlMariaDb(env, 2),
    whereSql: `select case when @@server_id = 1 then 'primary' else 'replica' end as \`where\``,
    // Server ids: 1 the primary, 2 replica 1, 3 replica 2 (see test/harness/replication.ts).
    serverSql: `select case @@server_id when 1 then 'primary' when 2 then 'replica 1' when 3 then 'replica 2' else concat('server id ', @@server_id) end as server`,
    // MariaDB names it tx_read_only; MySQL 8 transaction_read_only.
    readOnlySql: 'select @@session.tx_read_only as ro',
    writingSelect: 'kysely_rw_test_write()',
    recordingReplica(sent) {
      const pool = mysql2.createPool({ uri: env.replicaUrl })
      pool.on('connection', (connection) => {
        const query = connection.query.bind(connection) as (...args: unknown[]) => unknown
        ;(connection as { query: unknown }).query = (...args: unknown[]) => {
          const text = args[0]
          sent.push(typeof text === 'string' ? text : String((text as { sql?: unknown }).sql))
          return query(...args)
        }
      })
      return new MysqlDialect({ pool })
    },
    async createItems(db, table) {
      await sql`drop table if exists ${sql.table(table)}`.execute(db)
      await sql`create table ${sql.table(table)} (id int auto_increment primary key, name varchar(100) not null, qty int not null default 0)`.execute(
        db,
      )
      await sql`create sequence if not exists kysely_rw_test_seq`.execute(db)
      await sql`create table if not exists kysely_rw_test_writes (n int)`.execute(db)
      // With binary logging only SUPER may create functions; SQL SECURITY INVOKER runs it with the caller's rights.
      const admin = await mysqlPromise.createConnection({ uri: env.adminPrimaryUrl })
      try {
        await admin.query(
          'create or replace function kysely_rw_test_write() returns int deterministic modifies sql data sql security invoker ' +
            'begin insert into kysely_rw_test_writes values (1); return 1; end',
        )
      } finally {
        await admin.end()
      }
    },
  }
}

export const families: ReadonlyArray<[string, () => Family]> = [
  ['PostgreSQL', postgresFamily],
  ['MariaDB', mariadbFamily],
]

/** A family as the fault scenarios (test/support/fault-scenarios.ts) take it. */
export function scenarioTarget(family: Family): ScenarioTarget {
  return {
    dialect: family.dialect,
    primaryUrl: family.primaryUrl,
    replicaUrls: [family.replicaUrl, family.replica2Url],
    controls: [family.control, family.control2],
    createTable: (db, table) => family.createItems(db, table),
  }
}

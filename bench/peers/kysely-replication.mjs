// kysely-replication 0.3 on its own kysely 0.28 (its peer range), pg and mysql2, all resolved from
// bench/peers/node_modules. Plain JavaScript with a .d.mts beside it, so that the root type check
// passes on a fresh clone where bench/peers/node_modules is not installed yet.
import { Kysely, MysqlDialect, PostgresAdapter, PostgresDialect, PostgresIntrospector, PostgresQueryCompiler } from 'kysely'
import { KyselyReplicationDialect } from 'kysely-replication'
import { RoundRobinReplicaStrategy } from 'kysely-replication/strategy/round-robin'
import mysql2 from 'mysql2'
import pg from 'pg'

export function createKyselyReplication({ dialect, primaryUrl, replicaUrls }) {
  const make =
    dialect === 'postgres'
      ? (url) => {
          const pool = new pg.Pool({ connectionString: url })
          // As kysely-rw does: a server that goes away must not crash the process through an unheard
          // 'error' on an idle or checked-out client (the query in flight still rejects).
          pool.on('error', () => {})
          pool.on('connect', (client) => client.on('error', () => {}))
          return new PostgresDialect({ pool })
        }
      : (url) => new MysqlDialect({ pool: mysql2.createPool({ uri: url }) })
  return new Kysely({
    dialect: new KyselyReplicationDialect({
      primaryDialect: make(primaryUrl),
      replicaDialects: replicaUrls.map(make),
      replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: 'error' }),
    }),
  })
}

/**
 * kysely-replication and a plain Kysely 0.28 on drivers the caller makes (the in-process benchmarks'
 * answering driver): `{ replication, plain }`. PostgreSQL's adapter and compiler, from kysely 0.28.
 */
export function createOnDrivers({ makeDriver }) {
  const dialect = () => ({
    createAdapter: () => new PostgresAdapter(),
    createDriver: makeDriver,
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  })
  return {
    replication: new Kysely({
      dialect: new KyselyReplicationDialect({
        primaryDialect: dialect(),
        replicaDialects: [dialect(), dialect()],
        replicaStrategy: new RoundRobinReplicaStrategy({ onTransaction: 'error' }),
      }),
    }),
    plain: new Kysely({ dialect: dialect() }),
  }
}

// kysely-replication 0.3 on its own kysely 0.28 (its peer range), pg and mysql2, all resolved from
// bench/peers/node_modules. Plain JavaScript with a .d.mts beside it, so that the root type check
// passes on a fresh clone where bench/peers/node_modules is not installed yet.
import { Kysely, MysqlDialect, PostgresDialect } from 'kysely'
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

// Where the examples connect.
//
//   PRIMARY_URL=postgres://app@db1/app REPLICA_URL=postgres://app@db2/app npx tsx examples/shop.ts
//   DIALECT=mysql PRIMARY_URL=mysql://app:pw@db1/app REPLICA_URL=mysql://app:pw@db2/app npx tsx examples/shop.ts
//   npx tsx examples/shop.ts   # no PRIMARY_URL: an embedded PostgreSQL (PGlite), no replica
//
// REPLICA_URL may list several replicas, comma-separated. DIALECT is 'postgres' or 'mysql' (MySQL 8 and
// MariaDB); when unset it follows PRIMARY_URL's scheme.
import { PGlite } from '@electric-sql/pglite'
import { PGliteDialect } from 'kysely'
import type { BackendsConfig } from '../../src/index.js'

export type Connection = Pick<BackendsConfig, 'dialect' | 'primary' | 'replicas'>

export function connection(): Connection {
  const primary = process.env.PRIMARY_URL
  if (!primary) {
    // With no replica, reads run on the primary, still in read-only sessions.
    return { dialect: 'postgres', primary: new PGliteDialect({ pglite: new PGlite() }) }
  }
  const dialect = process.env.DIALECT || (primary.startsWith('mysql') ? 'mysql' : 'postgres')
  if (dialect !== 'postgres' && dialect !== 'mysql') {
    throw new Error(`DIALECT must be 'postgres' or 'mysql', not '${dialect}'.`)
  }
  const replicas = (process.env.REPLICA_URL ?? '').split(',').filter((url) => url.trim() !== '')
  return { dialect, primary, replicas }
}

/** One line saying where an example runs, without credentials. */
export function describeConnection({ dialect, primary, replicas = [] }: Connection): string {
  if (typeof primary !== 'string') return 'running on PGlite (embedded PostgreSQL), no replica'
  const count = replicas.length === 1 ? '1 replica' : `${replicas.length} replicas`
  return `running on ${dialect === 'mysql' ? 'MySQL/MariaDB' : 'PostgreSQL'}: a primary and ${count}`
}

// kysely-ctl on kysely-rw: `db.kysely` is the primary as a plain Kysely<DB>, which is what kysely-ctl's
// `kysely` option takes. Migrations then run on the primary, raise the schema floor like any DDL through
// `db.write`, and kysely-ctl's `destroy()` at the end closes every pool and timer of the backends.
//
//   PRIMARY_URL=postgres://app@db1/app REPLICA_URL=postgres://app@db2/app \
//     npx kysely migrate:latest --config examples/kysely-ctl/kysely.config.ts
import { defineConfig } from 'kysely-ctl'
import { createBackends } from '../../src/index.js'
import { connection } from '../support/connection.js'

const db = createBackends(connection())

export default defineConfig({
  kysely: db.kysely,
  migrations: { migrationFolder: 'migrations' },
})

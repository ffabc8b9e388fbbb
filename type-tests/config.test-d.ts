/**
 * Node configurations are typed as each driver's: typos in pool options do not compile, pools made by
 * the application and `string | undefined` (an environment variable) do.
 */
import { PostgresDialect } from 'kysely'
import { createPool, type Pool as MysqlPool, type PoolOptions } from 'mysql2'
import pg from 'pg'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import {
  type Backends,
  type BackendsConfig,
  createBackends,
  type MysqlBackendsConfig,
  type PostgresBackendsConfig,
} from '../src/index.js'
import type { AppDB } from './schema.js'

// --- what compiles ------------------------------------------------------------------------------

// The docs' form under `strict`: an unset variable is refused at run time, naming the option.
expectType<Backends<AppDB>>(
  createBackends<AppDB>({
    dialect: 'postgres',
    primary: process.env.DATABASE_URL,
    replicas: [process.env.REPLICA_URL, process.env.REPLICA2_URL],
  }),
)
createBackends<AppDB>({ dialect: 'postgres', primary: [process.env.A, process.env.B] })

// Pools the application made, and the drivers' own option types.
createBackends<AppDB>({ dialect: 'postgres', primary: new pg.Pool({ max: 5 }), replicas: [new pg.Pool()] })
declare const mysqlPool: MysqlPool
createBackends<AppDB>({ dialect: 'mysql', primary: mysqlPool, replicas: [createPool({ uri: 'mysql://db/app' })] })
declare const pgOptions: pg.PoolConfig
declare const mysqlOptions: PoolOptions
createBackends<AppDB>({ dialect: 'postgres', primary: pgOptions })
createBackends<AppDB>({ dialect: 'mysql', primary: mysqlOptions })
createBackends<AppDB>({
  dialect: 'postgres',
  primary: {
    connectionString: 'postgres://db/app',
    max: 20,
    ssl: { rejectUnauthorized: false },
    statement_timeout: 5000,
  },
})
createBackends<AppDB>({ dialect: 'mysql', primary: { host: 'db', user: 'app', connectionLimit: 10, timezone: 'Z' } })
createBackends<AppDB>({ dialect: 'postgres', primary: new PostgresDialect({ pool: new pg.Pool() }) })

// A configuration built from a dialect chosen at run time still compiles.
declare const dialect: 'postgres' | 'mysql'
const loose: BackendsConfig = { dialect, primary: process.env.DATABASE_URL }
createBackends<AppDB>({ ...loose, healthCheckIntervalMs: 500 })

// --- what does not ------------------------------------------------------------------------------

// A misspelt option fails at compile time, not at the first query with a driver's message.
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: { connectionStrin: 'postgres://db/app' } }))
expectError(createBackends<AppDB>({ dialect: 'mysql', primary: { hots: 'db' } }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: 'postgres://db/app', replicas: [{ prot: 5432 }] }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: { port: '5432' } }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: 5432 }))
expectError(createBackends<AppDB>({ dialect: 'postgres', primary: null }))

// Annotated with a family's type, the other family's options and pools do not compile either.
declare function postgresOnly(config: PostgresBackendsConfig): void
declare function mysqlOnly(config: MysqlBackendsConfig): void
const pgConfig: PostgresBackendsConfig = { dialect: 'postgres', primary: { connectionString: 'postgres://db/app' } }
expectAssignable<BackendsConfig>(pgConfig)
expectError(postgresOnly({ dialect: 'postgres', primary: { uri: 'mysql://db/app' } }))
expectError(postgresOnly({ dialect: 'postgres', primary: mysqlPool }))
expectError(mysqlOnly({ dialect: 'mysql', primary: new pg.Pool() }))
expectError(mysqlOnly({ dialect: 'mysql', primary: { connectionString: 'postgres://db/app' } }))
expectNotAssignable<MysqlBackendsConfig>(pgConfig)

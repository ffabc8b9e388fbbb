import type { Dialect, MysqlPool, PostgresPool } from 'kysely'

/**
 * pg's `PoolConfig` (pg-pool's options and the client's), written out here so that neither `@types/pg`
 * nor `pg` must be installed to type a MySQL configuration. Options whose types belong to other
 * packages (`ssl`, `types`, `stream`, …) are `unknown`: pg checks them. An object typed with pg's own
 * `PoolConfig` is accepted as it is.
 */
export interface PostgresPoolConfig {
  readonly connectionString?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly user?: string | undefined
  /** A string, or a function pg calls for each new connection (rotating credentials, IAM tokens). */
  readonly password?: string | (() => string | Promise<string>) | undefined
  readonly database?: string | undefined
  readonly ssl?: unknown
  readonly sslnegotiation?: 'postgres' | 'direct' | undefined
  readonly enableChannelBinding?: boolean | undefined
  readonly keepAlive?: boolean | undefined
  readonly keepAliveInitialDelayMillis?: number | undefined
  readonly statement_timeout?: false | number | undefined
  readonly query_timeout?: number | undefined
  readonly lock_timeout?: number | undefined
  readonly idle_in_transaction_session_timeout?: number | undefined
  readonly application_name?: string | undefined
  readonly fallback_application_name?: string | undefined
  readonly connectionTimeoutMillis?: number | undefined
  readonly options?: string | undefined
  readonly client_encoding?: string | undefined
  readonly types?: unknown
  readonly stream?: unknown
  readonly pipeline?: boolean | undefined
  readonly binary?: boolean | undefined
  readonly max?: number | undefined
  readonly min?: number | undefined
  readonly idleTimeoutMillis?: number | null | undefined
  readonly allowExitOnIdle?: boolean | undefined
  readonly maxUses?: number | undefined
  readonly maxLifetimeSeconds?: number | undefined
  readonly log?: unknown
  readonly Promise?: unknown
  readonly Client?: unknown
  readonly onConnect?: unknown
  readonly verify?: unknown
}

/**
 * mysql2's `PoolOptions` (its connection options and the pool's), written out here for the same
 * reason as {@link PostgresPoolConfig}. An object typed with mysql2's own `PoolOptions` is accepted.
 */
export interface MysqlPoolOptions {
  readonly uri?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly localAddress?: string | undefined
  readonly socketPath?: string | undefined
  readonly user?: string | undefined
  readonly password?: string | undefined
  readonly password1?: string | undefined
  readonly password2?: string | undefined
  readonly password3?: string | undefined
  readonly passwordSha1?: string | undefined
  readonly database?: string | undefined
  readonly charset?: string | undefined
  readonly charsetNumber?: number | undefined
  readonly timezone?: string | undefined
  readonly connectTimeout?: number | undefined
  readonly stringifyObjects?: boolean | undefined
  readonly insecureAuth?: boolean | undefined
  readonly infileStreamFactory?: unknown
  readonly typeCast?: unknown
  readonly queryFormat?: unknown
  readonly supportBigNumbers?: boolean | undefined
  readonly bigNumberStrings?: boolean | undefined
  readonly dateStrings?: boolean | readonly ('TIMESTAMP' | 'DATETIME' | 'DATE')[] | undefined
  readonly debug?: unknown
  readonly trace?: boolean | undefined
  readonly multipleStatements?: boolean | undefined
  readonly flags?: readonly string[] | undefined
  readonly ssl?: unknown
  readonly rowsAsArray?: boolean | undefined
  readonly enableKeepAlive?: boolean | undefined
  readonly keepAliveInitialDelay?: number | undefined
  readonly compress?: boolean | undefined
  readonly authSwitchHandler?: unknown
  readonly connectAttributes?: unknown
  readonly isServer?: boolean | undefined
  readonly maxPreparedStatements?: number | undefined
  readonly namedPlaceholders?: boolean | undefined
  readonly nestTables?: boolean | string | undefined
  readonly decimalNumbers?: boolean | undefined
  readonly pool?: unknown
  readonly stream?: unknown
  readonly Promise?: unknown
  readonly disableEval?: boolean | undefined
  readonly enableCleartextPlugin?: boolean | undefined
  readonly authPlugins?: unknown
  readonly jsonStrings?: boolean | undefined
  readonly gracefulEnd?: boolean | undefined
  readonly waitForConnections?: boolean | undefined
  readonly connectionLimit?: number | undefined
  readonly maxIdle?: number | undefined
  readonly idleTimeout?: number | undefined
  readonly queueLimit?: number | undefined
  readonly resetOnRelease?: boolean | undefined
}

/**
 * Where a PostgreSQL node connects: a `postgres://` connection string, pg's pool options, a `pg.Pool`
 * you made (ended by `destroy()`, as Kysely's own dialect does), or a ready Kysely `Dialect`.
 */
export type PostgresNodeConfig = string | PostgresPoolConfig | PostgresPool | Dialect

/**
 * Where a MySQL / MariaDB node connects: a `mysql://` connection string, mysql2's pool options, a pool
 * from mysql2's `createPool` (ended by `destroy()`), or a ready Kysely `Dialect`.
 */
export type MysqlNodeConfig = string | MysqlPoolOptions | MysqlPool | Dialect

/** A node configuration of either family. */
export type NodeConfig = PostgresNodeConfig | MysqlNodeConfig

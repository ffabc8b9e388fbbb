import {
  type DatabaseConnection,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  MysqlAdapter,
  MysqlDriver,
  MysqlIntrospector,
  type MysqlPool,
  PGliteAdapter,
  type PGliteDialectConfig,
  PGliteDriver,
  PostgresAdapter,
  PostgresDriver,
  PostgresIntrospector,
  type PostgresPool,
  type QueryCompiler,
  type QueryExecutor,
} from 'kysely'
import { type Backends, createBackends } from './backends.js'
import type { BackendsConfig } from './config.js'
import type { DialectName } from './dialects/dialect.js'
import { ConfigurationError } from './errors.js'

/**
 * What {@link fromKysely} takes besides the instance: the dialect, and any option of `createBackends` but the
 * nodes and `cursor` (streams read through the instance's own dialect: give its `PostgresDialect` a `cursor`).
 */
export interface FromKyselyOptions extends Omit<BackendsConfig, 'dialect' | 'primary' | 'replicas' | 'cursor'> {
  /** The family of the wrapped instance's dialect: `'postgres'` or `'mysql'` (MySQL 8 and MariaDB). */
  readonly dialect: DialectName
}

/**
 * Wraps an existing `Kysely<DB>` as backends of one node, for tests and for adopting kysely-rw one
 * function at a time: `write` runs on it, `read` runs on it in read-only transactions behind the same
 * guard as a replica's, so a write through `read` is refused before it is sent, and by the database.
 * Its plugins (CamelCasePlugin, …) apply to both backends. Add replicas later with `createBackends`.
 *
 * `destroy()` stops kysely-rw's health checks and leaves the wrapped instance open: the code not moved
 * over yet may still use it. Destroy it yourself when you are done with it.
 *
 * ```ts
 * const db = fromKysely(kysely, { dialect: 'postgres' })
 * await renameUser(db.write, 1, 'Ada') // WriteBackend<DB>
 * await findUser(db.read, 1)           // ReadBackend<DB>: same server, read-only
 * ```
 */
export function fromKysely<DB>(kysely: Kysely<DB>, options: FromKyselyOptions): Backends<DB> {
  if (typeof kysely !== 'object' || kysely === null || typeof kysely.getExecutor !== 'function') {
    throw new ConfigurationError(
      'fromKysely takes a Kysely instance (new Kysely<DB>({ dialect })) as its first argument.',
    )
  }
  if (kysely.isTransaction) {
    throw new ConfigurationError(
      'fromKysely was given a transaction: its own BEGIN and COMMIT would end yours. Hand it the Kysely instance ' +
        'the transaction was started on.',
    )
  }
  const executor = kysely.getExecutor()
  const family =
    executor.adapter instanceof PostgresAdapter
      ? 'postgres'
      : executor.adapter instanceof MysqlAdapter
        ? 'mysql'
        : undefined
  if (family !== undefined && options?.dialect !== family) {
    throw new ConfigurationError(
      `fromKysely was given a ${family === 'postgres' ? 'PostgreSQL' : 'MySQL'} Kysely instance with dialect ` +
        `${options?.dialect === undefined ? 'unset' : `'${String(options.dialect)}'`}: pass { dialect: '${family}' }.`,
    )
  }
  if ((options as { cursor?: unknown } | undefined)?.cursor !== undefined) {
    throw new ConfigurationError(
      "fromKysely streams through the wrapped instance's connections, which take no cursor from kysely-rw: give " +
        "the instance's PostgresDialect its cursor (new PostgresDialect({ pool, cursor: Cursor })).",
    )
  }
  const plugins = [...executor.plugins, ...(options.plugins ?? [])]
  const { dialect, ...rest } = options
  return createBackends<DB>({
    ...rest,
    dialect,
    plugins,
    primary: new KyselyInstanceDialect(executor.withoutPlugins(), dialect),
  })
}

/**
 * A Kysely `Dialect` whose driver lends the connections of an existing instance. Queries are compiled
 * by that instance's compiler without its plugins: createBackends applies them, as for its own nodes.
 */
class KyselyInstanceDialect implements Dialect {
  readonly #bare: QueryExecutor
  readonly #family: DialectName

  /** `bare`: the instance's executor without its plugins. */
  constructor(bare: QueryExecutor, family: DialectName) {
    this.#bare = bare
    this.#family = family
  }

  createDriver(): Driver {
    return lendingDriver(this.#bare, driverOfKind(this.#bare.adapter, this.#family))
  }

  createQueryCompiler(): QueryCompiler {
    const bare = this.#bare
    return { compileQuery: (node, queryId) => bare.compileQuery(node, queryId) }
  }

  createAdapter() {
    return this.#bare.adapter
  }

  createIntrospector(db: Kysely<unknown>) {
    return this.#family === 'postgres' ? new PostgresIntrospector(db) : new MysqlIntrospector(db)
  }
}

/**
 * A driver of the class Kysely gives the wrapped instance's dialect, told by its adapter: its BEGIN, COMMIT
 * and SAVEPOINT are those the instance's connections take, and its class tells kysely-rw how to send one
 * statement per read. PGlite's adapter is a PostgreSQL one, but its connection takes no pg query config and
 * runs transactions through PGlite's own. No pool: {@link lendingDriver} replaces the connection methods.
 */
function driverOfKind(adapter: DialectAdapter, family: DialectName): Driver {
  if (adapter instanceof PGliteAdapter) return new PGliteDriver({} as PGliteDialectConfig)
  return family === 'postgres'
    ? new PostgresDriver({ pool: {} as PostgresPool })
    : new MysqlDriver({ pool: {} as MysqlPool })
}

/** `driver`, lending the wrapped instance's connections from acquire to release instead of making a pool. */
function lendingDriver(executor: QueryExecutor, driver: Driver): Driver {
  const lent = new Map<DatabaseConnection, () => void>()
  driver.init = async () => {}
  driver.acquireConnection = () =>
    new Promise((resolve, reject) => {
      executor
        .provideConnection(
          (connection) =>
            new Promise<void>((release) => {
              lent.set(connection, release)
              resolve(connection)
            }),
        )
        .catch(reject)
    })
  driver.releaseConnection = async (connection) => {
    lent.get(connection)?.()
    lent.delete(connection)
  }
  // The wrapped instance belongs to the caller (see fromKysely): connections still lent go back to it.
  driver.destroy = async () => {
    for (const release of lent.values()) release()
    lent.clear()
  }
  return driver
}

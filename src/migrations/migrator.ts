import {
  type MigrateOptions,
  type MigrationResultSet,
  Migrator,
  type MigratorProps,
  type NoMigrations,
} from 'kysely/migration'
import type { WriteBackend } from '../capability.js'
import type { SchemaFloor } from '../consistency/schema-floor.js'

/** Kysely's Migrator options, without `db`: a kysely-rw migrator always runs on the primary. */
export type BackendMigratorProps = Omit<MigratorProps, 'db'>

/**
 * Kysely's `Migrator`, bound to the write backend, that raises the schema floor when a run finishes:
 * from then on no read goes to a replica that has not replayed the migrations.
 */
export class BackendMigrator<DB> extends Migrator {
  readonly #floor: SchemaFloor
  readonly #primaryPosition: () => Promise<string | undefined>

  constructor(
    write: WriteBackend<DB>,
    floor: SchemaFloor,
    /** The primary's current position, read on a connection of its own. */
    primaryPosition: () => Promise<string | undefined>,
    props: BackendMigratorProps,
  ) {
    // At run time the write backend is a Kysely instance; its type only narrows what users may call.
    super({ ...props, db: write as unknown as MigratorProps['db'] })
    this.#floor = floor
    this.#primaryPosition = primaryPosition
  }

  override async migrateToLatest(options?: MigrateOptions): Promise<MigrationResultSet> {
    return this.#raisingFloor(super.migrateToLatest(options))
  }

  override async migrateTo(target: string | NoMigrations, options?: MigrateOptions): Promise<MigrationResultSet> {
    return this.#raisingFloor(super.migrateTo(target, options))
  }

  override async migrateUp(options?: MigrateOptions): Promise<MigrationResultSet> {
    return this.#raisingFloor(super.migrateUp(options))
  }

  override async migrateDown(options?: MigrateOptions): Promise<MigrationResultSet> {
    return this.#raisingFloor(super.migrateDown(options))
  }

  // Each DDL statement raised the floor already; this also covers a failed run's partial work and
  // statements the classifier does not see as DDL (functions, procedures).
  async #raisingFloor(run: Promise<MigrationResultSet>): Promise<MigrationResultSet> {
    try {
      return await run
    } finally {
      this.#floor.raise(await this.#primaryPosition())
    }
  }
}

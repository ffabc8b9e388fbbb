/**
 * `Backends.kysely`: the primary as a plain `Kysely<DB>`, for code and tools that are typed
 * `Kysely<DB>` (Kysely's Migrator, kysely-ctl's config, adapters).
 */
import type { Kysely } from 'kysely'
import { type MigrationProvider, Migrator } from 'kysely/migration'
import { defineConfig } from 'kysely-ctl'
import { expectAssignable, expectError, expectType } from 'tsd'
import { type Backends, fromKysely, type ReadBackend, type WriteBackend } from '../src/index.js'
import { type AppDB, kysely, type OtherDB } from './schema.js'

declare const db: Backends<AppDB>
declare const provider: MigrationProvider

expectType<Kysely<AppDB>>(db.kysely)

// Kysely's own Migrator and kysely-ctl's config take it as it is.
new Migrator({ db: db.kysely, provider })
defineConfig({ kysely: db.kysely, migrations: { migrationFolder: 'migrations' } })

// A helper typed for plain Kysely accepts it, with the schema intact.
declare function legacyHelper(db: Kysely<AppDB>): Promise<void>
legacyHelper(db.kysely)
expectAssignable<Kysely<AppDB>>(db.kysely)

// It is the primary of this schema, not of any other.
declare function otherHelper(db: Kysely<OtherDB>): Promise<void>
expectError(otherHelper(db.kysely))

// The read backend never passes for a plain Kysely: that would let a tool write through a replica.
expectError(new Migrator({ db: db.read, provider }))
expectError(legacyHelper(db.read))

// --- fromKysely: an existing Kysely instance as backends of one node ------------------------------

const wrapped = fromKysely(kysely, { dialect: 'postgres' })
expectType<Backends<AppDB>>(wrapped)
expectType<WriteBackend<AppDB>>(wrapped.write)
expectType<ReadBackend<AppDB>>(wrapped.read)
wrapped.write.insertInto('users').values({ name: 'Ada' })
expectError(wrapped.read.insertInto('users').values({ name: 'Ada' }))
fromKysely(kysely, { dialect: 'mysql', onEvent: () => {}, healthCheckIntervalMs: 500 })
// The dialect is required, and nodes are the instance's: no primary or replicas to give.
expectError(fromKysely(kysely))
expectError(fromKysely(kysely, {}))
expectError(fromKysely(kysely, { dialect: 'sqlite' }))
expectError(fromKysely(kysely, { dialect: 'postgres', replicas: ['postgres://db2/app'] }))
// The schema comes from the instance.
declare function onOther(db: Backends<OtherDB>): void
expectError(onOther(fromKysely(kysely, { dialect: 'postgres' })))

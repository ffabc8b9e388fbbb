/**
 * `Backends.kysely`: the primary as a plain `Kysely<DB>`, for code and tools that are typed
 * `Kysely<DB>` (Kysely's Migrator, kysely-ctl's config, adapters).
 */
import type { Kysely } from 'kysely'
import { type MigrationProvider, Migrator } from 'kysely/migration'
import type { ReadonlyKysely } from 'kysely/readonly'
import { defineConfig } from 'kysely-ctl'
import { expectAssignable, expectError, expectType } from 'tsd'
import {
  asReadonlyKysely,
  type Backends,
  type CanRead,
  fromKysely,
  type ReadBackend,
  type WriteBackend,
} from '../src/index.js'
import { type AppDB, kysely, type OtherDB, type UsersDB } from './schema.js'

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

// --- Kysely's ReadonlyKysely: helpers typed with Kysely 0.29's read-only type -----------------------

declare function report(db: ReadonlyKysely<AppDB>): Promise<void>
declare function usersReport(db: ReadonlyKysely<UsersDB>): Promise<void>

// Not by assignment: ReadonlyKysely lets a locking read compile, and its executeQuery takes any select
// builder, one with a data-modifying CTE made on the primary included. Neither compiles on a read handle.
expectError(report(db.read))
expectError(report(db.session().read))
expectError(report(db.write))
declare const rk: ReadonlyKysely<AppDB>
rk.selectFrom('users').selectAll().forUpdate()
rk.executeQuery(
  db.write
    .with('gone', (qc) => qc.deleteFrom('users').returning('id'))
    .selectFrom('gone')
    .selectAll(),
)
expectError(db.read.executeQuery)

// By asReadonlyKysely, which says so at the call: the same object, the guard behind it.
report(asReadonlyKysely(db.read))
report(asReadonlyKysely(db.session().read))
report(asReadonlyKysely(db.write))
expectType<ReadonlyKysely<AppDB>>(asReadonlyKysely(db.read))
await db.read.transaction().execute((tx) => report(asReadonlyKysely(tx)))
export function fromCanRead(handle: CanRead<AppDB>) {
  return report(asReadonlyKysely(handle))
}
// A helper of fewer tables takes a backend of the whole schema, as CanRead does.
usersReport(asReadonlyKysely<UsersDB>(db.read))
// The schema is the handle's: not another one's.
expectError(report(asReadonlyKysely(fromKysely({} as Kysely<OtherDB>, { dialect: 'postgres' }).read)))
// A ReadonlyKysely does not pass for a backend: it has no capability.
expectError(asReadonlyKysely(rk))

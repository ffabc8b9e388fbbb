// Expand and contract with a live read loop: add a nullable column, backfill it in batches that
// throttle on replica lag, read the new column throughout with zero errors, then contract.
//
//   DIALECT=postgres PRIMARY_URL=postgres://… REPLICA_URL=postgres://… npx tsx examples/zero-downtime-migration.ts
//
// Without PRIMARY_URL it runs on an embedded PGlite (no replica: the floor has nothing to hold back).
import { PGlite } from '@electric-sql/pglite'
import { type Kysely, PGliteDialect, sql } from 'kysely'
import type { Migration } from 'kysely/migration'
import { type CanRead, createBackends } from '../src/index.js'

interface Account {
  id: number
  email: string
  legacy_flag: number | null
  tier: string | null
}
type DB = Record<string, Account>

const dialect = process.env.DIALECT === 'mysql' ? 'mysql' : 'postgres'
const table = `accounts_${process.pid}`
const ROWS = 2000
const BATCH = 200
const LAG_BUDGET_MS = 500
const INTERVAL_MS = 100

const db = createBackends<DB>({
  dialect,
  primary: process.env.PRIMARY_URL ?? new PGliteDialect({ pglite: new PGlite() }),
  replicas: process.env.REPLICA_URL ? [process.env.REPLICA_URL] : [],
  healthCheckIntervalMs: INTERVAL_MS,
  maxReplicaLagMs: LAG_BUDGET_MS * 4,
  migrationTable: `${table}_migrations`,
})

// Kysely migrations, as a deploy would have them in files.
const migrations: Record<string, Migration> = {
  '0001_create': {
    async up(m: Kysely<any>) {
      await m.schema
        .createTable(table)
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('email', 'varchar(100)', (c) => c.notNull())
        .addColumn('legacy_flag', 'integer')
        .execute()
    },
  },
  // Expand: a nullable column, so old code keeps working while it is filled.
  '0002_expand_add_tier': {
    async up(m: Kysely<any>) {
      await m.schema.alterTable(table).addColumn('tier', 'varchar(20)').execute()
    },
  },
}
// Contract: once every row has a tier and no code reads legacy_flag, drop it.
const contract: Record<string, Migration> = {
  ...migrations,
  '0003_contract_drop_legacy_flag': {
    async up(m: Kysely<any>) {
      await m.schema.alterTable(table).dropColumn('legacy_flag').execute()
    },
  },
}

const migrate = async (set: Record<string, Migration>) => {
  const { error } = await db.migrator({ provider: { getMigrations: async () => set } }).migrateToLatest()
  if (error) throw error
}

// Reads the new column the whole time, through the read backend: the schema floor keeps these off a
// replica that has not replayed the ALTER yet.
function readLoop(read: CanRead<DB>) {
  let running = true
  const stats = { reads: 0, errors: [] as string[] }
  const done = (async () => {
    while (running) {
      try {
        await read.selectFrom(table).select(['id', 'tier']).where('id', '<=', 10).execute()
        stats.reads++
      } catch (error) {
        stats.errors.push(error instanceof Error ? error.message : String(error))
      }
      await sleep(5)
    }
  })()
  return {
    stats,
    async stop() {
      running = false
      await done
    },
  }
}

async function waitForLagUnder(budgetMs: number): Promise<number> {
  for (;;) {
    const lag = Math.max(0, ...db.replicas().map((r) => (r.state === 'down' ? 0 : (r.lagMs ?? budgetMs))))
    if (lag <= budgetMs / 2) return lag
    await sleep(INTERVAL_MS)
  }
}

await migrate({ '0001_create': migrations['0001_create']! })
for (let id = 1; id <= ROWS; id += BATCH) {
  const rows = Array.from({ length: Math.min(BATCH, ROWS - id + 1) }, (_, i) => ({
    id: id + i,
    email: `user${id + i}@example.com`,
    legacy_flag: (id + i) % 3,
  }))
  await db.write.insertInto(table).values(rows).execute()
}

await migrate(migrations)
const loop = readLoop(db.read)

// Backfill in batches; before each batch, wait until the replicas are well within the lag budget.
let maxLag = 0
let throttled = 0
for (let from = 1; from <= ROWS; from += BATCH) {
  const lag = await waitForLagUnder(LAG_BUDGET_MS)
  if (lag > 0) throttled++
  maxLag = Math.max(maxLag, ...db.replicas().map((r) => r.lagMs ?? 0))
  await db.write
    .updateTable(table)
    .set({ tier: sql`case when legacy_flag = 0 then 'gold' else 'basic' end` })
    .where('id', '>=', from)
    .where('id', '<', from + BATCH)
    .execute()
}

const missing = await db.write
  .selectFrom(table)
  .select((eb) => eb.fn.countAll().as('n')) // a string on PostgreSQL, a number on MariaDB: Number() below
  .where('tier', 'is', null)
  .executeTakeFirstOrThrow()
await migrate(contract)
await sleep(4 * INTERVAL_MS)
const { stats } = loop
await loop.stop()

console.log(`rows backfilled: ${ROWS}, rows still without tier: ${Number(missing.n)}`)
console.log(`reads of the new column during the migration: ${stats.reads}, read errors: ${stats.errors.length}`)
if (stats.errors.length > 0) console.log(`first error: ${stats.errors[0]}`)
console.log(
  `max replica lag seen during backfill: ${maxLag} ms (budget ${LAG_BUDGET_MS} ms), batches that waited: ${throttled}`,
)
console.log(`replicas: ${JSON.stringify(db.replicas().map((r) => ({ name: r.name, state: r.state, lagMs: r.lagMs })))}`)

await sql`drop table ${sql.table(table)}`.execute(db.write)
await sql`drop table if exists ${sql.table(`${table}_migrations`)}`.execute(db.write)
await db.destroy()
if (stats.errors.length > 0 || Number(missing.n) > 0) process.exitCode = 1

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

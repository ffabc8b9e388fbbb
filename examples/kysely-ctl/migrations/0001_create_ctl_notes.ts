import type { Kysely } from 'kysely'

// Migrations take a plain Kysely: kysely-ctl hands them `db.kysely`, the primary.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('ctl_notes')
    .addColumn('id', 'integer', (col) => col.primaryKey())
    .addColumn('body', 'text', (col) => col.notNull())
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('ctl_notes').execute()
}

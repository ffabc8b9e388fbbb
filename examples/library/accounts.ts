// A library of data-access functions, written once against capabilities instead of connections:
//
// - reads take `CanRead`: a replica, the primary, a transaction's `tx`, a session's handles;
// - writes take `WriteBackend`: the primary only, so passing a replica handle does not compile;
// - a report that must stay off the primary takes `ReadBackend`.
//
// It names only its own tables: an app whose schema contains them passes its backends as they are.
// examples/data-access.ts is an app that uses it.
import { randomUUID } from 'node:crypto'
import type { Selectable } from 'kysely'
import type { CanRead, ReadBackend, WriteBackend } from '../../src/index.js'

export interface AccountsTable {
  id: string
  owner: string
  balance_cents: number
}

export interface TransfersTable {
  id: string
  from_account: string
  to_account: string
  amount_cents: number
}

/** The tables this library needs. Apps extend it with their own. */
export interface AccountsDB {
  accounts: AccountsTable
  transfers: TransfersTable
}

export type Account = Selectable<AccountsTable>

export class InsufficientFundsError extends Error {
  override readonly name = 'InsufficientFundsError'
  constructor(account: string, amountCents: number) {
    super(`Account ${account} cannot pay ${amountCents} cents.`)
  }
}

/** The library's schema, for apps to run in their setup or migrations. */
export async function createAccountsTables(db: WriteBackend<AccountsDB>): Promise<void> {
  await db.schema.dropTable('transfers').ifExists().execute()
  await db.schema.dropTable('accounts').ifExists().execute()
  await db.schema
    .createTable('accounts')
    .addColumn('id', 'varchar(36)', (col) => col.primaryKey())
    .addColumn('owner', 'varchar(100)', (col) => col.notNull())
    .addColumn('balance_cents', 'integer', (col) => col.notNull())
    .execute()
  await db.schema
    .createTable('transfers')
    .addColumn('id', 'varchar(36)', (col) => col.primaryKey())
    .addColumn('from_account', 'varchar(36)', (col) => col.notNull().references('accounts.id'))
    .addColumn('to_account', 'varchar(36)', (col) => col.notNull().references('accounts.id'))
    .addColumn('amount_cents', 'integer', (col) => col.notNull())
    .execute()
}

export function findAccount(db: CanRead<AccountsDB>, id: string): Promise<Account | undefined> {
  return db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst()
}

export function listAccounts(db: CanRead<AccountsDB>): Promise<Account[]> {
  return db.selectFrom('accounts').selectAll().orderBy('owner').execute()
}

export async function openAccount(db: WriteBackend<AccountsDB>, owner: string, balanceCents: number): Promise<string> {
  const id = randomUUID()
  await db.insertInto('accounts').values({ id, owner, balance_cents: balanceCents }).execute()
  return id
}

/**
 * Moves money between two accounts, atomically. Inside the caller's transaction it joins it (so the
 * caller can add its own writes to the same commit); on a plain write backend it opens its own.
 */
export async function transfer(
  db: WriteBackend<AccountsDB>,
  from: string,
  to: string,
  amountCents: number,
): Promise<void> {
  const run = async (tx: WriteBackend<AccountsDB>) => {
    const debit = await tx
      .updateTable('accounts')
      .set((eb) => ({ balance_cents: eb('balance_cents', '-', amountCents) }))
      .where('id', '=', from)
      .where('balance_cents', '>=', amountCents)
      .executeTakeFirst()
    if (debit.numUpdatedRows === 0n) throw new InsufficientFundsError(from, amountCents)
    await tx
      .updateTable('accounts')
      .set((eb) => ({ balance_cents: eb('balance_cents', '+', amountCents) }))
      .where('id', '=', to)
      .execute()
    await tx
      .insertInto('transfers')
      .values({ id: randomUUID(), from_account: from, to_account: to, amount_cents: amountCents })
      .execute()
  }
  await (db.isTransaction ? run(db) : db.transaction().execute(run))
}

/**
 * How much went in and out of an account. A report: it asks for a `ReadBackend`, so it can never
 * load the primary (a `WriteBackend` argument does not compile).
 */
export async function statement(db: ReadBackend<AccountsDB>, accountId: string) {
  const row = await db
    .selectFrom('transfers')
    .select((eb) => [
      eb.fn.countAll().as('transfers'),
      eb.fn.sum(eb.case().when('to_account', '=', accountId).then(eb.ref('amount_cents')).else(0).end()).as('in_cents'),
      eb.fn
        .sum(eb.case().when('from_account', '=', accountId).then(eb.ref('amount_cents')).else(0).end())
        .as('out_cents'),
    ])
    .where((eb) => eb.or([eb('from_account', '=', accountId), eb('to_account', '=', accountId)]))
    .executeTakeFirstOrThrow()
  // Counts and sums come back as strings or numbers depending on the driver.
  return { transfers: Number(row.transfers), inCents: Number(row.in_cents), outCents: Number(row.out_cents) }
}

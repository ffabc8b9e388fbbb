// An app using a library of data-access functions (examples/library/accounts.ts) that was written once
// against CanRead / WriteBackend / ReadBackend: the same functions run on a replica, on the primary, in
// a transaction and in a read-your-writes session.
//
//   npx tsx examples/data-access.ts      (see examples/support/connection.ts for PRIMARY_URL & co.)
import { type Backends, createBackends } from '../src/index.js'
import {
  type AccountsDB,
  createAccountsTables,
  findAccount,
  InsufficientFundsError,
  listAccounts,
  openAccount,
  statement,
  transfer,
} from './library/accounts.js'
import { connection, describeConnection } from './support/connection.js'

// The app's schema: the library's tables and one of its own.
interface AppDB extends AccountsDB {
  audit_log: { account_id: string; action: string }
}

const config = connection()
console.log(describeConnection(config))
const db = createBackends<AppDB>(config)

// The library's functions take WriteBackend<AccountsDB>; a WriteBackend<AppDB> is one.
await createAccountsTables(db.write)
await db.write.schema.dropTable('audit_log').ifExists().execute()
await db.write.schema
  .createTable('audit_log')
  .addColumn('account_id', 'varchar(36)', (col) => col.notNull())
  .addColumn('action', 'varchar(200)', (col) => col.notNull())
  .execute()

// A session: its reads (on a replica that has replayed them, or on the primary) see its own writes.
const session = db.session()
const ada = await openAccount(session.write, 'Ada', 100_00)
const grace = await openAccount(session.write, 'Grace', 20_00)

// The library's transfer and the app's audit row commit together: transfer() joins the transaction.
await session.write.transaction().execute(async (tx) => {
  await transfer(tx, ada, grace, 30_00)
  await tx.insertInto('audit_log').values({ account_id: ada, action: 'paid Grace 30.00' }).execute()
  // A read inside the transaction runs on its connection and sees its writes.
  console.log('inside the transaction, Ada has', (await findAccount(tx, ada))?.balance_cents, 'cents')
})

// On a plain write backend, transfer() opens its own transaction.
await transfer(session.write, grace, ada, 5_00)

// A failed transfer rolls back: nothing of it is written.
try {
  await transfer(session.write, grace, ada, 1_000_00)
} catch (error) {
  if (!(error instanceof InsufficientFundsError)) throw error
  console.log('refused:', error.message)
}

for (const account of await listAccounts(session.read)) {
  console.log(`balance: ${account.owner} ${account.balance_cents} cents`)
}
console.log('statement for Ada:', await statement(session.read, ada))
const audit = await session.read.selectFrom('audit_log').select('action').execute()
console.log(`audit log: ${audit.map((row) => row.action).join('; ')}`)

// Plain handles work too: findAccount takes any CanRead, the primary included.
console.log('on the primary, Grace has', (await findAccount(db.write, grace))?.balance_cents, 'cents')

await db.destroy()

// What the types refuse; checked by `npm run typecheck`, never run.
export function doesNotCompile(backends: Backends<AppDB>) {
  // @ts-expect-error: a ReadBackend is not a WriteBackend
  void openAccount(backends.read, 'Mallory', 0)
  // @ts-expect-error: nor is a session's read backend
  void transfer(backends.session().read, 'a', 'b', 1)
  // @ts-expect-error: a report that must stay off the primary does not take the primary
  void statement(backends.write, 'a')
}

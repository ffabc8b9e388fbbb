import { AsyncLocalStorage } from 'node:async_hooks'
import type { DatabaseConnection, Driver } from 'kysely'
import { TransactionEscapeError } from '../errors.js'

/** One open write transaction, as the queries of its callback see it. */
interface Scope {
  /** The `createBackends` call the transaction belongs to: escapes are only looked for within one. */
  readonly group: object
  /** False once the transaction ended: work the callback left behind may still carry the scope. */
  active: boolean
}

/** A connection provider call whose consumer is running synchronously right now. */
interface Window {
  readonly connection: DatabaseConnection
  readonly group: object
  /** The store before a transaction's scope was entered in this window; restored when the window closes. */
  previous: Scope | undefined
  entered: boolean
}

// On Node 20 and 22 an enabled AsyncLocalStorage installs promise hooks for the whole process, so every
// promise pays, the app's too. The storage is therefore enabled only while a write transaction is open
// somewhere in the process, and disabled again when the last one ends: no cost at all otherwise.
// (Node 24's AsyncContextFrame has no process-wide cost; the same code runs there.)
const storage = new AsyncLocalStorage<Scope>()

/** Write transactions open in the process, across every `createBackends` call. */
let open = 0

// Kysely's transaction().execute() calls the driver's beginTransaction synchronously inside the consumer
// it hands the connection provider, before its first await. The provider marks that synchronous span, and
// beginTransaction enters the scope within it: the promises the consumer creates after it (the callback's
// among them) carry the scope, and the provider restores the caller's store as the span ends, so nothing
// outside the consumer ever sees it. Entered any later (controlled transactions, a transaction on a
// pinned connection() handle), the scope could only be set on a context other work shares: not watched.
let window: Window | undefined

const scopes = new WeakMap<DatabaseConnection, Scope>()

/**
 * Kysely's connection provider, plus the scope that tells a query issued on the outer backend from
 * inside a write transaction's callback. Queries on the callback's `tx` use Kysely's single
 * connection provider and never come here.
 */
export class ScopedConnectionProvider {
  constructor(
    private readonly driver: Driver,
    /** The `createBackends` call; undefined when escape detection is switched off. */
    private readonly group: object | undefined,
    /** True on write backends: only their transactions are scoped (read backends are only fenced off). */
    private readonly opensScopes: boolean,
  ) {}

  async provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    const { group } = this
    if (group && open > 0) {
      const outer = storage.getStore()
      if (outer?.active && outer.group === group) throw new TransactionEscapeError()
    }
    const connection = await this.driver.acquireConnection()
    try {
      return await (group && this.opensScopes ? consume(consumer, connection, group) : consumer(connection))
    } finally {
      await this.driver.releaseConnection(connection)
    }
  }
}

function consume<T>(
  consumer: (connection: DatabaseConnection) => Promise<T>,
  connection: DatabaseConnection,
  group: object,
): Promise<T> {
  const outer = window
  const own: Window = { connection, group, previous: undefined, entered: false }
  window = own
  try {
    return consumer(connection)
  } finally {
    window = outer
    if (own.entered) storage.enterWith(own.previous as Scope)
  }
}

/**
 * Called by the write driver at the very start of beginTransaction, before its first await. Enters the
 * transaction's scope when Kysely's transaction().execute() is beginning it on `connection`.
 */
export function enterWriteTransaction(connection: DatabaseConnection): void {
  const span = window
  if (!span || span.connection !== connection || span.entered) return
  const scope: Scope = { group: span.group, active: true }
  span.previous = storage.getStore()
  span.entered = true
  open++
  scopes.set(connection, scope)
  storage.enterWith(scope)
}

/** Called by the write driver when the transaction on `connection` ended (or failed to begin). */
export function leaveWriteTransaction(connection: DatabaseConnection): void {
  const scope = scopes.get(connection)
  if (!scope) return
  scopes.delete(connection)
  scope.active = false
  if (--open === 0) storage.disable()
}

/** Write transactions whose escapes are being watched now, in the whole process (for tests). */
export function watchedTransactions(): number {
  return open
}

import { AsyncLocalStorage } from 'node:async_hooks'
import type { DatabaseConnection, Driver } from 'kysely'
import { TransactionEscapeError } from '../errors.js'

/** One open write transaction, as the queries of its callback see it. */
interface Scope {
  /** The `createBackends` call the transaction belongs to: escapes are only looked for within one. */
  readonly group: Group
  /** False once the transaction ended: work the callback left behind may still carry the scope. */
  active: boolean
}

/** One `createBackends` call, as escape detection knows it. */
export interface Group {
  /** Its write transactions open now. */
  open: number
  /**
   * Where AsyncLocalStorage would cost the whole process (below), the function a write transaction's
   * callback is awaited through: its name, in the async stack of a query, says the query was issued
   * inside one of this group's transactions.
   */
  readonly marker: string
  readonly awaitThrough: <T>(running: Promise<T>) => Promise<T>
}

/** A connection provider call whose consumer is running synchronously right now. */
interface Window {
  readonly connection: DatabaseConnection
  readonly group: Group
  /** The store before a transaction's scope was entered in this window; restored when the window closes. */
  previous: Scope | undefined
  entered: boolean
}

// How the scope reaches the callback's queries. Node 24's AsyncContextFrame carries an
// AsyncLocalStorage with no cost outside its own contexts. On Node 20 and 22 it needs promise hooks, and
// once V8 has run with a promise hook every promise of the process stays on a slower path, also after
// the storage is disabled (plain Kysely's queries measured 1.04-1.08x slower in such a process). There,
// the callback is awaited through a function named for its group, and a query on an outer backend
// looks for that name in its async stack, only while one of the group's write transactions is open.
const storage: AsyncLocalStorage<Scope> | undefined = carriesContextForFree() ? new AsyncLocalStorage() : undefined

function carriesContextForFree(): boolean {
  if (Number(process.versions.node.split('.')[0]) < 24) return false
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  return !flags.includes('--no-async-context-frame')
}

/** How escapes are watched in this process: for the docs and the tests. */
export const ESCAPE_WATCH: 'async-context' | 'async-stack' = storage ? 'async-context' : 'async-stack'

/** Write transactions open in the process, across every `createBackends` call. */
let open = 0

// Kysely's transaction().execute() calls the driver's beginTransaction synchronously inside the consumer
// it hands the connection provider, before its first await. The provider marks that synchronous span, and
// beginTransaction enters the scope within it: the promises the consumer creates after it (the callback's
// among them) carry the scope, and the provider restores the caller's store as the span ends, so nothing
// outside the consumer ever sees it. Entered any later (controlled transactions, a transaction on a
// pinned connection() handle), the scope could only be set on a context other work shares: not watched.
let window: Window | undefined

/**
 * A connection that can carry the scope of its open write transaction. A field of the connection, not a
 * WeakMap entry: keying a map by a fresh object per transaction makes V8 give each one an identity hash.
 */
export interface ScopeCarrier extends DatabaseConnection {
  writeScope: object | undefined
}

let groups = 0

/** A new `createBackends` call's escape watch. */
export function newGroup(): Group {
  const marker = `kyselyRwWriteTransaction${++groups}`
  // A method with a computed name: V8 names its frames so, also in async stack traces.
  const awaitThrough = {
    async [marker]<T>(running: Promise<T>): Promise<T> {
      return await running
    },
  }[marker] as Group['awaitThrough']
  return { open: 0, marker, awaitThrough }
}

/**
 * Kysely's connection provider, plus the scope that tells a query issued on the outer backend from
 * inside a write transaction's callback. Queries on the callback's `tx` use Kysely's single
 * connection provider and never come here.
 */
export class ScopedConnectionProvider {
  constructor(
    private readonly driver: Driver,
    /** The `createBackends` call; undefined when escape detection is switched off. */
    private readonly group: Group | undefined,
    /** True on write backends: only their transactions are scoped (read backends are only fenced off). */
    private readonly opensScopes: boolean,
  ) {}

  /** Throws when called from inside a write transaction's callback of this group: the query escaped it. */
  refuseEscape(): void {
    const { group } = this
    if (group && open > 0 && insideTransactionOf(group)) throw new TransactionEscapeError()
  }

  async provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    this.refuseEscape()
    const { group } = this
    const connection = await this.driver.acquireConnection()
    try {
      if (!group || !this.opensScopes) return await consumer(connection)
      const own: Window = { connection, group, previous: undefined, entered: false }
      const running = consume(consumer, own)
      return await (own.entered && !storage ? group.awaitThrough(running) : running)
    } finally {
      await this.driver.releaseConnection(connection)
    }
  }
}

function consume<T>(consumer: (connection: DatabaseConnection) => Promise<T>, own: Window): Promise<T> {
  const outer = window
  window = own
  try {
    return consumer(own.connection)
  } finally {
    window = outer
    if (own.entered) storage?.enterWith(own.previous as Scope)
  }
}

function insideTransactionOf(group: Group): boolean {
  if (storage) {
    const outer = storage.getStore()
    return outer?.active === true && outer.group === group
  }
  return group.open > 0 && inAsyncStack(group.marker)
}

// Structured frames, not the formatted stack: an app's Error.prepareStackTrace (source maps) may format
// frames otherwise, and no frame limit may cut the search short.
function inAsyncStack(marker: string): boolean {
  const { prepareStackTrace, stackTraceLimit } = Error
  const holder: { stack?: NodeJS.CallSite[] } = {}
  Error.prepareStackTrace = (_, sites) => sites
  Error.stackTraceLimit = Number.POSITIVE_INFINITY
  try {
    Error.captureStackTrace(holder, inAsyncStack)
    return holder.stack?.some((site) => site.getFunctionName() === marker) ?? false
  } finally {
    Error.prepareStackTrace = prepareStackTrace
    Error.stackTraceLimit = stackTraceLimit
  }
}

/**
 * Called by the write driver at the very start of beginTransaction, before its first await. Enters the
 * transaction's scope when Kysely's transaction().execute() is beginning it on `connection`.
 */
export function enterWriteTransaction(connection: ScopeCarrier): void {
  const span = window
  if (!span || span.connection !== connection || span.entered) return
  const scope: Scope = { group: span.group, active: true }
  span.entered = true
  open++
  span.group.open++
  connection.writeScope = scope
  if (storage) {
    span.previous = storage.getStore()
    storage.enterWith(scope)
  }
}

/** Called by the write driver when the transaction on `connection` ended (or failed to begin). */
export function leaveWriteTransaction(connection: ScopeCarrier): void {
  const scope = connection.writeScope as Scope | undefined
  if (!scope) return
  connection.writeScope = undefined
  scope.active = false
  scope.group.open--
  if (--open === 0) storage?.disable()
}

/** Write transactions whose escapes are being watched now, in the whole process (for tests). */
export function watchedTransactions(): number {
  return open
}

import type {
  Command,
  CommonTableExpression,
  IsolationLevel,
  Kysely,
  KyselyPlugin,
  KyselyTypeError,
  MergeQueryBuilder,
  MergeResult,
  QueryCreator,
  QueryCreatorWithCommonTableExpression,
  RecursiveCommonTableExpression,
  SimpleTableReference,
} from 'kysely'
import type {
  ReadonlyCommonTableExpression,
  ReadonlyQueryCreator,
  ReadonlyQueryCreatorWithCommonTableExpression,
  ReadonlyRecursiveCommonTableExpression,
} from 'kysely/readonly'

/**
 * The brand that tells a replica handle from a primary handle. It exists only in the type system:
 * a property whose type differs (`'read'` vs `'write'`) is what keeps the two apart structurally.
 */
declare const capability: unique symbol

/**
 * A type-only carrier of the schema. A mapped type, on purpose: TypeScript then treats its measured
 * variance in DB as unreliable and compares two backends member by member, which is what lets a
 * backend of a larger schema pass where a smaller one is asked for. Kysely's own builders (`fn`,
 * MERGE, read-only CTEs) measure as invariant in DB though they are used covariantly here.
 */
declare const schema: unique symbol
declare const database: unique symbol

/**
 * A phantom tag on the schema of queries started from a read handle. Table names are
 * `keyof DB & string`, so the symbol never shows up among them; its only use is to let the
 * `kysely` augmentation below turn locking clauses into compile errors on reads.
 */
declare const readTag: unique symbol
type ReadTagged = { readonly [readTag]: true }

type LockOnRead = KyselyTypeError<'locking reads (FOR UPDATE, FOR SHARE, …) run on the write backend only'>

declare module 'kysely' {
  // On a query started from a read handle the `this` type matches and these overloads win; on any
  // other query it is `never`, and Kysely's own overloads apply.
  interface SelectQueryBuilder<DB, TB extends keyof DB, O> {
    forUpdate(this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never, ...args: unknown[]): LockOnRead
    forShare(this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never, ...args: unknown[]): LockOnRead
    forNoKeyUpdate(this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never, ...args: unknown[]): LockOnRead
    forKeyShare(this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never, ...args: unknown[]): LockOnRead
  }
}

/** The options of Kysely's `ConnectionBuilder.execute` (`{ signal }`), kept for pinned connections. */
type ConnectionOptions = Parameters<ReturnType<Kysely<any>['connection']>['execute']>[1]

// Kysely does not export its CTE builder type; this is the `cte('name').materialized()` callback.
type CTEBuilderCallback<N extends string> = Extract<
  Parameters<QueryCreator<any>['with']>[0],
  (...args: any[]) => any
> & { readonly __cteName?: N }

/**
 * The read-only query surface: Kysely 0.29's own read-only types for the query starters
 * (`with` and `withRecursive` only accept SELECT bodies), plus the expression helpers.
 */
interface ReadQueries<DB>
  extends Pick<ReadonlyQueryCreator<DB & ReadTagged>, 'selectFrom' | 'selectNoFrom'>,
    Pick<Kysely<DB>, 'fn' | 'dynamic' | 'case' | 'isTransaction'> {
  // `this`-typed so that the schema is read off the receiver: Kysely's read-only CTE types are
  // invariant in DB, which would stop a backend of a larger schema from passing as a smaller one.
  /** A common table expression; on a read handle its body must be a SELECT. */
  with<D, N extends string, E extends ReadonlyCommonTableExpression<D, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends ReadonlyRecursiveCommonTableExpression<D, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
}

/** The schema a backend was created for, read off its type-only carrier. */
export type SchemaOf<B> = B extends Carries<infer DB> ? DB : never

/**
 * The receiver type of the `this`-typed methods: TypeScript infers `D` straight from the carrier, also
 * from a generic receiver (`<B extends CanRead<AppDB>>(db: B) => db.with(…)` gets `D = AppDB`).
 */
interface Carries<D, C extends 'read' | 'write' = 'read' | 'write'> {
  readonly [capability]: C
  readonly [schema]: { readonly [database]: D }
}

/**
 * What both backends satisfy: everything that only reads.
 *
 * Write data-access functions that only read against `CanRead<DB>` so that callers can run them on a
 * replica or, inside a write transaction, on the primary:
 *
 * ```ts
 * async function findUser(db: CanRead<DB>, id: number) {
 *   return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
 * }
 * await findUser(backends.read, 1)
 * await backends.write.transaction().execute((tx) => findUser(tx, 1))
 * ```
 */
export interface CanRead<DB> extends ReadQueries<DB> {
  readonly [capability]: 'read' | 'write'
  readonly [schema]: { readonly [T in keyof DB]: DB[T] } & { readonly [database]: DB }
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): CanRead<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): CanRead<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): CanRead<DB>
  /** A transaction on whichever backend this is; the callback gets the same capability. */
  transaction(): BackendTransactionBuilder<CanRead<DB>>
  /** Pins one connection of this backend for the callback. */
  connection(): BackendConnectionBuilder<CanRead<DB>>
}

/**
 * A replica: reads only. A function that demands `ReadBackend<DB>` is replica-only, which keeps heavy
 * reports off the primary; a {@link WriteBackend} is not accepted there.
 */
export interface ReadBackend<DB> extends CanRead<DB> {
  readonly [capability]: 'read'
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): ReadBackend<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): ReadBackend<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): ReadBackend<DB>
  /**
   * A read-only, repeatable-read snapshot on one replica: every query in the callback sees the
   * same data.
   */
  transaction(): BackendTransactionBuilder<ReadBackend<DB>>
  connection(): BackendConnectionBuilder<ReadBackend<DB>>
  /** A read-only controlled transaction (commit, rollback and savepoints by hand). */
  startTransaction<D>(this: Carries<D, 'read'>): ControlledTransactionStarter<ReadControlledTransaction<D>>
}

/**
 * The primary: reads and writes. Only this backend offers `insertInto`, `updateTable`, `deleteFrom`,
 * `mergeInto`, `replaceInto`, `schema`, data-modifying CTEs and what Kysely's `sql` template needs to
 * execute.
 *
 * `write.transaction().execute(async (tx) => …)` hands `tx: WriteBackend<DB>`: one connection to the
 * primary, so a read after a write in the callback sees that write.
 */
export interface WriteBackend<DB>
  extends CanRead<DB>,
    Pick<QueryCreator<DB>, 'insertInto' | 'replaceInto' | 'updateTable' | 'deleteFrom'>,
    Pick<Kysely<DB>, 'schema' | 'getExecutor' | 'executeQuery'> {
  readonly [capability]: 'write'
  // Kysely's own (untagged) starters first, so locking reads compile on the primary; the tagged ones
  // inherited from CanRead stay as later overloads, so that a WriteBackend still is a CanRead.
  selectFrom: QueryCreator<DB>['selectFrom'] & CanRead<DB>['selectFrom']
  selectNoFrom: QueryCreator<DB>['selectNoFrom'] & CanRead<DB>['selectNoFrom']
  // The first overload admits data-modifying CTE bodies; the second is the read-only one inherited
  // from CanRead, kept so that a WriteBackend still is a CanRead.
  /** A common table expression; on a read handle its body must be a SELECT. */
  with<D, N extends string, E extends CommonTableExpression<D, N>>(
    this: Carries<D, 'write'>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): QueryCreatorWithCommonTableExpression<D, N, E>
  /** A common table expression; on a read handle its body must be a SELECT. */
  with<D, N extends string, E extends ReadonlyCommonTableExpression<D, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends RecursiveCommonTableExpression<D, N>>(
    this: Carries<D, 'write'>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): QueryCreatorWithCommonTableExpression<D, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends ReadonlyRecursiveCommonTableExpression<D, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D, N, E>
  // `this`-typed for the same reason as `with`: Kysely 0.29's MergeQueryBuilder is invariant in DB.
  /** Starts a MERGE into `targetTable`, as Kysely's `mergeInto`. */
  mergeInto<D, TR extends SimpleTableReference<D>>(this: Carries<D, 'write'>, targetTable: TR): MergeInto<D, TR>
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): WriteBackend<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): WriteBackend<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): WriteBackend<DB>
  transaction(): BackendTransactionBuilder<WriteBackend<DB>>
  connection(): BackendConnectionBuilder<WriteBackend<DB>>
  /** A controlled transaction on the primary (commit, rollback and savepoints by hand). */
  startTransaction<D>(this: Carries<D, 'write'>): ControlledTransactionStarter<WriteControlledTransaction<D>>
}

// Kysely's own MergeInto, which it does not export.
type MergeInto<DB, TR extends SimpleTableReference<DB>> = [TR] extends [keyof DB]
  ? MergeQueryBuilder<DB, TR & keyof DB, MergeResult>
  : [TR] extends [`${infer T} as ${infer A}`]
    ? T extends keyof DB
      ? MergeQueryBuilder<DB & { [K in A]: DB[T] }, A, MergeResult>
      : never
    : never

/** Starts a transaction whose callback receives a backend of capability `B`. */
export interface BackendTransactionBuilder<B> {
  /** Sets the isolation level of the transaction about to start. */
  setIsolationLevel(isolationLevel: IsolationLevel): BackendTransactionBuilder<B>
  /** Runs `callback` in one transaction; commits when it resolves, rolls back when it throws. */
  execute<T>(callback: (tx: B) => Promise<T>): Promise<T>
}

/** Pins one connection; the callback receives a backend of capability `B`. */
export interface BackendConnectionBuilder<B> {
  /** Runs `callback` with one connection of this backend, released afterwards. */
  execute<T>(callback: (db: B) => Promise<T>, options?: ConnectionOptions): Promise<T>
}

/** Starts a controlled transaction `T`. */
export interface ControlledTransactionStarter<T> {
  /** Sets the isolation level of the transaction about to start. */
  setIsolationLevel(isolationLevel: IsolationLevel): ControlledTransactionStarter<T>
  /** Begins the transaction and hands it over; end it with `commit()` or `rollback()`. */
  execute(): Promise<T>
}

// Kysely keeps these two in a module it does not export; they track which savepoints exist.
type RollbackToSavepoint<S extends string[], SN extends S[number]> = S extends [...infer L, infer R]
  ? R extends SN
    ? S
    : RollbackToSavepoint<L extends string[] ? L : never, SN>
  : never
type ReleaseSavepoint<S extends string[], SN extends S[number]> = S extends [...infer L, infer R]
  ? R extends SN
    ? L
    : ReleaseSavepoint<L extends string[] ? L : never, SN>
  : never

// Declared here rather than picked from Kysely's ControlledTransaction class, whose type is
// invariant in DB and would stop a backend of a larger schema from passing as a smaller one.
interface TransactionControl {
  readonly isCommitted: boolean
  readonly isRolledBack: boolean
  /** Commits the transaction (a Command: call `.execute()`). */
  commit(): Command<void>
  /** Rolls the transaction back (a Command: call `.execute()`). */
  rollback(): Command<void>
}

/** A controlled transaction on the primary: a {@link WriteBackend} you commit or roll back yourself. */
export interface WriteControlledTransaction<DB, S extends string[] = []> extends WriteBackend<DB>, TransactionControl {
  // `this`-typed: the savepoint list recurses, and TypeScript's variance check would otherwise
  // refuse a backend of a larger schema where a smaller one is asked for.
  /** Sets a savepoint named `savepointName`. */
  savepoint<D, SN extends string>(
    this: Carries<D, 'write'>,
    savepointName: SN extends S ? never : SN,
  ): Command<WriteControlledTransaction<D, [...S, SN]>>
  /** Rolls back to a savepoint set earlier in this transaction. */
  rollbackToSavepoint<D, SN extends S[number]>(
    this: Carries<D, 'write'>,
    savepointName: SN,
  ): RollbackToSavepoint<S, SN> extends string[]
    ? Command<WriteControlledTransaction<D, RollbackToSavepoint<S, SN>>>
    : never
  /** Releases a savepoint set earlier in this transaction. */
  releaseSavepoint<D, SN extends S[number]>(
    this: Carries<D, 'write'>,
    savepointName: SN,
  ): ReleaseSavepoint<S, SN> extends string[] ? Command<WriteControlledTransaction<D, ReleaseSavepoint<S, SN>>> : never
}

/** A read-only controlled transaction on a replica: a {@link ReadBackend} you end yourself. */
export interface ReadControlledTransaction<DB, S extends string[] = []> extends ReadBackend<DB>, TransactionControl {
  // `this`-typed: the savepoint list recurses, and TypeScript's variance check would otherwise
  // refuse a backend of a larger schema where a smaller one is asked for.
  /** Sets a savepoint named `savepointName`. */
  savepoint<D, SN extends string>(
    this: Carries<D, 'read'>,
    savepointName: SN extends S ? never : SN,
  ): Command<ReadControlledTransaction<D, [...S, SN]>>
  /** Rolls back to a savepoint set earlier in this transaction. */
  rollbackToSavepoint<D, SN extends S[number]>(
    this: Carries<D, 'read'>,
    savepointName: SN,
  ): RollbackToSavepoint<S, SN> extends string[]
    ? Command<ReadControlledTransaction<D, RollbackToSavepoint<S, SN>>>
    : never
  /** Releases a savepoint set earlier in this transaction. */
  releaseSavepoint<D, SN extends S[number]>(
    this: Carries<D, 'read'>,
    savepointName: SN,
  ): ReleaseSavepoint<S, SN> extends string[] ? Command<ReadControlledTransaction<D, ReleaseSavepoint<S, SN>>> : never
}

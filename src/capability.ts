import type {
  AbortableQueryOptions,
  AccessMode,
  Command,
  CommonTableExpression,
  DrainOuterGeneric,
  IsolationLevel,
  Kysely,
  KyselyPlugin,
  KyselyTypeError,
  MergeQueryBuilder,
  MergeResult,
  QueryCreator,
  QueryCreatorWithCommonTableExpression,
  QueryExecutorProvider,
  QueryResult,
  RawBuilder,
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

// The messages below are written out in each signature, not behind an alias: tsc prints an alias by its
// name, and the first line of its error is then all a user sees ("… does not exist on type 'LockOnRead'").

declare module 'kysely' {
  // On a query started from a read handle the `this` type matches and these overloads win; on any
  // other query it is `never`, and Kysely's own overloads apply.
  interface SelectQueryBuilder<DB, TB extends keyof DB, O> {
    forUpdate(
      this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never,
      ...args: unknown[]
    ): KyselyTypeError<'locking reads (FOR UPDATE, FOR SHARE, …) run on the write backend: use db.write or its tx'>
    forShare(
      this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never,
      ...args: unknown[]
    ): KyselyTypeError<'locking reads (FOR UPDATE, FOR SHARE, …) run on the write backend: use db.write or its tx'>
    forNoKeyUpdate(
      this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never,
      ...args: unknown[]
    ): KyselyTypeError<'locking reads (FOR UPDATE, FOR SHARE, …) run on the write backend: use db.write or its tx'>
    forKeyShare(
      this: DB extends ReadTagged ? SelectQueryBuilder<DB, TB, O> : never,
      ...args: unknown[]
    ): KyselyTypeError<'locking reads (FOR UPDATE, FOR SHARE, …) run on the write backend: use db.write or its tx'>
  }

  // Kysely's `sql` template, with an `execute` whose parameter names the fix when it is handed a read
  // handle. Its own signature would say only that `getExecutor` is missing. Being the one signature of
  // `execute` on this builder is what puts the message on the first line of tsc's error (with two
  // overloads tsc opens with "No overload matches this call").
  interface Sql {
    <T = unknown>(sqlFragments: TemplateStringsArray, ...parameters: unknown[]): CheckedRawBuilder<T>
    // The same for `sql.raw(text)`: an overload placed before Kysely's own, with the same parameters.
    raw<R = unknown>(anySql: string): CheckedRawBuilder<R>
  }
}

/** Kysely's `RawBuilder`, whose `execute` refuses a read handle with a message that says what to do. */
export interface CheckedRawBuilder<O> extends RawBuilder<O> {
  /** Runs the raw query on `executorProvider`: the write backend, or any plain Kysely instance. */
  execute<P extends object>(
    executorProvider: P extends QueryExecutorProvider
      ? P
      : P extends Carries<unknown>
        ? KyselyTypeError<'raw sql runs on the write backend; on a read handle use readSql`…` from kysely-rw'>
        : QueryExecutorProvider,
    options?: AbortableQueryOptions,
  ): Promise<QueryResult<O>>
}

/** The options of Kysely's `ConnectionBuilder.execute` (`{ signal }`), kept for pinned connections. */
type ConnectionOptions = Parameters<ReturnType<Kysely<unknown>['connection']>['execute']>[1]

// Kysely does not export its CTE builder type; this is the `cte('name').materialized()` callback.
type CTEBuilderCallback<N extends string> = Extract<
  Parameters<QueryCreator<unknown>['with']>[0],
  (...args: never[]) => unknown
> & { readonly __cteName?: N }

/**
 * The read-only query surface: Kysely 0.29's own read-only types for the query starters
 * (`with` and `withRecursive` only accept SELECT bodies), plus the expression helpers and
 * `introspection` (catalog reads), as Kysely's own `ReadonlyKysely` has them.
 */
interface ReadQueries<DB>
  extends Pick<ReadonlyQueryCreator<DB & ReadTagged>, 'selectFrom' | 'selectNoFrom'>,
    Pick<Kysely<DB>, 'fn' | 'dynamic' | 'case' | 'introspection' | 'isTransaction'> {
  // `this`-typed so that the schema is read off the receiver: Kysely's read-only CTE types are
  // invariant in DB, which would stop a backend of a larger schema from passing as a smaller one.
  // The body's query creator carries the read tag, as `selectFrom` does: no locking read in a CTE.
  /** A common table expression; on a read handle its body must be a SELECT. */
  with<D, N extends string, E extends ReadonlyCommonTableExpression<D & ReadTagged, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends ReadonlyRecursiveCommonTableExpression<D & ReadTagged, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
}

// The `this` type of `$pickTables` and friends carries their `T` as well as the schema. TypeScript relates
// two generic methods by inferring one's type parameters from the other's parameters; with `T` only in
// the result it would take `keyof D` for it, and a backend of a larger schema would no longer pass where
// a smaller one is asked for. An optional property: any backend satisfies it.
declare const tables: unique symbol
// `D` must have a constraint, any: TypeScript swaps an unconstrained type parameter of a generic method
// for its original declaration when relating two backends, and `T extends keyof D` then names another `D`.
type Schema = unknown
interface CarriesTables<D, T> extends Carries<D> {
  readonly [tables]?: T
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
  transaction(): BackendTransactionBuilder<CanReadTransaction<DB>>
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
  /** The same backend, typed with only the tables `T` (as Kysely's `$pickTables`); the capability is kept. */
  $pickTables<T extends keyof D, D extends Schema = DB>(this: CarriesTables<D, T>): ReadBackend<Pick<D, T>>
  /** The same backend, typed without the tables `T` (as Kysely's `$omitTables`); the capability is kept. */
  $omitTables<T extends keyof D, D extends Schema = DB>(this: CarriesTables<D, T>): ReadBackend<Omit<D, T>>
  /** The same backend, typed with the tables `T` added (as Kysely's `$extendTables`); the capability is kept. */
  $extendTables<T extends Record<string, Record<string, unknown>>, D extends Schema = DB>(
    this: CarriesTables<D, T>,
  ): ReadBackend<DrainOuterGeneric<D & T>>
  /** @deprecated Kysely's old name of {@link ReadBackend.$extendTables}. */
  withTables<T extends Record<string, Record<string, unknown>>, D extends Schema = DB>(
    this: CarriesTables<D, T>,
  ): ReadBackend<DrainOuterGeneric<D & T>>
  /**
   * A read-only, repeatable-read snapshot on one replica: every query in the callback sees the
   * same data.
   */
  transaction(): BackendTransactionBuilder<ReadTransaction<DB>>
  connection(): BackendConnectionBuilder<ReadBackend<DB>>
  /** A read-only controlled transaction (commit, rollback and savepoints by hand). */
  startTransaction<D>(this: Carries<D, 'read'>): ControlledTransactionStarter<ReadControlledTransaction<D>>
}

/**
 * The primary: reads and writes. Only this backend offers `insertInto`, `updateTable`, `deleteFrom`,
 * `mergeInto`, `replaceInto`, `schema`, data-modifying CTEs and what Kysely's `sql` template needs to
 * execute.
 *
 * `write.transaction().execute(async (tx) => …)` hands `tx: WriteTransaction<DB>`: one connection to the
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
  with<D, N extends string, E extends ReadonlyCommonTableExpression<D & ReadTagged, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends RecursiveCommonTableExpression<D, N>>(
    this: Carries<D, 'write'>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): QueryCreatorWithCommonTableExpression<D, N, E>
  /** A recursive common table expression; on a read handle its body must be a SELECT. */
  withRecursive<D, N extends string, E extends ReadonlyRecursiveCommonTableExpression<D & ReadTagged, N>>(
    this: Carries<D>,
    nameOrBuilder: N | CTEBuilderCallback<N>,
    expression: E,
  ): ReadonlyQueryCreatorWithCommonTableExpression<D & ReadTagged, N, E>
  // `this`-typed for the same reason as `with`: Kysely 0.29's MergeQueryBuilder is invariant in DB.
  /** Starts a MERGE into `targetTable`, as Kysely's `mergeInto`. */
  mergeInto<D, TR extends SimpleTableReference<D>>(this: Carries<D, 'write'>, targetTable: TR): MergeInto<D, TR>
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): WriteBackend<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): WriteBackend<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): WriteBackend<DB>
  /** The same backend, typed with only the tables `T` (as Kysely's `$pickTables`); the capability is kept. */
  $pickTables<T extends keyof D, D extends Schema = DB>(this: CarriesTables<D, T>): WriteBackend<Pick<D, T>>
  /** The same backend, typed without the tables `T` (as Kysely's `$omitTables`); the capability is kept. */
  $omitTables<T extends keyof D, D extends Schema = DB>(this: CarriesTables<D, T>): WriteBackend<Omit<D, T>>
  /** The same backend, typed with the tables `T` added (as Kysely's `$extendTables`); the capability is kept. */
  $extendTables<T extends Record<string, Record<string, unknown>>, D extends Schema = DB>(
    this: CarriesTables<D, T>,
  ): WriteBackend<DrainOuterGeneric<D & T>>
  /** @deprecated Kysely's old name of {@link WriteBackend.$extendTables}. */
  withTables<T extends Record<string, Record<string, unknown>>, D extends Schema = DB>(
    this: CarriesTables<D, T>,
  ): WriteBackend<DrainOuterGeneric<D & T>>
  /** A transaction on the primary (read-write unless `setAccessMode('read only')`). */
  transaction(): BackendTransactionBuilder<WriteTransaction<DB>, AccessMode>
  connection(): BackendConnectionBuilder<WriteBackend<DB>>
  /** A controlled transaction on the primary (commit, rollback and savepoints by hand). */
  startTransaction<D>(
    this: Carries<D, 'write'>,
  ): ControlledTransactionStarter<WriteControlledTransaction<D>, AccessMode>
}

/**
 * A transaction handle cannot start another transaction or pin a connection, as with Kysely's own
 * `Transaction` (whose methods throw): these are typed `never`, so `tx.transaction().execute(…)` does
 * not compile. Nest with savepoints (`startTransaction()` on the backend) instead.
 */
interface NoNesting {
  /** A transaction cannot start another one: use a savepoint of a controlled transaction. */
  transaction(): never
  /** A transaction cannot start another one: use a savepoint of a controlled transaction. */
  startTransaction(): never
  /** A transaction already holds its one connection. */
  connection(): never
}

/** The `tx` of a transaction started on a {@link CanRead}: the same capability, in one transaction. */
export interface CanReadTransaction<DB> extends CanRead<DB>, NoNesting {
  transaction(): never
  connection(): never
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): CanReadTransaction<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): CanReadTransaction<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): CanReadTransaction<DB>
}

/** The `tx` of `read.transaction()`: a read-only snapshot on one replica. */
export interface ReadTransaction<DB> extends ReadBackend<DB>, NoNesting {
  transaction(): never
  startTransaction(): never
  connection(): never
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): ReadTransaction<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): ReadTransaction<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): ReadTransaction<DB>
}

/** The `tx` of `write.transaction()`: one connection to the primary, so a read after a write sees it. */
export interface WriteTransaction<DB> extends WriteBackend<DB>, NoNesting {
  transaction(): never
  startTransaction(): never
  connection(): never
  /** The same backend with a Kysely plugin added; the capability is kept. */
  withPlugin(plugin: KyselyPlugin): WriteTransaction<DB>
  /** The same backend without plugins; the guard is not a plugin and stays. */
  withoutPlugins(): WriteTransaction<DB>
  /** The same backend with a default database schema (namespace); the capability is kept. */
  withSchema(schema: string): WriteTransaction<DB>
}

// Kysely's own MergeInto, which it does not export.
type MergeInto<DB, TR extends SimpleTableReference<DB>> = [TR] extends [keyof DB]
  ? MergeQueryBuilder<DB, TR & keyof DB, MergeResult>
  : [TR] extends [`${infer T} as ${infer A}`]
    ? T extends keyof DB
      ? MergeQueryBuilder<DB & { [K in A]: DB[T] }, A, MergeResult>
      : never
    : never

/**
 * Starts a transaction whose callback receives a backend of capability `B`. `M` is the access modes
 * it can be given: a read handle's transactions are read-only, the write backend's may be either.
 */
export interface BackendTransactionBuilder<B, M extends AccessMode = 'read only'> {
  /** Sets the access mode of the transaction about to start (`'read only'` on a read handle). */
  setAccessMode(accessMode: M): BackendTransactionBuilder<B, M>
  /** Sets the isolation level of the transaction about to start. */
  setIsolationLevel(isolationLevel: IsolationLevel): BackendTransactionBuilder<B, M>
  /** Runs `callback` in one transaction; commits when it resolves, rolls back when it throws. */
  execute<T>(callback: (tx: B) => Promise<T>): Promise<T>
}

/** Pins one connection; the callback receives a backend of capability `B`. */
export interface BackendConnectionBuilder<B> {
  /** Runs `callback` with one connection of this backend, released afterwards. */
  execute<T>(callback: (db: B) => Promise<T>, options?: ConnectionOptions): Promise<T>
}

/** Starts a controlled transaction `T`; `M` as in {@link BackendTransactionBuilder}. */
export interface ControlledTransactionStarter<T, M extends AccessMode = 'read only'> {
  /** Sets the access mode of the transaction about to start (`'read only'` on a read handle). */
  setAccessMode(accessMode: M): ControlledTransactionStarter<T, M>
  /** Sets the isolation level of the transaction about to start. */
  setIsolationLevel(isolationLevel: IsolationLevel): ControlledTransactionStarter<T, M>
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
export interface WriteControlledTransaction<DB, S extends string[] = []>
  extends WriteTransaction<DB>,
    TransactionControl {
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
export interface ReadControlledTransaction<DB, S extends string[] = []>
  extends ReadTransaction<DB>,
    TransactionControl {
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

import { type AbortableQueryOptions, MysqlAdapter, type QueryResult, type RawBuilder, sql } from 'kysely'
import type { CanRead } from './capability.js'
import { declareRead } from './guard/declared-reads.js'
import { assertReadStatement } from './guard/read-text.js'

export { assertReadStatement } from './guard/read-text.js'

/** A raw SQL read: runs on any backend that can read, after its text was checked to be one. */
export interface ReadSql<R> {
  /**
   * Checks the text, then runs it on `db` (any backend that can read). `options` are Kysely's, as for
   * `` sql`…`.execute(db, options) ``: `{ signal, inflightQueryAbortStrategy }` cancel it.
   */
  // biome-ignore lint/suspicious/noExplicitAny: "a backend of any schema": CanRead<unknown> and an inferred type parameter both reject ReadBackend<DB> (Kysely's methods make CanRead invariant in DB).
  execute(db: CanRead<any>, options?: AbortableQueryOptions): Promise<QueryResult<R>>
  /** The underlying Kysely raw builder, to embed the fragment in a query builder. */
  readonly raw: RawBuilder<R>
}

/**
 * Raw SQL declared a read, with the template syntax of Kysely's `sql`. Runs on any {@link CanRead}.
 * The text must be one statement that starts as a read: `SELECT`, `WITH` without a data-modifying
 * body, `VALUES`, `TABLE`, `SHOW`, or `EXPLAIN` without `ANALYZE`; anything else throws
 * `NotAReadStatementError` before it is sent.
 *
 * ```ts
 * const { rows } = await readSql<{ n: string | number }>`select count(*) as n from users`.execute(db.read)
 * const users = Number(rows[0]?.n) // count(*) is a bigint: pg returns it as a string, mysql2 as a number
 * ```
 */
export function readSql<R = unknown>(strings: TemplateStringsArray, ...parameters: unknown[]): ReadSql<R> {
  const raw = sql<R>(strings, ...parameters)
  return {
    raw,
    async execute(db, options) {
      // At run time every backend is a Kysely instance; the types only hide its executor from reads.
      const provider = db as unknown as Parameters<RawBuilder<R>['compile']>[0]
      const compiled = raw.compile(provider)
      const executor = provider.getExecutor()
      assertReadStatement(compiled.sql, executor.adapter instanceof MysqlAdapter ? 'mysql' : 'postgres')
      declareRead(compiled)
      return executor.executeQuery<R>(compiled, options)
    },
  }
}

import type { ReadonlyKysely } from 'kysely/readonly'
import type { CanRead } from './capability.js'

/**
 * A backend as Kysely 0.29's `ReadonlyKysely<DB>`, for helpers typed with Kysely's own read-only type. It is
 * the same object, typed anew. A backend does not pass for one by itself: `ReadonlyKysely` lets a locking
 * read (`forUpdate()`, also in a CTE) compile, and its `executeQuery` takes any select builder, one made on
 * the primary with a data-modifying CTE included. Handing it a read backend is a choice this call makes
 * visible; on a read backend the guard still refuses, at run time, what those types let through. Its
 * `destroy()` ends the whole group, as `Backends.destroy()` does.
 *
 * ```ts
 * declare function report(db: ReadonlyKysely<DB>): Promise<Report>
 * await report(asReadonlyKysely(db.read))
 * ```
 */
export function asReadonlyKysely<DB>(handle: CanRead<DB>): ReadonlyKysely<DB> {
  return handle as unknown as ReadonlyKysely<DB>
}

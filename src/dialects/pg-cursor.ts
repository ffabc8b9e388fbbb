import { createRequire } from 'node:module'
import type { PostgresCursorConstructor } from 'kysely'
import { ConfigurationError } from '../errors.js'

/**
 * The cursor class Kysely's PostgreSQL driver streams with: the one given, else `pg-cursor`, an
 * optional peer loaded on the first `.stream()`, so that a user who never streams needs no package.
 */
export function cursorFor(given: PostgresCursorConstructor | undefined): PostgresCursorConstructor {
  if (given) return given
  let loaded: PostgresCursorConstructor | undefined
  // Kysely calls `new cursor(sql, parameters)`; a constructor that returns an object yields that object.
  function LazyCursor(sql: string, parameters: unknown[]) {
    loaded ??= loadPgCursor()
    return new loaded(sql, parameters)
  }
  return LazyCursor as unknown as PostgresCursorConstructor
}

function loadPgCursor(): PostgresCursorConstructor {
  try {
    // pg-cursor is CommonJS, like pg itself: required synchronously, as Kysely constructs it synchronously.
    return createRequire(import.meta.url)('pg-cursor') as PostgresCursorConstructor
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'MODULE_NOT_FOUND') throw error
    throw new ConfigurationError(
      '.stream() on PostgreSQL needs a cursor: install pg-cursor (npm install pg-cursor), or pass its class ' +
        "as createBackends({ cursor }) (import Cursor from 'pg-cursor').",
      { cause: error },
    )
  }
}

import { createRequire } from 'node:module'
import type { PostgresCursorConstructor } from 'kysely'
import { ConfigurationError } from '../errors.js'

/**
 * The cursor class Kysely's PostgreSQL driver streams with: the one given, else `pg-cursor`, an
 * optional peer loaded on the first `.stream()`, so that a user who never streams needs no package.
 */
export function cursorFor(given: PostgresCursorConstructor | undefined): PostgresCursorConstructor {
  let loaded: PostgresCursorConstructor | undefined = given
  // Kysely calls `new cursor(sql, parameters)`; a constructor that returns an object yields that object.
  function LazyCursor(sql: string, parameters: unknown[]) {
    loaded ??= loadPgCursor()
    return closingWithItsConnection(new loaded(sql, parameters))
  }
  return LazyCursor as unknown as PostgresCursorConstructor
}

/** What pg-cursor keeps of the connection it was submitted on: pg's Connection, an emitter over the socket. */
interface Submitted {
  connection?: {
    once(event: 'end', listener: () => void): unknown
    removeListener(event: 'end', listener: () => void): unknown
    stream?: { destroyed?: boolean }
  }
  close(cb?: (error?: unknown) => void): Promise<void> | undefined
}

/**
 * pg-cursor's `close()` waits for the server's ReadyForQuery, which never comes on a connection that was lost
 * (a server killed, or a socket kysely-rw cut once its server was found hanging). Kysely's stream closes its
 * cursor before it ends, even when a read failed: it would never settle, and its connection never go back.
 * Here a close ends when the connection does.
 */
function closingWithItsConnection<T>(cursor: T): T {
  const submitted = cursor as unknown as Submitted
  const close = submitted.close
  if (typeof close !== 'function') return cursor
  submitted.close = (cb) => {
    const connection = submitted.connection
    if (cb || !connection) return close.call(submitted, cb)
    if (connection.stream?.destroyed === true) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const ended = () => resolve()
      connection.once('end', ended)
      ;(close.call(submitted) as Promise<void>).then(resolve, reject).finally(() => {
        connection.removeListener('end', ended)
      })
    })
  }
  return cursor
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

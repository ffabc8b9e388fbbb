/** What a guarded statement was classified as. */
export type StatementKind =
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'replace'
  | 'ddl'
  | 'locking read'
  | 'raw sql'
  | 'data-modifying cte'
  | 'side-effect function'
  | 'database refusal'

/**
 * A write (or a lock, or DDL, or raw SQL not declared a read) reached a read backend. Nothing was sent
 * to the database when `kind` is anything but `'database refusal'`; in that case the database itself
 * refused the statement in its read-only session, and `cause` keeps its error.
 */
export class WriteOnReadBackendError extends Error {
  override readonly name: string = 'WriteOnReadBackendError'
  constructor(
    readonly kind: StatementKind,
    detail: string,
    options?: { cause?: unknown; message?: string },
  ) {
    super(
      options?.message ??
        `${detail} on a read backend. Run it on the write backend (db.write, or the tx of ` +
          'db.write.transaction()); a read backend only runs reads.',
      options,
    )
  }
}

/**
 * A query inside `write.transaction().execute(cb)` ran on `db.read` or `db.write` instead of the
 * transaction's `tx`: it would run on another connection and not see the transaction's writes.
 */
export class TransactionEscapeError extends Error {
  override readonly name = 'TransactionEscapeError'
  constructor() {
    super(
      'A query inside a write transaction was issued on the outer db.read or db.write backend. It would ' +
        "run on another connection and miss the transaction's own writes. Use the `tx` handed to the " +
        'transaction callback instead.',
    )
  }
}

/**
 * A `readSql` string that is not a single read statement; refused on any backend, before it is sent.
 * A subclass of WriteOnReadBackendError, so that one `instanceof` check catches every refused write.
 */
export class NotAReadStatementError extends WriteOnReadBackendError {
  override readonly name = 'NotAReadStatementError'
  constructor(
    /** What the text was found to be, e.g. `more than one statement`. */
    readonly reason: string,
  ) {
    const why = reason
    super('raw sql', why, {
      message:
        `readSql was given ${why}, which is not a read. Declare only single read statements with readSql; ` +
        "run writes with Kysely's sql template on the write backend (sql`…`.execute(db.write)).",
    })
  }
}

/** The configuration handed to `createBackends` is unusable. */
export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError'
}

/**
 * Renders a connection string with user, password and query string removed, for errors and events:
 * `postgres://app:secret@db1:5432/app?sslmode=require` becomes `postgres://db1:5432/app`.
 */
export function redactConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString)
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`
  } catch {
    return '(unparsable connection string)'
  }
}

/** Removes anything that looks like a connection string's credentials from a message. */
export function redactSecrets(message: string): string {
  return message
    .replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s]*@/gi, '$1')
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s?]*)\?\S*/gi, '$1')
    .replace(/password\s*=\s*\S+/gi, 'password=***')
}

/**
 * A driver error as it may leave kysely-rw: a URL in its message loses its credentials, and fields that
 * drivers fill with the whole input (Node's `ERR_INVALID_URL` keeps it in `input`) are removed. Errors
 * keep their class and code, so that callers can still tell them apart.
 */
export function redactDriverError(error: unknown): unknown {
  if (!(error instanceof Error)) return error
  const redacted = redactSecrets(error.message)
  if (redacted !== error.message) {
    try {
      error.message = redacted
    } catch {
      // A frozen error keeps its message; its stack is not rewritten either.
    }
  }
  const fields = error as unknown as Record<string, unknown>
  for (const key of ['input', 'url', 'uri', 'connectionString']) {
    if (typeof fields[key] === 'string') {
      try {
        fields[key] = redactSecrets(String(fields[key]))
      } catch {}
    }
  }
  if (typeof error.stack === 'string') {
    try {
      error.stack = redactSecrets(error.stack)
    } catch {}
  }
  return error
}

/**
 * No replica can serve a read: `whenNoReplica: 'error'` and none is up and caught up enough, or the replica
 * a read transaction or a stream ran on was lost under it (such a read cannot move to another node).
 */
export class NoReplicaAvailableError extends Error {
  override readonly name = 'NoReplicaAvailableError'
  constructor(detail: string, options?: { cause?: unknown; advice?: string }) {
    super(
      `No replica can serve this read (${redactSecrets(detail)}). ` +
        (options?.advice ?? "Retry later, or set whenNoReplica: 'primary' to let reads fall back to the primary."),
      options?.cause === undefined ? undefined : { cause: options.cause },
    )
  }
}

/**
 * The primary could not be reached, or did not answer in time. Writes are never retried: whether one was
 * applied is unknown. Reads that only the primary can serve fail with it too, with `advice` for them.
 */
export class PrimaryUnavailableError extends Error {
  override readonly name = 'PrimaryUnavailableError'
  constructor(node: string, options: { cause: unknown; advice?: string }) {
    super(
      `The primary (${node}) is unreachable: ${redactSecrets(messageOf(options.cause))}. ` +
        (options.advice ?? 'Writes are not retried.'),
      { cause: options.cause },
    )
  }
}

/**
 * A read that could not move to another node lost its connection (`what`: a read transaction, a stream, or a
 * read already tried elsewhere): the error that says so, naming the node, with the driver's error as `cause`.
 * It changed nothing, so running it again is always safe.
 */
export function readLostError(node: string, onPrimary: boolean, what: string, cause: unknown): Error {
  const why = redactSecrets(messageOf(cause))
  const again =
    what === 'read'
      ? 'It had been tried on another node first; it changed nothing: run it again once a node answers.'
      : `A ${what} cannot move to another node once under way; it changed nothing: run it again, and it goes ` +
        'to a node that answers.'
  if (onPrimary) {
    return new PrimaryUnavailableError(node, {
      cause,
      advice: `The connection was lost during this ${what}. ${again}`,
    })
  }
  return new NoReplicaAvailableError(`the connection to ${node} was lost during this ${what}: ${why}`, {
    cause,
    advice: again,
  })
}

/** `db.session(token)` was given something that is not a token string. */
export class InvalidSessionTokenError extends TypeError {
  override readonly name = 'InvalidSessionTokenError'
  constructor(received: unknown) {
    super(
      `db.session(token) expects the string that session.token() returned, not ${typeof received}. ` +
        'Pass nothing to start a new session.',
    )
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The connection to the primary was lost while a write or COMMIT was in flight: it may or may not have
 * been applied. kysely-rw never retries it; check the data (or make the write idempotent) before
 * trying again.
 */
export class WriteOutcomeUnknownError extends Error {
  override readonly name = 'WriteOutcomeUnknownError'
  constructor(node: string, options: { cause: unknown }) {
    super(
      `The connection to the primary (${node}) was lost while a write was in flight: ` +
        `${redactSecrets(messageOf(options.cause))}. Whether it was applied is unknown, and it was not retried: ` +
        'check the data before writing again.',
      options,
    )
  }
}

/** A query was issued, or was still waiting for a connection, after `destroy()`. */
export class BackendsDestroyedError extends Error {
  override readonly name = 'BackendsDestroyedError'
  readonly code = 'BACKENDS_DESTROYED'
  constructor(node: string) {
    super(`The backends were destroyed (destroy() was called); ${node} is closed. Create new backends to query again.`)
  }
}

// NULL on a server not in recovery: a check there never confirms a replica read. The isolation level says
// whether the read that follows in the same transaction takes a snapshot of its own (see CheckedRead).
const REPLAY_CHECK_SQL = "select pg_last_wal_replay_lsn()::text, current_setting('transaction_isolation')"

/** The members of node-postgres's `Query` that a checked read uses or overrides (pg/lib/query.js). */
export interface PgQuery {
  text?: unknown
  requiresPreparation(): boolean
  callback?: ((error: unknown, result: unknown) => void) | undefined
  submit(connection: PgConnection): Error | null
  handleRowDescription(message: unknown): void
  handleDataRow(message: { fields: unknown[] }): void
  handleCommandComplete(message: unknown, connection: PgConnection): void
}

/** pg's protocol writer, as custom query objects (pg-cursor) use it. */
export interface PgConnection {
  parse(message: { text: string; name: string; types: unknown[] }): void
  bind(message: { portal: string; statement: string; values: unknown[] }): void
  execute(message: { portal: string; rows: number }): void
  stream: { cork?(): void; uncork?(): void }
}

// Text and values as arguments: a config object would cost every query a copy of it (pg's normalizeQueryConfig).
export type PgQueryClass = new (text: string, values?: unknown) => PgQuery

/** A read with the replica's replay check in front of it, in one message exchange. */
export interface CheckedRead extends PgQuery {
  /** The replay position the check answered; undefined until it did (or if it failed). */
  readonly replayed: string | undefined
  /** The session's isolation level, as the check answered it. */
  readonly isolation: string | undefined
}

const classes = new WeakMap<PgQueryClass, new (text: string, values: unknown) => CheckedRead>()

/**
 * The class of checked reads for one copy of node-postgres (its `Query`). The check's statement and the
 * read's go under one Sync: one implicit transaction, answered by one flush of the server's output (with a
 * Sync each, the server flushes twice, and the client wakes twice). In READ COMMITTED each statement takes
 * its own snapshot, so the read's is taken after the check ran: it sees every commit the check reported
 * replayed. Under REPEATABLE READ the transaction's one snapshot is taken before the check reads the
 * position, which may then report more than the read sees: the caller must not trust the check there.
 * An error in the check fails the read, which the server then skips: the caller routes it again.
 */
export function checkedReadClass(Query: PgQueryClass): new (text: string, values: unknown) => CheckedRead {
  let Checked = classes.get(Query)
  if (Checked) return Checked
  Checked = class extends Query implements CheckedRead {
    replayed: string | undefined = undefined
    isolation: string | undefined = undefined
    #checking = true

    // The extended protocol for every read, with or without parameters (pg's `queryMode: 'extended'`, which
    // only a config object can carry): a simple-protocol message would be an exchange of its own.
    override requiresPreparation(): boolean {
      return true
    }

    override submit(connection: PgConnection): Error | null {
      connection.stream.cork?.()
      try {
        connection.parse({ text: REPLAY_CHECK_SQL, name: '', types: [] })
        connection.bind({ portal: '', statement: '', values: [] })
        // No Describe: the two columns are known, and their values come as text without one.
        connection.execute({ portal: '', rows: 0 })
        // The read's own messages, ending with the one Sync. pg refuses a query here (returns an error) only
        // for text that is not a string or values that are not an array, which callers rule out: a refusal
        // now would leave the check's messages without a Sync.
        return super.submit(connection)
      } finally {
        connection.stream.uncork?.()
      }
    }

    override handleRowDescription(message: unknown): void {
      if (!this.#checking) super.handleRowDescription(message)
    }

    override handleDataRow(message: { fields: unknown[] }): void {
      if (!this.#checking) {
        super.handleDataRow(message)
        return
      }
      const [replayed, isolation] = message.fields
      this.replayed = replayed == null ? undefined : String(replayed)
      this.isolation = isolation == null ? undefined : String(isolation)
    }

    override handleCommandComplete(message: unknown, connection: PgConnection): void {
      if (this.#checking) {
        this.#checking = false
        return
      }
      super.handleCommandComplete(message, connection)
    }
  }
  classes.set(Query, Checked)
  return Checked
}

import type { CompiledQuery } from 'kysely'
import { WriteOnReadBackendError } from '../errors.js'
import { classify } from './classify.js'
import { isDeclaredRead } from './declared-reads.js'
import type { Lexing } from './read-text.js'

/** The checks every query on a read backend passes before it is sent, and after it fails. */
export class ReadGuard {
  constructor(
    private readonly isReadOnlyRefusal: (error: unknown) => boolean,
    private readonly lexing: Lexing,
  ) {}

  /** Throws before anything is sent when the query is not a read. */
  check(query: CompiledQuery): void {
    if (isDeclaredRead(query)) return
    const classification = classify(query.query, this.lexing, query.sql)
    if (classification.write) {
      throw new WriteOnReadBackendError(classification.kind, classification.detail)
    }
  }

  /** The database's own refusal in a read-only session becomes the same error, keeping its message. */
  translate(error: unknown): unknown {
    if (!this.isReadOnlyRefusal(error)) return error
    const message = error instanceof Error ? error.message : String(error)
    return new WriteOnReadBackendError('database refusal', `The database refused a write (${message})`, {
      cause: error,
    })
  }
}

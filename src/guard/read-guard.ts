import type { CompiledQuery, RootOperationNode } from 'kysely'
import { NotAReadStatementError, WriteOnReadBackendError } from '../errors.js'
import { classify } from './classify.js'
import { isDeclaredRead } from './declared-reads.js'
import type { Lexing } from './lexer.js'
import { QuietSelect } from './quiet-compiler.js'
import { isQuiet } from './quiet-text.js'
import { copyCheckedValues, refuseRawValues } from './raw-values.js'
import { inspectReadText } from './read-text.js'

/** A query as the guard approved it: the copy to send, and whether the session must be reset after it. */
export interface GuardedQuery {
  /** A frozen copy of the query as checked: send this one, never the original. */
  readonly query: CompiledQuery
  /** The read called a function that may change the session: end it so that nothing stays behind. */
  readonly leavesState: boolean
}

const NO_STATE = false

/** The checks every query on a read backend passes before it is sent, and after it fails. */
export class ReadGuard {
  constructor(
    private readonly isReadOnlyRefusal: (error: unknown) => boolean,
    /** How the servers behind this guard lex SQL text. */
    readonly lexing: Lexing,
  ) {}

  /**
   * Throws before anything is sent when the query is not a read. The query is copied once (text,
   * parameters, tree) and the copy is what is checked and what must be sent: a getter or a mutation
   * after the check changes nothing.
   */
  check(original: CompiledQuery): GuardedQuery {
    // A builder read whose verdict the read backend's compiler reached: frozen, nothing to copy or lex.
    const quiet = QuietSelect.toSend(original, this.lexing)
    if (quiet) return { query: this.lexing === 'mysql' ? checkedValues(quiet) : quiet, leavesState: NO_STATE }
    const declared = isDeclaredRead(original)
    const snap = snapshot(original)
    const query = this.lexing === 'mysql' ? checkedValues(snap) : snap
    const root = query.query
    if (root.kind === 'SelectQueryNode') {
      // Most reads: text made only of names, parameters, keywords and pure built-ins cannot hide anything.
      if (isQuiet(query.sql, this.lexing)) return { query, leavesState: NO_STATE }
      this.#refuseByTree(root)
      return { query, leavesState: this.#inspect(query, 'A SELECT whose text is not a read') }
    }
    if (declared && root.kind === 'RawNode') {
      return { query, leavesState: this.#inspect(query, 'A readSql text that is not a read') }
    }
    this.#refuseByTree(root)
    // classify() refuses every root but SELECT; a kind it let through is refused all the same.
    throw new WriteOnReadBackendError('raw sql', `A ${root.kind} query`)
  }

  #refuseByTree(root: RootOperationNode): void {
    const classification = classify(root, this.lexing)
    if (classification.write) throw new WriteOnReadBackendError(classification.kind, classification.detail)
  }

  #inspect(query: CompiledQuery, what: string): boolean {
    let effects: ReturnType<typeof inspectReadText>
    try {
      effects = inspectReadText(query.sql, query.parameters, this.lexing)
    } catch (error) {
      if (!(error instanceof NotAReadStatementError)) throw error
      throw new WriteOnReadBackendError('raw sql', `${what} (${error.reason})`)
    }
    if (effects.sideEffect) {
      throw new WriteOnReadBackendError(
        'side-effect function',
        `${effects.sideEffect} (it changes the session, takes a lock or writes outside the transaction)`,
      )
    }
    return effects.leavesState
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

/**
 * mysql2 formats values into the text on the client: a value that could become raw SQL is refused, and
 * structured values are copied, so that the caller cannot change them between the check and the send.
 */
function checkedValues(query: CompiledQuery): CompiledQuery {
  refuseRawValues(query.parameters)
  const parameters = copyCheckedValues(query.parameters)
  return parameters === query.parameters ? query : Object.freeze({ ...query, parameters: Object.freeze(parameters) })
}

/** Text, parameters and tree read once, into an object nothing can change. */
function snapshot(query: CompiledQuery): CompiledQuery {
  const { sql, parameters, query: node, queryId } = query
  if (typeof sql !== 'string' || !Array.isArray(parameters) || typeof node?.kind !== 'string') {
    throw new WriteOnReadBackendError('raw sql', 'A query that is not a compiled Kysely query')
  }
  return Object.freeze({ query: node, queryId, sql, parameters: Object.freeze([...parameters]) })
}

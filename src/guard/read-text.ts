import { NotAReadStatementError } from '../errors.js'
import { type Lexed, type Lexing, lex, VARIANTS } from './lexer.js'
import { mayLeaveState, sideEffectOf } from './side-effects.js'

export type { Lexing } from './lexer.js'

const READ_START = /^(?:select|with|values|table|show|explain)\b/i
const LOCK = /\bfor\s+(?:update|no\s+key\s+update|share|key\s+share)\b|\block\s+in\s+share\s+mode\b/i
// MySQL: `@v := …` sets a user variable; `NEXT VALUE FOR s` advances a sequence.
const MYSQL_STATE = /:=|\b(?:next|previous)\s+value\s+for\b/i

/**
 * Throws NotAReadStatementError unless `text` is a single statement that starts as a read: `SELECT`,
 * `WITH` without a data-modifying body, `VALUES`, `TABLE`, `SHOW`, or `EXPLAIN` without `ANALYZE`,
 * and takes no locks. The text is split into code, literals and comments as its server does, under
 * every setting that moves where a literal ends (`standard_conforming_strings`, `NO_BACKSLASH_ESCAPES`,
 * `ANSI_QUOTES`).
 */
export function assertReadStatement(text: string, lexing: Lexing = 'postgres'): void {
  for (const variant of VARIANTS[lexing]) check(lex(text, lexing, variant), lexing)
}

/** What the text of a read does beyond reading, once {@link assertReadStatement} accepted it. */
export interface TextEffects {
  /** A function (or construct) that changes something a read-only transaction does not protect. */
  readonly sideEffect: string | undefined
  /** The text calls a function that may change the session (a user-defined one): reset it after the read. */
  readonly leavesState: boolean
}

/** Checks `text` as {@link assertReadStatement} does, then names its side effects. */
export function inspectReadText(text: string, parameters: readonly unknown[], lexing: Lexing): TextEffects {
  let leavesState = false
  for (const variant of VARIANTS[lexing]) {
    const lexed = lex(text, lexing, variant)
    check(lexed, lexing)
    for (const call of lexed.calls) {
      const sideEffect = sideEffectOf(call, lexed.code, parameters, lexing)
      if (sideEffect) return { sideEffect, leavesState: true }
      if (mayLeaveState(call, lexing)) leavesState = true
    }
    if (lexing === 'mysql') {
      const state = MYSQL_STATE.exec(lexed.code)
      if (state) return { sideEffect: state[0].replace(/\s+/g, ' ').toUpperCase(), leavesState: true }
      // mysql2 puts each value in place of a `?` it finds with a lexer of its own, which splits texts the
      // server splits otherwise (`/*+ ' */`, `--` before DEL, ANSI_QUOTES): a value put where the server
      // reads a literal would end that literal, and the rest of the value would run as code. With every
      // `?` in code there is no such place.
      if (parameters.length > 0 && count(text, '?') !== count(lexed.code, '?')) {
        refuse('a ? inside a literal, quoted name or comment of a query with parameters')
      }
    }
  }
  return { sideEffect: undefined, leavesState }
}

function count(text: string, char: string): number {
  let n = 0
  for (let i = text.indexOf(char); i >= 0; i = text.indexOf(char, i + 1)) n++
  return n
}

function refuse(why: string): never {
  throw new NotAReadStatementError(why)
}

function check(lexed: Lexed | undefined, _lexing: Lexing): asserts lexed is Lexed {
  if (lexed === undefined)
    refuse(
      'an unterminated literal or comment, an escaped identifier, or an executable comment whose end depends on the server version',
    )
  const code = lexed.code.trim().replace(/^[(\s]+/, '')
  if (/;\s*\S/.test(code)) refuse('more than one statement')
  const start = READ_START.exec(code)?.[0]?.toLowerCase()
  if (!start) refuse(`a statement starting with "${code.split(/\s/, 1)[0] ?? ''}"`)
  // PostgreSQL also takes the option quoted, `explain ("analyze") …`, which the code shows as `""`: a quoted
  // name among EXPLAIN's options is refused with it (EXPLAIN ANALYZE CREATE TABLE AS creates the table even
  // in a read-only transaction).
  if (start === 'explain' && (/\banaly[sz]e\b/i.test(code) || /^explain\s*\([^)]*""/i.test(code)))
    refuse('EXPLAIN ANALYZE (it executes the statement)')
  if (LOCK.test(code)) refuse('a locking read')
  // A write word outside literals, names and comments: a data-modifying WITH, at the top or in a subquery.
  if (/\b(?:insert|update|delete|merge)\b/i.test(code))
    refuse(start === 'with' ? 'a data-modifying WITH' : 'a write inside a read')
  if ((start === 'select' || start === 'with') && /\binto\b/i.test(code)) refuse('SELECT … INTO')
}

/** True when `text` passes {@link assertReadStatement}. */
export function isReadStatement(text: string, lexing: Lexing = 'postgres'): boolean {
  try {
    assertReadStatement(text, lexing)
    return true
  } catch {
    return false
  }
}

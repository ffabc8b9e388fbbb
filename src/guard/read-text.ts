import { NotAReadStatementError } from '../errors.js'

/** How a database family quotes and comments, which decides what is code and what is text. */
export type Lexing = 'postgres' | 'mysql'

const READ_START = /^(?:select|with|values|table|show|explain)\b/i
const LOCK = /\bfor\s+(?:update|no\s+key\s+update|share|key\s+share)\b|\block\s+in\s+share\s+mode\b/i

/**
 * Throws NotAReadStatementError unless `text` is a single statement that starts as a read: `SELECT`,
 * `WITH` without a data-modifying body, `VALUES`, `TABLE`, `SHOW`, or `EXPLAIN` without `ANALYZE`,
 * and takes no locks.
 */
export function assertReadStatement(text: string, lexing: Lexing = 'postgres'): void {
  check(codeOf(text, lexing))
}

function refuse(why: string): never {
  throw new NotAReadStatementError(why)
}

function check(stripped: string | undefined): void {
  if (stripped === undefined) refuse('an unterminated literal or comment')
  const code = stripped.trim().replace(/^[(\s]+/, '')
  if (/;\s*\S/.test(code)) refuse('more than one statement')
  const start = READ_START.exec(code)?.[0]?.toLowerCase()
  if (!start) refuse(`a statement starting with "${code.split(/\s/, 1)[0] ?? ''}"`)
  if (start === 'explain' && /\banaly[sz]e\b/i.test(code)) refuse('EXPLAIN ANALYZE (it executes the statement)')
  if (LOCK.test(code)) refuse('a locking read')
  if (start === 'with' && /\b(?:insert|update|delete|merge)\b/i.test(code)) refuse('a data-modifying WITH')
  if ((start === 'select' || start === 'with') && /\binto\b/i.test(code)) refuse('SELECT … INTO')
}

/** The statement's own text: literals become empty ones and comments spaces, in one left-to-right scan. */
function codeOf(text: string, lexing: Lexing): string | undefined {
  let out = ''
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    const rest = text.slice(i)
    const lineComment = lexing === 'postgres' ? /^--/ : /^(?:#|--(?:\s|$))/
    if (lineComment.test(rest)) {
      const end = text.indexOf('\n', i)
      i = end < 0 ? text.length : end
      out += ' '
      continue
    }
    if (rest.startsWith('/*')) {
      let depth = 1
      i += 2
      while (i < text.length && depth > 0) {
        if (lexing === 'postgres' && text.startsWith('/*', i)) depth++, (i += 2)
        else if (text.startsWith('*/', i)) depth--, (i += 2)
        else i++
      }
      if (depth > 0) return undefined
      out += ' '
      continue
    }
    const dollar =
      lexing === 'postgres' && !/[\w$]/.test(text[i - 1] ?? '')
        ? /^\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(rest)
        : null
    if (dollar) {
      const end = text.indexOf(dollar[0], i + dollar[0].length)
      if (end < 0) return undefined
      i = end + dollar[0].length
      out += "''"
      continue
    }
    if (c === "'" || c === '"' || (c === '`' && lexing === 'mysql')) {
      const backslash =
        lexing === 'mysql' ? c !== '`' : c === "'" && /[eE]/.test(text[i - 1] ?? '') && !/[\w$]/.test(text[i - 2] ?? '')
      let closed = false
      i++
      while (i < text.length) {
        const d = text[i]
        if (backslash && d === '\\') i += 2
        else if (d === c && text[i + 1] === c) i += 2
        else if (d === c) {
          i++
          closed = true
          break
        } else i++
      }
      if (!closed) return undefined
      out += c + c
      continue
    }
    out += c
    i++
  }
  return out
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

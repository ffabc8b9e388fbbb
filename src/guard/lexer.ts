/** How a database family quotes and comments, which decides what is code and what is text. */
export type Lexing = 'postgres' | 'mysql'

/**
 * Server settings that change where a literal ends: PostgreSQL's `standard_conforming_strings` and
 * MySQL's `NO_BACKSLASH_ESCAPES` / `ANSI_QUOTES`. A text is checked under every variant its server
 * may be running with, so that a literal the checker ends in one place cannot end elsewhere on the server.
 */
export interface LexVariant {
  /** Backslash escapes in `'…'` literals. */
  readonly backslashInSingle: boolean
  /** MySQL: `"…"` is a string with backslash escapes (the default) rather than an identifier (ANSI_QUOTES). */
  readonly doubleQuotedString: boolean
}

/**
 * Where a keyword may start in SQL text that is not lexed, as a regular expression's source: not right after a
 * letter, `_`, `$` or a non-ASCII character (it would be inside a name), but after a digit too, since both
 * servers end a number where its digits end (`1.0into`, `1.0for update`).
 */
export const KEYWORD_START = '(?<![A-Za-z_$\\u0080-\\uffff])'

/** The variants each server family may be configured with. */
export const VARIANTS: Record<Lexing, readonly LexVariant[]> = {
  postgres: [
    { backslashInSingle: false, doubleQuotedString: false },
    { backslashInSingle: true, doubleQuotedString: false },
  ],
  mysql: [
    { backslashInSingle: true, doubleQuotedString: true },
    { backslashInSingle: false, doubleQuotedString: false },
    { backslashInSingle: true, doubleQuotedString: false },
  ],
}

/** A name followed by `(` in code: a function call (or a keyword that takes parentheses). */
export interface Call {
  /**
   * The name's last part, lower case. A quoted name keeps its case on PostgreSQL, where quoted names are
   * case-sensitive, and is lower-cased on MySQL, whose function names are case-insensitive quoted or not.
   */
  readonly name: string
  /** The part before the last `.` of a qualified name (`pg_catalog` of `pg_catalog.md5(`), as {@link name}. */
  readonly qualifier?: string
  /** Index of the `(` in {@link Lexed.code}. */
  readonly open: number
}

export interface Lexed {
  /** The text with every literal as `''`, every quoted identifier as `""`, every comment as a space. */
  readonly code: string
  readonly calls: readonly Call[]
}

// UTF-8 bytes at or above 0x80 are identifier characters to both servers, so every non-ASCII UTF-16 unit is.
const isIdentStart = (c: string) => /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80
const isIdentPart = (c: string, lexing: Lexing) =>
  /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80 || (lexing === 'mysql' && c === '$')
const isDigit = (c: string) => c >= '0' && c <= '9'

/**
 * Splits `text` into code, literals and comments the way the server does: PostgreSQL ends `--`
 * comments at `\n` or `\r`, nests block comments, starts dollar quotes only where a token starts,
 * escapes backslashes in `E'…'` (never in `B'…'`, `X'…'`, `U&'…'`) and continues a literal across a
 * newline into the next `'…'` in the same escaping; MySQL ends `#` and `-- ` comments at `\n` only
 * (`--` starts one before any space or control character), does not nest block comments, and runs the
 * inside of `/*! … *\/` (and MariaDB's `/*M! … *\/`) as code.
 * Undefined for text the server would refuse (an unterminated literal or comment), that hides names
 * in escapes (PostgreSQL's `U&"…"`), or whose split depends on the server's version (see below).
 */
export function lex(text: string, lexing: Lexing, variant: LexVariant): Lexed | undefined {
  const pg = lexing === 'postgres'
  let code = ''
  const calls: Call[] = []
  // The names that end right before the current position (for calls), if the last token was one. More
  // than one when a comment the server may skip or run sits between (`f/*!99999 g*/(` calls f or g).
  let names: readonly Name[] = NONE
  // The name before a `.` just read: the next name is qualified by it.
  let qualifier: string | undefined
  // The names before an executable comment the server may skip: they may still be followed by its `(`.
  let beforeSkippable: readonly Name[] | undefined
  const named = (name: string): readonly Name[] => {
    const found = [{ name, qualifier }]
    qualifier = undefined
    return found
  }
  const forget = () => {
    names = NONE
    qualifier = undefined
  }
  let i = 0
  const n = text.length
  // Executable comments nest code inside a comment: remember where their `*/` is.
  let executableEnds = 0
  while (i < n) {
    const c = text[i]!
    const next = text[i + 1] ?? ''
    if (executableEnds > 0 && c === '*' && next === '/') {
      executableEnds--
      i += 2
      code += ' '
      if (beforeSkippable) names = [...names, ...beforeSkippable]
      beforeSkippable = undefined
      continue
    }
    // Comments.
    const lineComment = pg
      ? c === '-' && next === '-'
      : c === '#' || (c === '-' && next === '-' && (i + 2 >= n || isSpaceOrControl(text.charCodeAt(i + 2))))
    if (lineComment) {
      let end = i
      while (end < n && text[end] !== '\n' && !(pg && text[end] === '\r')) end++
      i = end
      code += ' '
      continue
    }
    if (c === '/' && next === '*') {
      if (!pg && (text[i + 2] === '!' || (text[i + 2] === 'M' && text[i + 3] === '!'))) {
        // MySQL / MariaDB executable comment: the version digits are skipped, the rest is code.
        // The server ends an executable comment at its first `*/` and starts no second one inside:
        // a nested one would end both where this lexer ends one.
        if (executableEnds > 0) return undefined
        const mariaOnly = text[i + 2] === 'M'
        i += mariaOnly ? 4 : 3
        const digits = i
        while (i < n && isDigit(text[i]!)) i++
        // A versioned comment (`/*!50700 …`, `/*!999999 …`) runs as code only on servers of that version
        // or later, and MySQL takes `/*M! …` for a plain comment. Skipped, it ends at its first `*/`
        // (quotes and comments inside are text, with one nested `/* */` allowed), as code where its code
        // ends: the two agree only when nothing inside can start a literal or comment.
        if (mariaOnly || i > digits) {
          const end = text.indexOf('*/', i)
          if (end < 0 || /['"`#]|--|\/\*/.test(text.slice(i, end))) return undefined
          beforeSkippable = names
        }
        // Like any comment, it ends no name: `get_lock/*!*/(` is a call of get_lock.
        executableEnds++
        code += ' '
        continue
      }
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (pg && text[i] === '/' && text[i + 1] === '*') {
          depth++
          i += 2
        } else if (text[i] === '*' && text[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
      if (depth > 0) return undefined
      code += ' '
      continue
    }
    // Quoted identifiers.
    const identifierQuote = pg ? c === '"' : c === '`' || (c === '"' && !variant.doubleQuotedString)
    if (identifierQuote) {
      const end = closing(text, i + 1, c, false)
      if (end < 0) return undefined
      const quoted = text.slice(i + 1, end).replaceAll(c + c, c)
      names = named(pg ? quoted : quoted.toLowerCase())
      code += '""'
      i = end + 1
      continue
    }
    // String literals.
    if (c === "'" || (!pg && c === '"')) {
      const end = pg
        ? pgClosing(text, i + 1, variant.backslashInSingle)
        : closing(text, i + 1, c, variant.backslashInSingle)
      if (end < 0) return undefined
      code += "''"
      forget()
      i = end + 1
      continue
    }
    if (pg && c === '$') {
      if (isDigit(next)) {
        // A parameter, $1 (followed by a space, as a number is).
        let end = i + 1
        while (end < n && isDigit(text[end]!)) end++
        code += `${text.slice(i, end)} `
        forget()
        i = end
        continue
      }
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(text.slice(i, i + 200))
      if (tag) {
        const end = text.indexOf(tag[0], i + tag[0].length)
        if (end < 0) return undefined
        code += "''"
        forget()
        i = end + tag[0].length
        continue
      }
    }
    // Identifiers and keywords (whole tokens, so that a quote or `$` inside one starts nothing).
    if (isIdentStart(c) || (!pg && isDigit(c) && identifierAhead(text, i))) {
      let end = i + 1
      while (end < n && isIdentPart(text[end]!, lexing)) end++
      const word = text.slice(i, end)
      const quote = text[end]
      // PostgreSQL's prefixed literals: `E'…'` always takes backslash escapes, `B'…'`, `X'…'` and `U&'…'`
      // never do, whatever standard_conforming_strings says (`N'…'` is a plain literal).
      const prefixed = pg && /^[eEbBxX]$/.test(word) && quote === "'"
      const unicode = pg && /^[uU]$/.test(word) && text[end] === '&' && text[end + 1] === "'"
      if (prefixed || unicode) {
        const close = pgClosing(text, end + (unicode ? 2 : 1), /^[eE]$/.test(word))
        if (close < 0) return undefined
        code += "''"
        forget()
        i = close + 1
        continue
      }
      if (pg && /^[uU]$/.test(word) && text[end] === '&' && text[end + 1] === '"') return undefined
      code += word
      names = named(word.toLowerCase())
      i = end
      continue
    }
    // A `.` then digits starts a number (`.5into`), but MySQL reads a name after `name.` (`t.5a`).
    if (isDigit(c) || (c === '.' && isDigit(next) && (pg || names.length === 0 || /\s$/.test(code)))) {
      // Both servers end a number where its digits end, also before a letter (`1.0into`, `1e0lock`):
      // a space after it keeps the word that follows a word to the keyword checks on the code.
      NUMBER.lastIndex = i
      NUMBER.test(text)
      code += `${text.slice(i, NUMBER.lastIndex)} `
      forget()
      i = NUMBER.lastIndex
      continue
    }
    if (c === '(') for (const { name, qualifier } of names) calls.push({ name, qualifier, open: code.length })
    if (c === '.') {
      // A qualified name: `pg_catalog.set_config(` is a call of `set_config`, qualified by `pg_catalog`.
      qualifier = names[0]?.name ?? ''
      names = NONE
      code += c
      i++
      continue
    }
    if (!/\s/.test(c)) {
      forget()
    }
    code += c
    i++
  }
  if (executableEnds > 0) return undefined
  return { code, calls }
}

interface Name {
  readonly name: string
  readonly qualifier: string | undefined
}
const NONE: readonly Name[] = []

// A numeric literal as the servers read it: digits, a fraction, an exponent only with its digits. (MySQL's
// `0x41`, `0b1` and names that start with digits, `1into`, are read as words before this; PostgreSQL 15
// refuses a number followed by a letter, and earlier versions end it before the letter, as here.)
const NUMBER = /[0-9]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?/y

// PostgreSQL's `quotecontinue`: after a closing quote, blanks and `--` comments holding a newline, then a
// quote, continue the same literal, escaped as it began (`E'a'\n'\''` is one escaped literal).
// (A `--` comment runs to the line's end, so at most one precedes the newline; one character per turn
// after it keeps the pattern linear.)
const PG_CONTINUE = /[ \t\f]*(?:--[^\n\r]*)?[\n\r](?:[ \t\n\r\f]|--[^\n\r]*[\n\r])*'/y

/** PostgreSQL: index of the quote that closes a `'` literal opened before `from`, continuations included. */
function pgClosing(text: string, from: number, backslash: boolean): number {
  for (let start = from; ; ) {
    const end = closing(text, start, "'", backslash)
    if (end < 0) return end
    PG_CONTINUE.lastIndex = end + 1
    if (!PG_CONTINUE.test(text)) return end
    start = PG_CONTINUE.lastIndex
  }
}

// MySQL / MariaDB start a `--` comment before a space or a control character (DEL included).
const isSpaceOrControl = (code: number) => code <= 32 || code === 127

/** Index of the quote that closes a literal opened before `from`; -1 when none does. */
function closing(text: string, from: number, quote: string, backslash: boolean): number {
  let i = from
  while (i < text.length) {
    const d = text[i]
    if (backslash && d === '\\') i += 2
    else if (d === quote && text[i + 1] === quote) i += 2
    else if (d === quote) return i
    else i++
  }
  return -1
}

// MySQL identifiers may start with digits (`1e` is a number, `1a` a name).
function identifierAhead(text: string, i: number): boolean {
  let end = i
  while (end < text.length && isDigit(text[end]!)) end++
  const c = text[end]
  return c !== undefined && /[A-Za-z_$]/.test(c) && !/^[eE][0-9+-]/.test(text.slice(end, end + 2))
}

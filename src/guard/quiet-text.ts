import { KEYWORD_START, type Lexing } from './lexer.js'
import { KEYWORDS_BEFORE_PAREN, PURE } from './side-effects.js'

// What could make a text more than a plain SELECT: a statement separator, a literal or comment (where
// lexers can disagree), an escape, a dollar quote, a write, lock or INTO word, an assignment. A name that
// merely holds a digit before such a word (`c1into`) only costs the lexed check.
const LOUD: Record<Lexing, RegExp> = {
  postgres: new RegExp(
    String.raw`[;'\\]|--|\/\*|\$[^0-9]|${KEYWORD_START}(?:insert|update|delete|merge|into|share|lock)\b`,
    'i',
  ),
  mysql: new RegExp(
    String.raw`[;'"\\#]|--|\/\*|:=|${KEYWORD_START}(?:insert|update|delete|merge|replace|into|share|lock|next|previous|handler)\b`,
    'i',
  ),
}
const START = /^\s*(?:select|with|\()/i
// A call, and the `.` of a qualified one: `app.md5(` is a function of the app, whatever its name. A whole
// name, digits first included (MySQL's `1md5(` is no call of md5).
const CALL = /(\.\s*)?((?<![\w$\u0080-\uffff])[\w$\u0080-\uffff]+|["`])\s*\(/g

/**
 * True when `text` is made of names, parameters, keywords and calls of built-ins that change nothing:
 * such a text is a plain read whatever tree it came with, so it needs no lexing, and no session reset.
 * What Kysely compiles from builder reads is almost always quiet.
 */
export function isQuiet(text: string, lexing: Lexing): boolean {
  if (!START.test(text) || LOUD[lexing].test(text)) return false
  const pure = PURE[lexing]
  CALL.lastIndex = 0
  for (let match = CALL.exec(text); match !== null; match = CALL.exec(text)) {
    const name = match[2]!
    if (match[1] !== undefined || name === '"' || name === '`') return false
    const lower = name.toLowerCase()
    if (!KEYWORDS_BEFORE_PAREN.has(lower) && !pure.has(lower)) return false
  }
  return true
}

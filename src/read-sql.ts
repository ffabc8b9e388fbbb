import { sql, type QueryResult, type RawBuilder } from 'kysely'
import type { CanRead } from './capability.js'
import { NotAReadStatementError } from './errors.js'
import { declareRead } from './guard/declared-reads.js'

/** A raw SQL read: runs on any backend that can read, after its text was checked to be one. */
export interface ReadSql<R> {
  execute(db: CanRead<any>): Promise<QueryResult<R>>
  /** The underlying Kysely raw builder, to embed the fragment in a query builder. */
  readonly raw: RawBuilder<R>
}

/**
 * Raw SQL declared a read, with the template syntax of Kysely's `sql`. Runs on any {@link CanRead}.
 * The text must be one statement that starts as a read: `SELECT`, `WITH` without a data-modifying
 * body, `VALUES`, `TABLE`, `SHOW`, or `EXPLAIN` without `ANALYZE`; anything else throws
 * {@link NotAReadStatementError} before it is sent.
 *
 * ```ts
 * const { rows } = await readSql<{ n: number }>`select count(*)::int as n from users`.execute(db.read)
 * ```
 */
export function readSql<R = unknown>(strings: TemplateStringsArray, ...parameters: unknown[]): ReadSql<R> {
  const raw = sql<R>(strings, ...parameters)
  return {
    raw,
    async execute(db) {
      // At run time every backend is a Kysely instance; the types only hide its executor from reads.
      const provider = db as unknown as Parameters<RawBuilder<R>['compile']>[0]
      const compiled = raw.compile(provider)
      assertReadStatement(compiled.sql)
      declareRead(compiled)
      return provider.getExecutor().executeQuery<R>(compiled)
    },
  }
}

const READ_START = /^(?:select|with|values|table|show|explain)\b/i

/** Throws unless `text` is a single statement that starts as a read. */
export function assertReadStatement(text: string): void {
  const code = stripLiteralsAndComments(text).trim().replace(/^\(+\s*/, '')
  const refuse = (why: string) => {
    throw new NotAReadStatementError('raw sql', `readSql was given ${why}, which is not a read,`)
  }
  if (/;\s*\S/.test(code)) refuse('more than one statement')
  const start = READ_START.exec(code)?.[0]?.toLowerCase()
  if (!start) refuse(`a statement starting with "${code.split(/\s/, 1)[0] ?? ''}"`)
  if (start === 'explain' && /\banalyze\b/i.test(code)) refuse('EXPLAIN ANALYZE (it executes the statement)')
  if (start === 'with' && /\b(?:insert|update|delete|merge)\b/i.test(code)) refuse('a data-modifying WITH')
  if (/\bfor\s+(?:update|no\s+key\s+update|share|key\s+share)\b|\block\s+in\s+share\s+mode\b/i.test(code)) {
    refuse('a locking read')
  }
  if (start === 'select' && /\binto\b/i.test(code)) refuse('SELECT … INTO')
}

// Quoted text and comments may contain any word; only the statement's own words are checked.
function stripLiteralsAndComments(text: string): string {
  return text
    .replace(/--[^\n]*/g, ' ')
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/\$([a-z_]*)\$[\s\S]*?\$\1\$/gi, "''")
    .replace(/'(?:[^']|'')*'/g, "''")
    .replace(/"(?:[^"]|"")*"/g, '""')
    .replace(/`(?:[^`]|``)*`/g, '``')
}

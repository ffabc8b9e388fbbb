import { WriteOnReadBackendError } from '../errors.js'

// How deep values are searched: mysql2 formats arrays and objects recursively.
const MAX_DEPTH = 8

/**
 * mysql2 formats parameters into the query text on the client (`query()`, which Kysely's MySQL driver
 * uses), and a value with a `toSqlString()` method is inserted as raw SQL (`sqlstring`'s `raw()`):
 * such a value could turn a checked read into any statement the text allows. No JSON value has one,
 * so untrusted input cannot make one; a read carrying one is refused, at any depth mysql2 looks.
 */
export function refuseRawValues(parameters: readonly unknown[]): void {
  for (const value of parameters) {
    if (typeof value === 'object' && value !== null && carriesRaw(value, 0)) {
      throw new WriteOnReadBackendError(
        'raw sql',
        'A parameter with a toSqlString() method, which mysql2 inserts into the query as raw SQL',
      )
    }
  }
}

function carriesRaw(value: object, depth: number): boolean {
  if (typeof (value as { toSqlString?: unknown }).toSqlString === 'function') return true
  if (depth >= MAX_DEPTH || value instanceof Date || ArrayBuffer.isView(value)) return false
  const children = Array.isArray(value) ? value : Object.values(value)
  for (const child of children) {
    if (typeof child === 'object' && child !== null && carriesRaw(child, depth + 1)) return true
  }
  return false
}

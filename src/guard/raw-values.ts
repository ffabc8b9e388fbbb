import { types } from 'node:util'
import { WriteOnReadBackendError } from '../errors.js'

// How deep values are searched. mysql2 formats arrays and sets recursively with no limit: a value nested
// deeper than this is refused rather than let through unsearched.
const MAX_DEPTH = 8

/**
 * mysql2 formats parameters into the query text on the client (`query()`, which Kysely's MySQL driver
 * uses), and a value with a `toSqlString()` method is inserted as raw SQL (`sqlstring`'s `raw()`):
 * such a value could turn a checked read into any statement the text allows. No JSON value has one,
 * so untrusted input cannot make one; a read carrying one is refused, at any depth mysql2 looks.
 *
 * The search reads each value once and mysql2 reads it again, later: so that both see the same, a value
 * that could answer differently the second time (a getter, a Proxy) is refused too, and `toSqlString`
 * is looked up without being read (`in`, as mysql2 does, inherited or not).
 */
export function refuseRawValues(parameters: readonly unknown[]): void {
  for (const value of parameters) {
    if (typeof value === 'object' && value !== null) {
      const why = rawIn(value, 0)
      if (why) throw new WriteOnReadBackendError('raw sql', `A parameter ${why}`)
    }
  }
}

const RAW = 'with a toSqlString() method, which mysql2 inserts into the query as raw SQL'

/** Why `value` may reach mysql2's text as raw SQL; undefined when it cannot. */
function rawIn(value: object, depth: number): string | undefined {
  if (types.isProxy(value)) return 'that is a Proxy, which mysql2 may read otherwise than the guard'
  if ('toSqlString' in value) return RAW
  if (value instanceof Date || ArrayBuffer.isView(value)) return undefined
  if (depth >= MAX_DEPTH) return `nested deeper than ${MAX_DEPTH} levels`
  // What mysql2 formats: the items of arrays (by index) and of sets, the entries of maps (iterated), the
  // values of own enumerable keys.
  let children: Iterable<unknown>
  if (value instanceof Set || value instanceof Map) {
    const own = value instanceof Set ? Set.prototype : Map.prototype
    if (Object.getPrototypeOf(value) !== own || Object.getOwnPropertySymbols(value).length > 0) {
      return 'that is a Set or Map of its own kind, which mysql2 may iterate otherwise than the guard'
    }
    children = value instanceof Set ? value : value.values()
  } else {
    const descriptors = Object.getOwnPropertyDescriptors(value)
    const list: unknown[] = []
    for (const key of Object.keys(descriptors)) {
      const descriptor = descriptors[key] as PropertyDescriptor
      if (!descriptor.enumerable && !Array.isArray(value)) continue
      if (descriptor.get || descriptor.set) return 'with a getter, which mysql2 may read otherwise than the guard'
      list.push(descriptor.value)
    }
    children = list
  }
  for (const child of children) {
    if (typeof child === 'object' && child !== null) {
      const why = rawIn(child, depth + 1)
      if (why) return why
    }
  }
  return undefined
}

/**
 * The parameters as mysql2 will format them, copied once they passed {@link refuseRawValues}: arrays,
 * sets, maps and objects (which mysql2 expands into SQL) are copied all the way down, so that nothing
 * the caller still holds can be changed between the check and the send (a read may wait for a
 * connection, a read-only transaction or a reset in between). A list of primitives is returned as is.
 */
export function copyCheckedValues(parameters: readonly unknown[]): readonly unknown[] {
  let copy: unknown[] | undefined
  for (let i = 0; i < parameters.length; i++) {
    const value = parameters[i]
    if (typeof value !== 'object' || value === null) continue
    copy ??= parameters.slice()
    copy[i] = copyValue(value)
  }
  return copy ?? parameters
}

function copyValue(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Date) return new Date(value.getTime())
  if (Buffer.isBuffer(value)) return Buffer.from(value)
  // A typed array's elements are numbers whatever they become; a DataView has none mysql2 reads.
  if (ArrayBuffer.isView(value)) return 'slice' in value ? (value as unknown as { slice(): unknown }).slice() : value
  if (Array.isArray(value)) return value.map(copyValue)
  if (value instanceof Set) return new Set([...value].map(copyValue))
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, copyValue(v)]))
  // What mysql2 reads of other objects: their own enumerable keys (refuseRawValues refused getters).
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) out[key] = copyValue((value as Record<string, unknown>)[key])
  return out
}

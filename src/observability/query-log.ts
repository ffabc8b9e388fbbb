import type { ErrorLogEvent, LogLevel, QueryLogEvent } from 'kysely'
import { redactSecrets } from '../errors.js'
import type { QueryContext } from './query-context.js'

/** What kysely-rw adds to Kysely's log events: which node served the query, and for which backend. */
export interface BackendLogDetails {
  /** The node's name (role, host, port, database); never credentials. */
  readonly node: string
  readonly role: 'read' | 'write'
  readonly session: boolean
}

/** Kysely's `LogEvent`, plus the node that served the query. A `Logger` written for Kysely accepts it. */
export type BackendLogEvent = (QueryLogEvent | ErrorLogEvent) & BackendLogDetails

/**
 * The `log` option: Kysely's `LogConfig`, whose function form receives {@link BackendLogEvent}s. A Kysely
 * `Logger` is one too. One function type, not Kysely's `Logger` beside it: with two, TypeScript would give
 * an inline logger's parameter no type (`log: (event) => …` would be an implicit any).
 */
export type BackendLogConfig = ReadonlyArray<LogLevel> | ((event: BackendLogEvent) => void | Promise<void>)

/** Kysely's `Log` semantics: levels print to the console, a function receives every event. */
export class QueryLog {
  readonly #logger: (event: BackendLogEvent) => void | Promise<void>
  readonly #query: boolean
  readonly #error: boolean

  constructor(config: BackendLogConfig) {
    if (typeof config === 'function') {
      this.#logger = config as (event: BackendLogEvent) => void | Promise<void>
      this.#query = this.#error = true
    } else {
      this.#logger = consoleLogger
      this.#query = config.includes('query')
      this.#error = config.includes('error')
    }
  }

  query(context: QueryContext, queryDurationMillis: number): void {
    if (!this.#query) return
    const { query, isStream } = context
    this.#emit({ level: 'query', query, isStream, queryDurationMillis, ...details(context) })
  }

  error(context: QueryContext, error: unknown, queryDurationMillis: number): void {
    if (!this.#error) return
    this.#emit({ level: 'error', error, query: context.query, queryDurationMillis, ...details(context) })
  }

  #emit(event: BackendLogEvent): void {
    // As with onEvent, a failing logger is the logger's bug: the query it observed keeps its outcome.
    try {
      const done = this.#logger(event)
      if (done instanceof Promise) done.catch(() => {})
    } catch {}
  }
}

function details({ node, role, session }: QueryContext): BackendLogDetails {
  return { node, role, session }
}

// Kysely's default logger's lines, with the node: `kysely:query: … duration: 1.2ms on replica 1 db2:5432/app`.
function consoleLogger(event: BackendLogEvent): void {
  if (event.level === 'query') {
    const prefix = `kysely:query:${event.isStream ? 'stream:' : ''}`
    console.log(`${prefix} ${event.query.sql}`)
    console.log(`${prefix} duration: ${event.queryDurationMillis.toFixed(1)}ms on ${event.node}`)
  } else {
    // Driver messages may quote a connection string: printed without its credentials.
    const text = event.error instanceof Error ? (event.error.stack ?? event.error.message) : String(event.error)
    console.error(`kysely:error: ${redactSecrets(text)} (on ${event.node}: ${event.query.sql})`)
  }
}

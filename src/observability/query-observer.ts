import type { QueryResult } from 'kysely'
import type { QueryContext } from './query-context.js'
import { type BackendLogConfig, QueryLog } from './query-log.js'
import { Tracing, type TracingOptions } from './tracing.js'

/**
 * Told when a query's read, sent to a replica not known to have replayed its session's writes, is routed
 * again while it runs: its context has changed (ObservedConnection.attach), and its span follows.
 */
export interface Moved {
  onMove?: () => void
}

/**
 * The query log, the tracing channel and OpenTelemetry spans of one `createBackends`. When none is in
 * use (`active` false), connections are not observed at all: no clock read, no allocation per query.
 */
export class QueryObserver {
  readonly #log: QueryLog | undefined
  readonly #tracing: Tracing

  constructor(log: BackendLogConfig | undefined, tracing: TracingOptions | undefined) {
    this.#log = log === undefined ? undefined : new QueryLog(log)
    this.#tracing = new Tracing(tracing)
  }

  get active(): boolean {
    return this.#log !== undefined || this.#tracing.active
  }

  async execute<R>(
    context: QueryContext,
    moved: Moved | undefined,
    run: () => Promise<QueryResult<R>>,
  ): Promise<QueryResult<R>> {
    const started = performance.now()
    const span = this.#tracing.startSpan(context)
    if (moved) moved.onMove = () => span?.moved(context)
    try {
      const result = await this.#tracing.trace(context, run)
      span?.end()
      this.#log?.query(context, performance.now() - started)
      return result
    } catch (error) {
      span?.end(error)
      this.#log?.error(context, error, performance.now() - started)
      throw error
    }
  }

  /** A stream is one query: from its first row asked for to its end, or to the consumer leaving early. */
  async *stream<R>(
    context: QueryContext,
    moved: Moved | undefined,
    rows: AsyncIterableIterator<QueryResult<R>>,
  ): AsyncIterableIterator<QueryResult<R>> {
    const started = performance.now()
    const span = this.#tracing.startSpan(context)
    if (moved) moved.onMove = () => span?.moved(context)
    let failed = false
    try {
      yield* rows
    } catch (error) {
      failed = true
      span?.end(error)
      this.#log?.error(context, error, performance.now() - started)
      throw error
    } finally {
      if (!failed) {
        span?.end()
        this.#log?.query(context, performance.now() - started)
      }
    }
  }
}

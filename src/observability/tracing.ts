import { type TracingChannel, tracingChannel } from 'node:diagnostics_channel'
import { createRequire } from 'node:module'
import { redactSecrets } from '../errors.js'
import { operationOf, type QueryContext } from './query-context.js'

/**
 * The `node:diagnostics_channel` tracing channel of every query kysely-rw runs (`start`, `end`,
 * `asyncStart`, `asyncEnd`, `error`), whose message is a {@link QueryContext} (plus `result` or
 * `error`, as Node sets them). Subscribing costs the queries nothing until then.
 */
export const QUERY_CHANNEL = 'kysely-rw:query'

const channel: TracingChannel<object, QueryContext> = tracingChannel(QUERY_CHANNEL)

/** What the `tracing` option says. */
export interface TracingOptions {
  /**
   * Put the SQL text in spans (`db.query.text`), which OpenTelemetry leaves opt-in: it may carry data
   * the trace backend should not see. Parameters are never recorded. Default false.
   */
  readonly queryText?: boolean
  /** Make OpenTelemetry spans when `@opentelemetry/api` is installed and a tracer provider is registered. Default true. */
  readonly openTelemetry?: boolean
}

// The few members of @opentelemetry/api used here; the package is an optional peer, so its types are not
// imported into the public declarations.
interface OtelSpan {
  setAttribute(key: string, value: string | number | boolean): unknown
  setStatus(status: { code: number; message?: string }): unknown
  recordException(exception: unknown): unknown
  end(): void
}
interface OtelTracer {
  startSpan(
    name: string,
    options: { kind: number; attributes: Record<string, string | number | boolean> },
    context: unknown,
  ): OtelSpan
}
interface OtelApi {
  trace: { getTracerProvider(): { getDelegateTracer?(name: string, version?: string): OtelTracer | undefined } }
  context: { active(): unknown }
  SpanKind: { CLIENT: number }
  SpanStatusCode: { ERROR: number }
}

let otel: OtelApi | null | undefined

// Where @opentelemetry/api 1.x keeps what `trace.setGlobalTracerProvider` registered (its global registry,
// keyed by the API's major version: the peer range is ^1).
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

// Loaded once, synchronously (createBackends cannot wait), and only by a createBackends that wants spans.
// The API keeps its registered provider on a global, so this copy sees the one the application's SDK set.
function loadOtel(): OtelApi | null {
  if (otel === undefined) {
    try {
      otel = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi
    } catch {
      otel = null
    }
  }
  return otel
}

/** A span in flight, ended once with the query's outcome. */
export interface SpanHandle {
  /** The query was routed again: its node, server, fallback and wait are now those in `context`. */
  moved(context: QueryContext): void
  end(error?: unknown): void
}

/** Spans through OpenTelemetry and messages on {@link QUERY_CHANNEL}; inactive (and free) when no one listens. */
export class Tracing {
  readonly #api: OtelApi | null
  readonly #queryText: boolean

  constructor(options: TracingOptions | undefined) {
    this.#api = options?.openTelemetry === false ? null : loadOtel()
    this.#queryText = options?.queryText === true
  }

  /** The tracer of a registered provider; undefined without an SDK, checked without allocating. */
  #tracer(): OtelTracer | undefined {
    const api = this.#api
    // Asked on every query. Without a registered provider there is no tracer, and one property read says so
    // where the API's own lookup (its global registry, a version check) costs every query more.
    if (!api || (globalThis as Record<symbol, { trace?: unknown } | undefined>)[OTEL_GLOBAL]?.trace === undefined) {
      return undefined
    }
    return api.trace.getTracerProvider().getDelegateTracer?.('kysely-rw')
  }

  get active(): boolean {
    return channel.hasSubscribers || this.#tracer() !== undefined
  }

  /** Runs the query inside the channel's trace, when subscribed. */
  trace<T>(context: QueryContext, run: () => Promise<T>): Promise<T> {
    return channel.hasSubscribers ? channel.tracePromise(run, context) : run()
  }

  /** Starts the query's span, a child of the active context, following the database semantic conventions. */
  startSpan(context: QueryContext): SpanHandle | undefined {
    const tracer = this.#tracer()
    const api = this.#api
    if (!tracer || !api) return undefined
    const operation = operationOf(context.query)
    const attributes: Record<string, string | number | boolean> = {
      'db.system.name': context.system,
      'db.operation.name': operation,
      'kysely_rw.role': context.role,
      'kysely_rw.session': context.session,
    }
    addRouting(attributes, context)
    if (context.isStream) attributes['kysely_rw.stream'] = true
    if (this.#queryText) attributes['db.query.text'] = context.query.sql
    const span = tracer.startSpan(operation, { kind: api.SpanKind.CLIENT, attributes }, api.context.active())
    return {
      moved(now: QueryContext) {
        // Overwrites every attribute set at the start from the unconfirmed replica, which had no wait nor fallback.
        for (const [key, value] of Object.entries(addRouting({}, now))) span.setAttribute(key, value)
      },
      end(error?: unknown) {
        if (error !== undefined) {
          span.setAttribute('error.type', errorType(error))
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.name : undefined })
          // Driver messages may quote a connection string: recorded without its credentials.
          const message = redactSecrets(error instanceof Error ? error.message : String(error))
          span.recordException({ name: error instanceof Error ? error.name : 'Error', message })
        }
        span.end()
      },
    }
  }
}

// OpenTelemetry's `error.type`: a database error code when the driver gives one, else the error's class.
function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code !== '') return code
  return error instanceof Error ? error.name : 'Error'
}

/**
 * Adds the attributes that say where a query ran to `attributes`, which it returns; they change if its read is
 * routed again (SpanHandle.moved). Written into the span's own record, so that a traced query makes no other.
 */
function addRouting(
  attributes: Record<string, string | number | boolean>,
  context: QueryContext,
): Record<string, string | number | boolean> {
  attributes['kysely_rw.node'] = context.node
  attributes['kysely_rw.fallback'] = context.fallback
  attributes['kysely_rw.acquire_ms'] = Math.round(context.acquireMs * 1000) / 1000
  if (context.fallbackReason !== undefined) attributes['kysely_rw.fallback_reason'] = context.fallbackReason
  if (context.waitMs !== undefined) attributes['kysely_rw.wait_ms'] = Math.round(context.waitMs * 1000) / 1000
  const { server } = context
  if (server) {
    attributes['server.address'] = server.address
    if (server.port !== undefined) attributes['server.port'] = server.port
    if (server.namespace !== undefined) attributes['db.namespace'] = server.namespace
  }
  return attributes
}

// When nothing observes queries, connections are not wrapped: the observer must say so, and only then.
import { tracingChannel } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { QueryObserver } from '../src/observability/query-observer.js'
import { QUERY_CHANNEL } from '../src/observability/tracing.js'

describe('QueryObserver.active', () => {
  it('is false with no log, no channel subscriber and no OpenTelemetry SDK', () => {
    // @opentelemetry/api is installed here, but no tracer provider is registered.
    expect(new QueryObserver(undefined, undefined).active).toBe(false)
  })

  it('is true while the kysely-rw:query channel has a subscriber, and false again after', () => {
    const observer = new QueryObserver(undefined, { openTelemetry: false })
    const noop = () => {}
    const handlers = { start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop }
    const channel = tracingChannel(QUERY_CHANNEL)
    channel.subscribe(handlers)
    try {
      expect(observer.active).toBe(true)
    } finally {
      channel.unsubscribe(handlers)
    }
    expect(observer.active).toBe(false)
  })

  it('is true with a log, at any level', () => {
    expect(new QueryObserver(['error'], undefined).active).toBe(true)
    expect(new QueryObserver(() => {}, undefined).active).toBe(true)
  })
})

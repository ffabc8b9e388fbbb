// OpenTelemetry with no glue: with @opentelemetry/api installed and an SDK registered, every query of
// kysely-rw is a CLIENT span under the application's active span, with the database semantic conventions
// (db.system.name, server.address, server.port, db.namespace, db.operation.name, db.query.text opt-in)
// and kysely-rw's own attributes (kysely_rw.role, .node, .session, .fallback, .acquire_ms).
// Here the SDK keeps the spans in memory and the example prints them, one JSON line each.
//
//   PRIMARY_URL=postgres://app@db1/app REPLICA_URL=postgres://app@db2/app npx tsx examples/opentelemetry.ts
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { type Generated, sql } from 'kysely'
import { createBackends } from '../src/index.js'
import { connection } from './support/connection.js'

interface DB {
  otel_notes: { id: Generated<number>; body: string }
}

// What an application's tracing setup does once at startup (NodeSDK does the same for you).
const exporter = new InMemorySpanExporter()
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

const db = createBackends<DB>({ ...connection(), tracing: { queryText: true } })
const tracer = trace.getTracer('example-app')

try {
  await sql`drop table if exists otel_notes`.execute(db.write)
  await db.write.schema
    .createTable('otel_notes')
    .addColumn('id', 'serial', (col) => col.primaryKey())
    .addColumn('body', 'text', (col) => col.notNull())
    .execute()
  exporter.reset()

  // The application's own span, e.g. an HTTP request: kysely-rw's spans become its children.
  await tracer.startActiveSpan('GET /notes', async (request) => {
    await db.write.insertInto('otel_notes').values({ body: 'traced' }).execute()
    await db.read.selectFrom('otel_notes').selectAll().execute()
    await db.read
      .selectFrom('no_such_table' as 'otel_notes')
      .selectAll()
      .execute()
      .catch(() => {})
    request.end()
  })

  for (const span of exporter.getFinishedSpans()) {
    console.log(
      JSON.stringify({
        name: span.name,
        kind: span.kind,
        traceId: span.spanContext().traceId,
        parent: span.parentSpanContext?.spanId ?? null,
        spanId: span.spanContext().spanId,
        status: span.status.code,
        attributes: span.attributes,
      }),
    )
  }
} finally {
  await sql`drop table if exists otel_notes`.execute(db.write)
  await db.destroy()
}

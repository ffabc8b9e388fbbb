// The query log (Kysely's `log` semantics plus the node), the `kysely-rw:query` diagnostics channel, and
// OpenTelemetry spans through examples/opentelemetry.ts, on the harness's real servers.
import { spawn } from 'node:child_process'
import { tracingChannel } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { sql } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  type BackendLogEvent,
  type Backends,
  type BackendsConfig,
  createBackends,
  QUERY_CHANNEL,
  type QueryContext,
  readSql,
} from '../src/index.js'
import { type Family, families, type TestDB } from './support/databases.js'

const portOf = (url: string) => Number(new URL(url).port)

describe.each(families)('%s', (_name, familyOf) => {
  let family: Family
  const opened: Backends<TestDB>[] = []
  const open = (extra: Partial<BackendsConfig>) => {
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      ...extra,
    })
    opened.push(db)
    return db
  }

  beforeAll(async () => {
    family = familyOf()
    const db = open({})
    await family.createItems(db.write, 'items')
    await family.control.waitForReplicaCatchUp()
  })

  afterEach(() => {
    vi.restoreAllMocks()
  })

  afterAll(async () => {
    await Promise.all(opened.map((db) => db.destroy()))
  })

  it('a log function gets Kysely-shaped events with the node that served each query, errors included', async () => {
    const events: BackendLogEvent[] = []
    const db = open({ log: (event: BackendLogEvent) => void events.push(event) })
    await db.write.insertInto('items').values({ name: 'logged', qty: 1 }).execute()
    await db.read.selectFrom('items').select('name').execute()
    const failed = await db.read
      .selectFrom('no_such_table' as 'items')
      .selectAll()
      .execute()
      .catch((error: unknown) => error)
    expect(failed).toBeInstanceOf(Error)
    for await (const _row of db.read.selectFrom('items').select('name').stream(10)) {
      // drained
    }

    const write = events.find((e) => e.level === 'query' && e.query.sql.startsWith('insert'))
    expect(write).toMatchObject({ level: 'query', role: 'write', session: false })
    expect(write?.node).toMatch(/^primary /)
    expect(write?.node).toContain(`:${portOf(family.primaryUrl)}`)

    const read = events.find((e) => e.level === 'query' && !e.isStream && e.query.sql.startsWith('select'))
    expect(read).toMatchObject({ level: 'query', role: 'read' })
    expect(read?.node).toMatch(/^replica 1 /)
    expect(read?.node).toContain(`:${portOf(family.replicaUrl)}`)
    expect(read?.level === 'query' && read.queryDurationMillis).toBeGreaterThan(0)

    const error = events.find((e) => e.level === 'error')
    expect(error?.level === 'error' && error.error).toBe(failed)
    expect(error?.node).toMatch(/^replica 1 /)
    expect(error?.query.sql).toContain('no_such_table')

    const stream = events.find((e) => e.level === 'query' && e.isStream)
    expect(stream?.node).toMatch(/^replica 1 /)
    // Names carry host, port and database; the harness's password never appears.
    expect(JSON.stringify(events.map((e) => e.node))).not.toMatch(/apppw/)
  })

  it("log: ['query'] prints Kysely's lines plus the node; errors are not printed at that level", async () => {
    const out = vi.spyOn(console, 'log').mockImplementation(() => {})
    const err = vi.spyOn(console, 'error').mockImplementation(() => {})
    const db = open({ log: ['query'] })
    await db.read.selectFrom('items').select('qty').execute()
    await db.read
      .selectFrom('no_such_table' as 'items')
      .selectAll()
      .execute()
      .catch(() => {})
    const lines = out.mock.calls.map((call) => String(call[0]))
    expect(lines).toContain(
      'kysely:query: select `qty` from `items`'.replaceAll('`', family.dialect === 'postgres' ? '"' : '`'),
    )
    expect(lines.some((line) => /^kysely:query: duration: \d+\.\dms on replica 1 /.test(line))).toBe(true)
    expect(err).not.toHaveBeenCalled()
  })

  it("log: ['error'] prints only errors, as Kysely does, with the node and the query", async () => {
    const out = vi.spyOn(console, 'log').mockImplementation(() => {})
    const err = vi.spyOn(console, 'error').mockImplementation(() => {})
    const db = open({ log: ['error'] })
    await db.read.selectFrom('items').select('qty').execute()
    const refused = await (db.read as any)
      .deleteFrom('items')
      .execute()
      .catch((error: unknown) => error)
    await db.write
      .selectFrom('no_such_table' as 'items')
      .selectAll()
      .execute()
      .catch(() => {})
    expect(out).not.toHaveBeenCalled()
    const lines = err.mock.calls.map((call) => String(call[0]))
    expect(lines).toHaveLength(2)
    // A write refused on db.read before it was sent is an error of the query, as Kysely would log a failed one.
    expect(lines[0]).toMatch(/^kysely:error: WriteOnReadBackendError: /)
    expect(lines[0]).toContain(`(on replica 1 `)
    expect(refused).toBeInstanceOf(Error)
    expect(lines[1]).toMatch(
      /^kysely:error: error: relation "no_such_table" does not exist|^kysely:error: Error: Table /,
    )
    expect(lines[1]).toMatch(/\(on primary \S+: select \* from .no_such_table.\)$/)
    expect(lines.join('\n')).not.toMatch(/apppw/)
  })

  it('a log function sees the queries of transactions, each with the node that ran it', async () => {
    const events: BackendLogEvent[] = []
    const db = open({ log: (event: BackendLogEvent) => void events.push(event) })
    await db.write.transaction().execute((tx) => tx.selectFrom('items').select('qty').execute())
    await db.read.transaction().execute((tx) => tx.selectFrom('items').select('name').execute())
    const controlled = await db.write.startTransaction().execute()
    await controlled.selectFrom('items').select('id').execute()
    await controlled.rollback().execute()
    expect(events.map((e) => [e.level, e.role, e.node.split(' ')[0], e.query.sql.split(' ')[1]])).toEqual([
      ['query', 'write', 'primary', family.dialect === 'postgres' ? '"qty"' : '`qty`'],
      ['query', 'read', 'replica', family.dialect === 'postgres' ? '"name"' : '`name`'],
      ['query', 'write', 'primary', family.dialect === 'postgres' ? '"id"' : '`id`'],
    ])
  })

  it('the kysely-rw:query tracing channel carries each query with its node and server', async () => {
    const db = open({})
    const started: QueryContext[] = []
    const ended: (QueryContext & { error?: unknown })[] = []
    const channel = tracingChannel<object, QueryContext>(QUERY_CHANNEL)
    const handlers = {
      start: (message: QueryContext) => void started.push(message),
      end: () => {},
      asyncStart: () => {},
      asyncEnd: (message: QueryContext) => void ended.push(message),
      error: () => {},
    }
    channel.subscribe(handlers)
    try {
      await db.read.selectFrom('items').select('qty').execute()
      await db.write.updateTable('items').set({ qty: 2 }).where('name', '=', 'logged').execute()
    } finally {
      channel.unsubscribe(handlers)
    }
    await db.read.selectFrom('items').select('qty').execute()

    expect(started.map((m) => m.role)).toEqual(['read', 'write'])
    expect(ended).toHaveLength(2)
    const [read, write] = started
    expect(read?.server).toEqual({ address: '127.0.0.1', port: portOf(family.replicaUrl), namespace: 'app' })
    expect(write?.server?.port).toBe(portOf(family.primaryUrl))
    expect(read?.system).toBe(family.dialect === 'postgres' ? 'postgresql' : 'mysql')
    expect(read?.query.sql).toMatch(/^select/)
  })

  it('examples/opentelemetry.ts: spans under the app span with the database conventions and kysely-rw attributes', async () => {
    const env = {
      ...process.env,
      DIALECT: family.dialect,
      PRIMARY_URL: family.primaryUrl,
      REPLICA_URL: family.replicaUrl,
    }
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/opentelemetry.ts'], { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000)
    const [code] = (await once(child, 'close')) as [number | null]
    clearTimeout(timer)
    expect(code, stderr).toBe(0)
    expect(stdout + stderr).not.toMatch(/apppw/)

    interface PrintedSpan {
      name: string
      kind: number
      traceId: string
      parent: string | null
      spanId: string
      status: number
      attributes: Record<string, unknown>
    }
    const spans = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as PrintedSpan)
    const app = spans.find((s) => s.name === 'GET /notes')
    expect(app).toBeDefined()
    const queries = spans.filter((s) => s !== app)
    expect(queries.map((s) => s.name)).toEqual(['INSERT', 'SELECT', 'SELECT'])
    for (const span of queries) {
      expect(span.kind).toBe(2) // SpanKind.CLIENT
      expect(span.traceId).toBe(app?.traceId)
      expect(span.parent).toBe(app?.spanId)
    }
    const [insert, select, failed] = queries
    expect(insert?.attributes).toMatchObject({
      'db.system.name': family.dialect === 'postgres' ? 'postgresql' : 'mysql',
      'db.operation.name': 'INSERT',
      'server.address': '127.0.0.1',
      'server.port': portOf(family.primaryUrl),
      'db.namespace': 'app',
      'kysely_rw.role': 'write',
      'kysely_rw.session': false,
    })
    expect(String(insert?.attributes['db.query.text'])).toMatch(/^insert into/)
    expect(select?.attributes).toMatchObject({
      'server.port': portOf(family.replicaUrl),
      'kysely_rw.role': 'read',
      'kysely_rw.fallback': false,
    })
    expect(String(select?.attributes['kysely_rw.node'])).toMatch(/^replica 1 /)
    expect(typeof select?.attributes['kysely_rw.acquire_ms']).toBe('number')
    // A read on a replica has no fallback reason (it may have waited for the replica to replay the schema
    // change the example made: the wait is then on the span).
    expect(select?.attributes['kysely_rw.fallback_reason']).toBeUndefined()
    expect(failed?.status).toBe(2) // SpanStatusCode.ERROR
    expect(failed?.attributes['error.type']).toBe(family.dialect === 'postgres' ? '42P01' : 'ER_NO_SUCH_TABLE')
  })
})

// The SDK registered in this process, as an application registers it: the attributes of session reads,
// of reads that fell back to the primary and of streams; the query text only when asked for; no spans
// with openTelemetry: false.
describe.each(families)('%s: OpenTelemetry in process', (_name, familyOf) => {
  let family: Family
  const exporter = new InMemorySpanExporter()
  const contextManager = new AsyncLocalStorageContextManager()
  const opened: Backends<TestDB>[] = []
  const open = (extra: Partial<BackendsConfig>) => {
    const db = createBackends<TestDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      ...extra,
    })
    opened.push(db)
    return db
  }
  const spans = (what: (span: ReadableSpan) => boolean = () => true) =>
    exporter.getFinishedSpans().filter((span) => span.attributes['db.operation.name'] !== undefined && what(span))

  beforeAll(async () => {
    family = familyOf()
    context.setGlobalContextManager(contextManager.enable())
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
    const db = open({})
    await family.createItems(db.write, 'items')
    await family.control.waitForReplicaCatchUp()
  })

  afterEach(() => exporter.reset())

  afterAll(async () => {
    await family?.control.resumeReplay()
    await Promise.all(opened.map((db) => db.destroy()))
    trace.disable()
    context.disable()
  })

  it('a session read that waited for the replica and fell back to the primary says so, with the wait', async () => {
    const db = open({ readYourWrites: { maxWaitMs: 300 } })
    const session = db.session()
    // A verified replica connection: on PostgreSQL the read then first goes there, and its check misses.
    await session.read.selectFrom('items').select('name').limit(1).execute()
    await family.control.pauseReplay()
    try {
      await session.write.insertInto('items').values({ name: 'traced', qty: 1 }).execute()
      exporter.reset()
      const rows = await session.read.selectFrom('items').select('name').where('name', '=', 'traced').execute()
      expect(rows).toEqual([{ name: 'traced' }])
    } finally {
      await family.control.resumeReplay()
    }
    const [read] = spans((span) => span.attributes['kysely_rw.role'] === 'read')
    expect(read?.attributes).toMatchObject({
      'db.operation.name': 'SELECT',
      'kysely_rw.session': true,
      'kysely_rw.fallback': true,
      'kysely_rw.fallback_reason': 'wait-timeout',
      'server.port': portOf(family.primaryUrl),
    })
    expect(String(read?.attributes['kysely_rw.node'])).toMatch(/^primary \(read-only\)|^primary /)
    // It waited up to maxWaitMs for the replica before going to the primary.
    expect(Number(read?.attributes['kysely_rw.wait_ms'])).toBeGreaterThanOrEqual(250)
    expect(Number(read?.attributes['kysely_rw.acquire_ms'])).toBeGreaterThanOrEqual(
      Number(read?.attributes['kysely_rw.wait_ms']),
    )
    expect(read?.attributes['db.query.text']).toBeUndefined()
    expect(db.stats().fallbacksByReason['wait-timeout']).toBe(1)
    // One span for the read, though it was first sent to the replica (PostgreSQL), whose answer was dropped.
    expect(spans((span) => span.attributes['kysely_rw.role'] === 'read')).toHaveLength(1)
    const { replayChecks, replayCheckMisses } = db.stats()
    expect([replayChecks, replayCheckMisses]).toEqual(family.dialect === 'postgres' ? [1, 1] : [0, 0])
  })

  it('pools handed in: spans, stats and node names say which server, never the password', async () => {
    // A pool of the application's, as the docs show it: pg's Pool or mysql2's createPool, from a URL.
    const poolOf = (url: string) =>
      family.dialect === 'postgres' ? new pg.Pool({ connectionString: url }) : mysql2.createPool({ uri: url })
    const db = open({ primary: poolOf(family.primaryUrl), replicas: [poolOf(family.replicaUrl)] })
    await db.read.selectFrom('items').select('qty').execute()
    await sql`update items set qty = qty where 1 = 0`.execute(db.write)
    const [read] = spans((span) => span.attributes['kysely_rw.role'] === 'read')
    const [write] = spans((span) => span.attributes['kysely_rw.role'] === 'write')
    expect(read?.attributes).toMatchObject({
      'server.address': '127.0.0.1',
      'server.port': portOf(family.replicaUrl),
      'db.namespace': 'app',
    })
    expect(write?.attributes).toMatchObject({ 'server.port': portOf(family.primaryUrl), 'db.namespace': 'app' })
    // pg's Pool keeps the connection string, which the name shows without credentials; mysql2's its parts.
    const replicaName = new RegExp(
      `^replica 1 (mysql://|postgres://)?127\\.0\\.0\\.1:${portOf(family.replicaUrl)}/app$`,
    )
    expect(String(read?.attributes['kysely_rw.node'])).toMatch(replicaName)
    expect(Object.keys(db.stats().readsByNode).filter((name) => replicaName.test(name))).toHaveLength(1)
    const everything = JSON.stringify([spans().map((span) => span.attributes), db.stats(), db.replicas()])
    expect(everything).not.toMatch(/apppw/)
  })

  it('a plain read on the replica, a stream, readSql and a write: one CLIENT span each, children of the active span', async () => {
    const db = open({ tracing: { queryText: true } })
    const app = trace.getTracer('test')
    await app.startActiveSpan('request', async (request) => {
      await db.read.selectFrom('items').select('qty').execute()
      for await (const _row of db.read.selectFrom('items').select('qty').stream(10)) {
        // drained
      }
      await readSql`select 1 as one`.execute(db.read)
      await sql`update items set qty = qty where 1 = 0`.execute(db.write)
      request.end()
    })
    const parent = exporter.getFinishedSpans().find((span) => span.name === 'request')
    const queries = spans()
    expect(queries.map((span) => span.attributes['db.operation.name'])).toEqual([
      'SELECT',
      'SELECT',
      'SELECT',
      'UPDATE',
    ])
    for (const span of queries) {
      expect(span.kind).toBe(2) // SpanKind.CLIENT
      expect(span.parentSpanContext?.spanId).toBe(parent?.spanContext().spanId)
      expect(span.attributes['db.system.name']).toBe(family.dialect === 'postgres' ? 'postgresql' : 'mysql')
      expect(span.attributes['db.query.text']).toEqual(expect.any(String))
    }
    const [plain, stream, raw, write] = queries
    expect(plain?.attributes).toMatchObject({
      'kysely_rw.role': 'read',
      'kysely_rw.session': false,
      'kysely_rw.fallback': false,
    })
    expect(plain?.attributes['server.port']).toBe(portOf(family.replicaUrl))
    expect(stream?.attributes).toMatchObject({ 'kysely_rw.stream': true, 'server.port': portOf(family.replicaUrl) })
    expect(raw?.attributes['db.query.text']).toBe('select 1 as one')
    expect(write?.attributes).toMatchObject({ 'kysely_rw.role': 'write', 'server.port': portOf(family.primaryUrl) })
    // Parameters are never recorded; neither is the password of the connection string.
    expect(JSON.stringify(queries.map((span) => span.attributes))).not.toMatch(/apppw/)
  })

  it('makes no spans with tracing: { openTelemetry: false }', async () => {
    const db = open({ tracing: { openTelemetry: false } })
    await db.read.selectFrom('items').select('qty').execute()
    await db.write.updateTable('items').set({ qty: 1 }).where('name', '=', 'none').execute()
    expect(spans()).toEqual([])
  })
})

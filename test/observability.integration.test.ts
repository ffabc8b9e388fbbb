// The query log (Kysely's `log` semantics plus the node), the `kysely-rw:query` diagnostics channel, and
// OpenTelemetry spans through examples/opentelemetry.ts, on the harness's real servers.
import { spawn } from 'node:child_process'
import { tracingChannel } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  type BackendLogEvent,
  type Backends,
  type BackendsConfig,
  createBackends,
  QUERY_CHANNEL,
  type QueryContext,
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
    expect(failed?.status).toBe(2) // SpanStatusCode.ERROR
    expect(failed?.attributes['error.type']).toBe(family.dialect === 'postgres' ? '42P01' : 'ER_NO_SUCH_TABLE')
  })
})

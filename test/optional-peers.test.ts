// @opentelemetry/api and pg-cursor are optional peers: kysely-rw must import, create backends, log, trace
// on its diagnostics channel and fail queries as usual in a process where neither can be found, and say
// what to install only when `.stream()` needs a cursor. A child process runs src/ with both made
// unresolvable, by CommonJS `require` (how kysely-rw loads them) and by ESM `import` alike.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// Under node_modules (gitignored), so that the app resolves kysely and PGlite as an application would.
const dir = mkdtempSync(path.join(root, 'node_modules', '.kysely-rw-optional-peers-'))
const BLOCKED = ['@opentelemetry/api', 'pg-cursor']

// require(): what createRequire(import.meta.url)(name) goes through.
writeFileSync(
  path.join(dir, 'block.cjs'),
  `const Module = require('node:module')
const blocked = ${JSON.stringify(BLOCKED)}
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (blocked.some((name) => request === name || request.startsWith(name + '/'))) {
    throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: 'MODULE_NOT_FOUND' })
  }
  return resolve.call(this, request, ...rest)
}
`,
)
// import: a static or dynamic ESM import of either would fail as well.
writeFileSync(
  path.join(dir, 'hooks.mjs'),
  `const blocked = ${JSON.stringify(BLOCKED)}
export async function resolve(specifier, context, next) {
  if (blocked.some((name) => specifier === name || specifier.startsWith(name + '/'))) {
    throw Object.assign(new Error("Cannot find package '" + specifier + "'"), { code: 'ERR_MODULE_NOT_FOUND' })
  }
  return next(specifier, context)
}
`,
)
writeFileSync(
  path.join(dir, 'register.mjs'),
  `import { register } from 'node:module'\nregister('./hooks.mjs', import.meta.url)\n`,
)
const src = (file: string) => JSON.stringify(pathToFileURL(path.join(root, 'src', file)).href)
writeFileSync(
  path.join(dir, 'app.mts'),
  `import { createRequire } from 'node:module'
import { tracingChannel } from 'node:diagnostics_channel'
const report: Record<string, unknown> = {}
// The environment: neither peer can be found, by import or by require.
report.importOtel = await import('@opentelemetry/api').then(() => 'found', (e) => e.code)
try { createRequire(import.meta.url)('pg-cursor'); report.requireCursor = 'found' } catch (e: any) { report.requireCursor = e.code }

const { createBackends, QUERY_CHANNEL } = await import(${src('index.ts')})
const { cursorFor } = await import(${src('dialects/pg-cursor.ts')})
const logged: string[] = []
const channel: string[] = []
const handlers = { start: (m: any) => channel.push(m.role), end: () => {}, asyncStart: () => {}, asyncEnd: () => {}, error: (m: any) => channel.push('error ' + m.role) }
tracingChannel(QUERY_CHANNEL).subscribe(handlers)
// An embedded PostgreSQL (PGlite): a query that succeeds and one that fails, both through the log and the channel.
const { PGlite } = await import('@electric-sql/pglite')
const { PGliteDialect } = await import('kysely')
const db = createBackends({
  dialect: 'postgres',
  primary: new PGliteDialect({ pglite: new PGlite() }),
  log: (event: any) => void logged.push(event.level + ' ' + event.role),
})
report.query = await db.read.selectNoFrom((eb: any) => eb.lit(1).as('one')).execute().then((rows: unknown) => rows, (e: any) => e.name)
report.failed = await db.write.selectFrom('no_such_table').selectAll().execute().then(() => 'resolved', (e: any) => e.code)
await db.destroy()
report.logged = logged
report.channel = channel
try { new (cursorFor(undefined))('select 1', []); report.cursor = 'constructed' } catch (e: any) { report.cursor = e.name + ': ' + e.message }
console.log(JSON.stringify(report))
`,
)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('optional peers', () => {
  it('kysely-rw imports, creates backends, logs and traces without @opentelemetry/api and pg-cursor', async () => {
    const child = spawn(
      process.execPath,
      [
        '--require',
        path.join(dir, 'block.cjs'),
        '--import',
        pathToFileURL(path.join(dir, 'register.mjs')).href,
        '--import',
        'tsx',
        path.join(dir, 'app.mts'),
      ],
      { cwd: root },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const [code] = (await once(child, 'close')) as [number | null]
    expect(code, stderr).toBe(0)
    const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}')
    expect(report).toMatchObject({ importOtel: 'ERR_MODULE_NOT_FOUND', requireCursor: 'MODULE_NOT_FOUND' })
    expect(report.query).toEqual([{ one: 1 }])
    expect(report.failed).toBe('42P01')
    expect(report.logged).toEqual(expect.arrayContaining(['query read', 'error write']))
    expect(report.channel).toEqual(expect.arrayContaining(['read', 'write', 'error write']))
    expect(report.cursor).toMatch(/^ConfigurationError: .*npm install pg-cursor/)
  }, 30_000)
})

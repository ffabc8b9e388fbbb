// Runs the examples as a newcomer would (`npx tsx examples/<name>.ts`), as child processes: against the
// harness's PostgreSQL and MariaDB pairs through PRIMARY_URL / REPLICA_URL / DIALECT, and on PGlite with
// no environment. The HTTP example also runs with replay paused on the replica, where only the session
// cookie can make a later request see the note an earlier one created.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Kysely, MysqlDialect, PostgresDialect } from 'kysely'
import mysql2 from 'mysql2'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNotesTable, type NotesDB, notesService } from '../examples/http/notes-service.js'
import { type Backends, createBackends } from '../src/index.js'
import { type Family, families } from './support/databases.js'

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `examples/<name>`; with a family, against its pair, else on PGlite (no env). */
async function runExample(name: string, family?: Family): Promise<Run> {
  const env = { ...process.env }
  delete env.PRIMARY_URL
  delete env.REPLICA_URL
  delete env.DIALECT
  if (family) {
    Object.assign(env, { DIALECT: family.dialect, PRIMARY_URL: family.primaryUrl, REPLICA_URL: family.replicaUrl })
  }
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}`], { env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const timer = setTimeout(() => child.kill(), 90_000)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

function expectSuccess(run: Run): string {
  expect(run.code, `exit code, stderr:\n${run.stderr}\nstdout:\n${run.stdout}`).toBe(0)
  // Connection strings carry the harness's password; no example may print it.
  expect(run.stdout + run.stderr).not.toMatch(/apppw/)
  return run.stdout
}

const dataAccessLines = [
  'inside the transaction, Ada has 7000 cents',
  /refused: Account [\w-]+ cannot pay 100000 cents\./,
  'balance: Ada 7500 cents',
  'balance: Grace 4500 cents',
  'statement for Ada: { transfers: 2, inCents: 500, outCents: 3000 }',
  'audit log: paid Grace 30.00',
  'on the primary, Grace has 4500 cents',
]

const shopLines = [
  'catalogue: kettle x3, mug x10, teapot x1',
  'order placed and read back in its transaction: 1 Kettle + 2 Mug = 5600 cents',
  'second order refused: Not enough "teapot" in stock. Nothing of it was written.',
  'order page: 2 lines, 5600 cents',
  'catalogue in the shopper session: kettle x2, mug x8, teapot x1',
]

function expectLines(stdout: string, lines: (string | RegExp)[]): void {
  for (const line of lines) {
    if (typeof line === 'string') expect(stdout).toContain(line)
    else expect(stdout).toMatch(line)
  }
}

/** What the HTTP example printed: the note's id and the two GETs. */
function httpOutcome(stdout: string) {
  const id = /POST \/notes -> 201, note ([\w-]+)/.exec(stdout)?.[1]
  expect(id, stdout).toBeDefined()
  return {
    id: id as string,
    withCookie: new RegExp(`GET /notes/${id} with the cookie -> (\\d+) (.*)`).exec(stdout)?.slice(1),
    withoutCookie: Number(new RegExp(`GET /notes/${id} without the cookie -> (\\d+)`).exec(stdout)?.[1]),
    fallbacks: Number(/reads run on the primary instead: (\d+)/.exec(stdout)?.[1]),
  }
}

describe.each(families)('%s', (name, familyOf) => {
  let family: Family
  const header = name === 'PostgreSQL' ? 'PostgreSQL' : 'MySQL/MariaDB'

  beforeAll(async () => {
    family = familyOf()
    await family.control.resumeReplay()
  })

  afterAll(async () => {
    await family.control.resumeReplay()
  })

  it('examples/data-access.ts: one library of functions on replicas, the primary, transactions and sessions', async () => {
    const stdout = expectSuccess(await runExample('data-access.ts', family))
    expect(stdout).toContain(`running on ${header}: a primary and 1 replica`)
    expectLines(stdout, dataAccessLines)
  })

  it('examples/shop.ts: catalogue on replicas, an order in one transaction, a rolled-back order', async () => {
    const stdout = expectSuccess(await runExample('shop.ts', family))
    expect(stdout).toContain(`running on ${header}: a primary and 1 replica`)
    expectLines(stdout, shopLines)
  })

  it('examples/http-session.ts: a POST, then a GET that sends the cookie back and reads the note', async () => {
    const stdout = expectSuccess(await runExample('http-session.ts', family))
    expect(stdout).toMatch(/cookie: rw_session=rw1\.[\w-]+/)
    const outcome = httpOutcome(stdout)
    expect(outcome.withCookie).toEqual(['200', JSON.stringify({ id: outcome.id, body: 'Buy oat milk' })])
  })

  it('examples/http-session.ts with replay paused: the cookie still reads the note the replica does not have', async () => {
    await createTableOnce(family)
    await family.control.pauseReplay()
    try {
      const stdout = expectSuccess(await runExample('http-session.ts', family))
      const outcome = httpOutcome(stdout)
      expect(outcome.withCookie).toEqual(['200', JSON.stringify({ id: outcome.id, body: 'Buy oat milk' })])
      // The replica really lacks the note: the read with the cookie did not find it there.
      expect(await notesOnReplica(family, outcome.id)).toEqual([])
      expect(outcome.fallbacks).toBeGreaterThan(0)
    } finally {
      await family.control.resumeReplay()
    }
  })

  it('the notes service with replay paused: 200 with the cookie, 404 without it', async () => {
    // The table exists on both servers before the service starts, as after a deploy's migration.
    await createTableOnce(family)
    const db = createBackends<NotesDB>({
      dialect: family.dialect,
      primary: family.primaryUrl,
      replicas: [family.replicaUrl],
      healthCheckIntervalMs: 100,
      readYourWrites: { maxWaitMs: 200 },
    })
    const server = notesService(db).listen(0, '127.0.0.1')
    try {
      await once(server, 'listening')
      await until(() => db.replicas()[0]?.state === 'up' && db.replicas()[0]?.lastCheck != null)
      await family.control.pauseReplay()
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

      const created = await fetch(`${url}/notes`, { method: 'POST', body: 'paused' })
      expect(created.status).toBe(201)
      const { id } = (await created.json()) as { id: string }
      const cookie = created.headers.get('set-cookie')?.split(';')[0] ?? ''
      expect(cookie).toMatch(/^rw_session=rw1\./)

      const withCookie = await fetch(`${url}/notes/${id}`, { headers: { cookie } })
      expect(withCookie.status).toBe(200)
      expect(await withCookie.json()).toEqual({ id, body: 'paused' })
      // Without the cookie the same GET runs on the paused replica, which does not have the note.
      const withoutCookie = await fetch(`${url}/notes/${id}`)
      expect(withoutCookie.status).toBe(404)
      expect(await notesOnReplica(family, id)).toEqual([])
    } finally {
      await family.control.resumeReplay()
      server.close()
      await db.destroy()
    }
  })
})

describe('on PGlite, with no environment', () => {
  it.each([
    ['quickstart.ts', ['read back in the transaction:', 'readSql count: 1', 'refused:']],
    ['data-access.ts', dataAccessLines],
    ['shop.ts', shopLines],
    ['http-session.ts', [/with the cookie -> 200 \{.*"body":"Buy oat milk"\}/, /without the cookie -> 200/]],
  ] as const)('examples/%s', async (example, lines) => {
    const stdout = expectSuccess(await runExample(example))
    if (example !== 'quickstart.ts') expect(stdout).toContain('running on PGlite (embedded PostgreSQL), no replica')
    expectLines(stdout, [...lines])
  })
})

/** Creates the notes table through a short-lived handle and waits until the replica has it. */
async function createTableOnce(family: Family): Promise<void> {
  const setup: Backends<NotesDB> = createBackends<NotesDB>({ dialect: family.dialect, primary: family.primaryUrl })
  try {
    await createNotesTable(setup.write)
  } finally {
    await setup.destroy()
  }
  await family.control.waitForReplicaCatchUp()
}

/** The notes with this id on the replica, asked directly, not through kysely-rw. */
async function notesOnReplica(family: Family, id: string): Promise<unknown[]> {
  const replica = new Kysely<NotesDB>({
    dialect:
      family.dialect === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: family.replicaUrl }) })
        : new MysqlDialect({ pool: mysql2.createPool({ uri: family.replicaUrl }) }),
  })
  try {
    return await replica.selectFrom('notes').select('id').where('id', '=', id).execute()
  } finally {
    await replica.destroy()
  }
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for the first health check')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

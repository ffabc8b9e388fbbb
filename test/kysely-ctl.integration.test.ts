// kysely-ctl, run as a user runs it (a child process, `kysely migrate:latest --config …`), from the
// documented config examples/kysely-ctl/kysely.config.ts whose `kysely` is `db.kysely`, on the
// harness's PostgreSQL and MariaDB primaries and replicas. The process must exit by itself.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import mysql2 from 'mysql2/promise'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Family, families } from './support/databases.js'

const bin = fileURLToPath(new URL('../node_modules/kysely-ctl/dist/bin.mjs', import.meta.url))
const config = 'examples/kysely-ctl/kysely.config.ts'
// Far above what a run takes (about 2 s); a process held open by a pool or a timer is killed here.
const EXIT_BUDGET_MS = 30_000

interface Run {
  readonly code: number | null
  readonly output: string
  readonly ms: number
}

async function kyselyCtl(family: Family, ...args: string[]): Promise<Run> {
  // Without vitest's variables: kysely-ctl's logger (consola) prints only warnings in a test environment.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(VITEST|NODE_ENV$|TEST$)/.test(name)),
  )
  Object.assign(env, { DIALECT: family.dialect, PRIMARY_URL: family.primaryUrl, REPLICA_URL: family.replicaUrl })
  const started = Date.now()
  const child = spawn(process.execPath, [bin, ...args, '--config', config, '--no-filesystem-caching'], { env })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_BUDGET_MS)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, output, ms: Date.now() - started }
}

async function query<R>(family: Family, url: string, statement: string, parameters: unknown[] = []): Promise<R[]> {
  if (family.dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(statement, parameters)).rows as R[]
    } finally {
      await client.end()
    }
  }
  const connection = await mysql2.createConnection({ uri: url })
  try {
    return (await connection.query(statement, parameters))[0] as R[]
  } finally {
    await connection.end()
  }
}

async function columnsOf(family: Family, url: string, table: string): Promise<string[]> {
  const schema = family.dialect === 'postgres' ? 'current_schema()' : 'database()'
  const rows = await query<{ column_name: string }>(
    family,
    url,
    `select column_name as column_name from information_schema.columns where table_schema = ${schema} and table_name = ${
      family.dialect === 'postgres' ? '$1' : '?'
    } order by ordinal_position`,
    [table],
  )
  return rows.map((row) => row.column_name)
}

describe.each(families)('kysely-ctl with db.kysely (%s)', (_name, familyOf) => {
  let family: Family
  const reset = () =>
    query(family, family.primaryUrl, 'drop table if exists ctl_notes, kysely_migration, kysely_migration_lock')

  beforeAll(async () => {
    family = familyOf()
    await reset()
  })

  afterAll(async () => {
    if (family) await reset()
  })

  it('migrate:latest applies the migrations on the primary, they reach the replica, and the process exits', async () => {
    const run = await kyselyCtl(family, 'migrate:latest')
    expect(run.code, run.output).toBe(0)
    expect(run.ms, `kysely-ctl did not exit on its own:\n${run.output}`).toBeLessThan(EXIT_BUDGET_MS)
    expect(run.output).toMatch(/0001_create_ctl_notes/)
    expect(run.output).toMatch(/0002_add_ctl_notes_title/)
    // Neither kysely-ctl's output nor ours may show the connection string's password.
    expect(run.output).not.toMatch(/apppw/)
    expect(await columnsOf(family, family.primaryUrl, 'ctl_notes')).toEqual(['id', 'body', 'title'])
    await family.control.waitForReplicaCatchUp()
    expect(await columnsOf(family, family.replicaUrl, 'ctl_notes')).toEqual(['id', 'body', 'title'])
  })

  it('migrate:list reports both migrations as applied, and exits', async () => {
    const run = await kyselyCtl(family, 'migrate:list')
    expect(run.code, run.output).toBe(0)
    expect(run.ms, `kysely-ctl did not exit on its own:\n${run.output}`).toBeLessThan(EXIT_BUDGET_MS)
    const applied = run.output.split('\n').filter((line) => /ctl_notes/.test(line))
    expect(applied).toHaveLength(2)
    for (const line of applied) expect(line).toMatch(/✓|\[x\]|applied/i)
  })

  it('migrate:down undoes the last migration on the primary, the replica follows, and the process exits', async () => {
    const run = await kyselyCtl(family, 'migrate:down')
    expect(run.code, run.output).toBe(0)
    expect(run.ms, `kysely-ctl did not exit on its own:\n${run.output}`).toBeLessThan(EXIT_BUDGET_MS)
    expect(await columnsOf(family, family.primaryUrl, 'ctl_notes')).toEqual(['id', 'body'])
    await family.control.waitForReplicaCatchUp()
    expect(await columnsOf(family, family.replicaUrl, 'ctl_notes')).toEqual(['id', 'body'])
  })
})

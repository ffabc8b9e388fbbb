// PgBouncer in front of the harness's PostgreSQL replica 1 (or its primary), for tests of poolers: run as a non-root user
// (the `postgres` OS user when the tests run as root) with an ini file of its own, on a free 127.0.0.1
// port, in transaction pooling mode. Stopped (SIGTERM, then SIGKILL) and its directory removed by stop().
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { access, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import type { PostgresEnv } from './replication.js'

const execFileAsync = promisify(execFile)

export interface PgBouncer {
  /** The replica's database `app` through the pooler, as user `app`. */
  readonly url: string
  stop(): Promise<void>
}

export interface PgBouncerOptions {
  /** Startup parameters the pooler drops instead of refusing (`ignore_startup_parameters`). */
  readonly ignoreStartupParameters?: readonly string[]
  /** The server behind it: replica 1 (default) or the primary. */
  readonly target?: 'replica' | 'primary'
}

/** Starts PgBouncer in front of replica 1 (or the primary) of `env`; fails loudly when the binary is missing. */
export async function startPgBouncer(env: PostgresEnv, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const binary = await findPgBouncer()
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kysely-rw-pgbouncer-'))
  const port = await freePort()
  const replicaPort = new URL(options.target === 'primary' ? env.primaryUrl : env.replicaUrl).port
  const ini = path.join(dir, 'pgbouncer.ini')
  const log = path.join(dir, 'pgbouncer.log')
  await writeFile(path.join(dir, 'users.txt'), '"app" ""\n')
  await writeFile(
    ini,
    [
      '[databases]',
      `app = host=127.0.0.1 port=${replicaPort} dbname=app`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      `logfile = ${log}`,
      ...(options.ignoreStartupParameters?.length
        ? [`ignore_startup_parameters = ${options.ignoreStartupParameters.join(',')}`]
        : []),
      '',
    ].join('\n'),
  )
  if (env.runAs) await chownAll(env.runAs, [dir, ini, path.join(dir, 'users.txt')])
  const [file, args] = env.runAs ? ['runuser', ['-u', env.runAs, '--', binary, ini]] : [binary, [ini]]
  const child = spawn(file, args, { stdio: 'ignore' })
  let exited: string | undefined
  child.once('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`))
  const url = `postgres://app@127.0.0.1:${port}/app`
  const stop = async () => {
    await end(child)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await waitForPooler(url, () => exited)
  } catch (error) {
    const text = await readFile(log, 'utf8').catch(() => '(no log)')
    await stop()
    throw new Error(`PgBouncer did not start: ${(error as Error).message}\n${text.split('\n').slice(-20).join('\n')}`)
  }
  return { url, stop }
}

async function findPgBouncer(): Promise<string> {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) {
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate
  }
  throw new Error(
    'pgbouncer not found in /usr/sbin or /usr/bin. Install it with `apt-get install -y pgbouncer` (.ci/run does this).',
  )
}

async function waitForPooler(url: string, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const reason = exited()
    if (reason) throw new Error(`pgbouncer ${reason}`)
    // The admin console answers as soon as the pooler listens; a plain client in transaction mode too.
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    try {
      await client.connect()
      await client.query('select 1')
      await client.end()
      return
    } catch {
      await client.end().catch(() => {})
      if (Date.now() > deadline) throw new Error('timed out after 15 s waiting for pgbouncer to accept connections')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

async function end(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await gone
  clearTimeout(timer)
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function chownAll(user: string, targets: string[]): Promise<void> {
  const id = async (flag: string) => Number((await execFileAsync('id', [flag, user])).stdout.trim())
  const [uid, gid] = await Promise.all([id('-u'), id('-g')])
  for (const target of targets) await chown(target, uid, gid)
}

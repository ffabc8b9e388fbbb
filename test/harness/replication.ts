// Real primaries, each with two replicas, of PostgreSQL and MariaDB for integration tests, on free
// ports in temp dirs. Everything a worker process needs to control a replica lives in a JSON-safe env
// object, so global-setup.ts can start the servers and test files can still pause or kill them.
// The unnumbered `replica…` fields are replica 1 (most tests use only it); `replica2…` is replica 2.
import { execFile, spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, appendFile, chown, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { type AddressInfo, createServer, type Server } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { formatPosition, parsePosition } from '../../src/consistency/position.js'
import { replayedForm, walLayout } from '../../src/consistency/wal-layout.js'

export interface ReplicaControl {
  pauseReplay(): Promise<void>
  resumeReplay(): Promise<void>
  killReplica(): Promise<void>
  startReplica(): Promise<void>
  waitForReplicaCatchUp(timeoutMs?: number): Promise<void>
  /** SIGSTOP on the replica's server processes: a hung node (connections stay open, nothing answers). */
  freezeReplica(): Promise<void>
  /** SIGCONT on the same processes. Always call it in cleanup: a stopped server cannot be removed. */
  thawReplica(): Promise<void>
}

/** Which replica a control acts on: 1 is the one the unnumbered fields describe. */
export type ReplicaIndex = 1 | 2

interface PairUrls {
  primaryUrl: string
  replicaUrl: string
  adminPrimaryUrl: string
  adminReplicaUrl: string
  replica2Url: string
  adminReplica2Url: string
}

export interface PostgresEnv extends PairUrls {
  /** Temp dir holding all data dirs, logs and unix sockets. */
  dir: string
  /** PostgreSQL's bin dir (pg_ctl, initdb, pg_basebackup). */
  binDir: string
  /** OS user the binaries run as (postgres refuses root); null when we are not root. */
  runAs: string | null
  replicaDataDir: string
  replicaLogFile: string
  replica2DataDir: string
  replica2LogFile: string
}

export interface MariaDbEnv extends PairUrls {
  /** Temp dir holding all data dirs, pid files, logs and sockets. */
  dir: string
  /** Full argv of the replica's mariadbd; startReplica runs it again. */
  replicaCommand: string[]
  replicaPidFile: string
  replicaLogFile: string
  replica2Command: string[]
  replica2PidFile: string
  replica2LogFile: string
}

export interface ReplicationEnv {
  postgres: PostgresEnv
  mariadb: MariaDbEnv
}

export interface PostgresPair extends PostgresEnv, ReplicaControl {
  stop(): Promise<void>
  /** Every process of the three servers: each postmaster and its children. */
  serverPids(): Promise<number[]>
  /** Kills the primary's server (immediate shutdown): a failed primary. */
  killPrimary(): Promise<void>
  /** `pg_ctl promote` on replica 1 or 2: it leaves recovery and takes writes, on a new timeline. */
  promoteReplica(index?: ReplicaIndex): Promise<void>
}

export interface MariaDbPair extends MariaDbEnv, ReplicaControl {
  stop(): Promise<void>
  /** SIGKILL on the primary's mariadbd: a failed primary. */
  killPrimary(): Promise<void>
  /** Replica 1 or 2 becomes a primary: `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`. */
  promoteReplica(index?: ReplicaIndex): Promise<void>
}

const START_TIMEOUT_MS = 30_000
const CATCH_UP_TIMEOUT_MS = 10_000
const APP_PASSWORD = 'apppw'

const execFileAsync = promisify(execFile)
const isRoot = process.getuid?.() === 0

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** Starts a PostgreSQL primary with two streaming replicas; the pair's controls act on replica 1. */
export async function startPostgresPair(): Promise<PostgresPair> {
  const binDir = await findPostgresBinDir()
  const runAs = isRoot ? await requireOsUser('postgres') : null
  const [primaryPort, replicaPort, replica2Port] = await freePorts()
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kysely-rw-pg-'))
  if (runAs) await chownToUser(dir, runAs)
  const env: PostgresEnv = {
    ...pairUrls('postgres', [primaryPort, replicaPort, replica2Port], 'app', 'postgres'),
    dir,
    binDir,
    runAs,
    replicaDataDir: path.join(dir, 'replica'),
    replicaLogFile: path.join(dir, 'replica.log'),
    replica2DataDir: path.join(dir, 'replica2'),
    replica2LogFile: path.join(dir, 'replica2.log'),
  }
  const primary = { dataDir: path.join(dir, 'primary'), logFile: path.join(dir, 'primary.log'), port: primaryPort }
  const stop = once(() => stopPostgres(env, primary.dataDir))
  await startOrCleanUp('PostgreSQL', stop, () => setUpPostgres(env, primary, [replicaPort, replica2Port]))
  return {
    ...env,
    ...controlPostgres(env),
    stop,
    killPrimary: () => pgStop(env, primary.dataDir),
    serverPids: async () =>
      (await Promise.all([primary.dataDir, env.replicaDataDir, env.replica2DataDir].map(pgServerPids))).flat(),
    promoteReplica: (index = 1) => pgTool(env, 'pg_ctl', ['-D', pgReplica(env, index).dataDir, '-w', 'promote']),
  }
}

interface PgReplica {
  adminUrl: string
  dataDir: string
  logFile: string
  /** Replication slot on the primary: it keeps the WAL this replica has not received yet. */
  slot: string
}

function pgReplica(env: PostgresEnv, index: ReplicaIndex): PgReplica {
  return index === 1
    ? { adminUrl: env.adminReplicaUrl, dataDir: env.replicaDataDir, logFile: env.replicaLogFile, slot: 'replica' }
    : { adminUrl: env.adminReplica2Url, dataDir: env.replica2DataDir, logFile: env.replica2LogFile, slot: 'replica2' }
}

/** Controls replica 1 or replica 2 of the PostgreSQL primary. */
export function controlPostgres(env: PostgresEnv, index: ReplicaIndex = 1): ReplicaControl {
  const replica = pgReplica(env, index)
  return {
    pauseReplay: () => pgExec(replica.adminUrl, 'select pg_wal_replay_pause()'),
    resumeReplay: () => pgExec(replica.adminUrl, 'select pg_wal_replay_resume()'),
    killReplica: () => pgStop(env, replica.dataDir),
    startReplica: () => pgStart(env, replica.dataDir, replica.logFile),
    waitForReplicaCatchUp: (timeoutMs = CATCH_UP_TIMEOUT_MS) => waitForPgReplay(env, replica.adminUrl, timeoutMs),
    freezeReplica: async () => signalAll(await pgServerPids(replica.dataDir), 'SIGSTOP'),
    thawReplica: async () => signalAll(await pgServerPids(replica.dataDir), 'SIGCONT'),
  }
}

/** The postmaster (first line of postmaster.pid) and its children: every process of the server. */
async function pgServerPids(dataDir: string): Promise<number[]> {
  const postmaster = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  if (!Number.isInteger(postmaster) || postmaster <= 0) throw new Error(`No postmaster pid in ${dataDir}`)
  const { stdout } = await execFileAsync('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }))
  return [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)]
}

function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch (error) {
      // A child that exited since pgrep listed it has nothing left to stop or resume.
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
    }
  }
}

async function setUpPostgres(
  env: PostgresEnv,
  primary: { dataDir: string; logFile: string; port: number },
  replicaPorts: [number, number],
): Promise<void> {
  // -A trust also trusts replication connections from 127.0.0.1: initdb's pg_hba template has them.
  await pgTool(env, 'initdb', ['-D', primary.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync'])
  await appendFile(path.join(primary.dataDir, 'postgresql.conf'), pgConfig(env.dir, primary.port))
  await pgStart(env, primary.dataDir, primary.logFile)
  // Before the base backup, so the replica starts out with role and database.
  const adminPostgresDb = `postgres://postgres@127.0.0.1:${primary.port}/postgres`
  await pgExec(adminPostgresDb, 'create role app login')
  await pgExec(adminPostgresDb, 'create database app owner app')
  // A replication slot keeps the primary's WAL while a test has killed its replica. Created here,
  // reserving WAL at once, rather than by pg_basebackup -C: with two base backups at once, one's
  // checkpoint could otherwise remove a segment the other still has to stream.
  for (const index of [1, 2] as const) {
    await pgExec(adminPostgresDb, `select pg_create_physical_replication_slot('${pgReplica(env, index).slot}', true)`)
  }
  // Both replicas at once. allSettled semantics: cleaning up while the other is still copying or
  // starting would leak its server.
  await settleAll(
    [
      setUpPgReplica(env, pgReplica(env, 1), primary.port, replicaPorts[0]),
      setUpPgReplica(env, pgReplica(env, 2), primary.port, replicaPorts[1]),
    ],
    'Starting the PostgreSQL replicas failed',
  )
}

async function setUpPgReplica(env: PostgresEnv, replica: PgReplica, primaryPort: number, port: number): Promise<void> {
  await pgTool(env, 'pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primaryPort),
    '-U',
    'postgres',
    '-D',
    replica.dataDir,
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
    // Like the servers' fsync = off: a test cluster need not survive a power cut.
    '--no-sync',
    '-S',
    replica.slot,
  ])
  // The replica copied the primary's config; a later `port` line wins.
  await appendFile(path.join(replica.dataDir, 'postgresql.conf'), `port = ${port}\n`)
  await pgStart(env, replica.dataDir, replica.logFile)
}

function pgConfig(socketDir: string, port: number): string {
  return [
    '',
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${socketDir}'`,
    'wal_level = replica',
    // Two concurrent base backups take two senders each, then each replica streams with one.
    'max_wal_senders = 10',
    'hot_standby = on',
    'fsync = off',
    'max_connections = 200',
    '',
  ].join('\n')
}

async function findPostgresBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql'
  const versions = (await readdir(root).catch(() => []))
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a))
  for (const version of versions) {
    const binDir = path.join(root, version, 'bin')
    if (await allExecutable(binDir, ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'])) return binDir
  }
  throw new Error(
    `PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, postgres) not found in ${root}/<version>/bin. ` +
      'Install them with `apt-get install -y postgresql` (.ci/run does this).',
  )
}

async function pgTool(env: PostgresEnv, tool: string, args: string[]): Promise<void> {
  const binary = path.join(env.binDir, tool)
  const [file, argv] = env.runAs ? ['runuser', ['-u', env.runAs, '--', binary, ...args]] : [binary, args]
  // cwd: the postgres user may not be allowed into the caller's cwd.
  await execFileAsync(file, argv, { cwd: env.dir })
}

async function pgStart(env: PostgresEnv, dataDir: string, logFile: string): Promise<void> {
  const timeoutSeconds = String(START_TIMEOUT_MS / 1000)
  try {
    await pgTool(env, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', timeoutSeconds, 'start'])
  } catch (error) {
    // pg_ctl leaves a server that is still starting after -t running. Best effort: the pair's
    // stop() tries again, and the start failure is the error worth reporting.
    await pgStop(env, dataDir).catch(() => {})
    throw new Error(`PostgreSQL in ${dataDir} did not start: ${errorMessage(error)}\n${await logTail(logFile)}`)
  }
}

async function pgStop(env: PostgresEnv, dataDir: string): Promise<void> {
  if (!(await exists(path.join(dataDir, 'postmaster.pid')))) return
  await pgTool(env, 'pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop'])
}

async function stopPostgres(env: PostgresEnv, primaryDataDir: string): Promise<void> {
  await settleAll(
    [primaryDataDir, env.replicaDataDir, env.replica2DataDir].map((dataDir) => pgStop(env, dataDir)),
    'Stopping PostgreSQL failed',
  )
  await rm(env.dir, { recursive: true, force: true })
}

async function waitForPgReplay(env: PostgresEnv, adminReplicaUrl: string, timeoutMs: number): Promise<void> {
  const row = firstRow(
    'primary WAL position',
    // The insert position, as sessions record it: WAL inserted but not written yet (another backend's, such as
    // autovacuum's) may lie past the write position, and a session's read waits for it too. Past a page header,
    // it is where the replica stops at the page's boundary (replayedForm), as sessions see it.
    await pgQuery<{ lsn: string; page: number; segment: string; align: number }>(
      env.adminPrimaryUrl,
      'select pg_current_wal_insert_lsn()::text as lsn, wal_block_size as page, ' +
        'bytes_per_wal_segment::text as segment, max_data_alignment as align from pg_control_init()',
    ),
  )
  const insert = parsePosition(row.lsn)
  const lsn = insert ? formatPosition(replayedForm(insert, walLayout(row.page, row.segment, row.align))) : row.lsn
  await waitUntil(`PostgreSQL replica (${adminReplicaUrl}) to replay up to ${lsn}`, timeoutMs, async () => {
    const { replayed } = firstRow(
      'replica replay position',
      await pgQuery<{ replayed: boolean | null }>(
        adminReplicaUrl,
        'select pg_last_wal_replay_lsn() >= $1::pg_lsn as replayed',
        [lsn],
      ),
    )
    return replayed === true
  })
}

async function pgQuery<Row>(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return (await client.query(sql, params)).rows as Row[]
  } finally {
    await client.end()
  }
}

async function pgExec(url: string, sql: string): Promise<void> {
  await pgQuery(url, sql)
}

// ---------------------------------------------------------------------------------------------
// MariaDB

/**
 * Starts a MariaDB primary (server id 1) with two GTID replicas (server ids 2 and 3); the pair's
 * controls act on replica 1.
 */
export async function startMariaDbPair(): Promise<MariaDbPair> {
  const binaries = await findMariaDbBinaries()
  const [primaryPort, replicaPort, replica2Port] = await freePorts()
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kysely-rw-mariadb-'))
  const primary = mariadbServer(binaries.mariadbd, dir, 'primary', primaryPort, 1, [
    '--log-bin=mysql-bin',
    '--binlog-format=ROW',
  ])
  const replica = mariadbServer(binaries.mariadbd, dir, 'replica', replicaPort, 2, ['--read-only=1'])
  const replica2 = mariadbServer(binaries.mariadbd, dir, 'replica2', replica2Port, 3, ['--read-only=1'])
  const env: MariaDbEnv = {
    ...pairUrls('mysql', [primaryPort, replicaPort, replica2Port], `app:${APP_PASSWORD}`, 'root'),
    dir,
    replicaCommand: replica.command,
    replicaPidFile: replica.pidFile,
    replicaLogFile: replica.logFile,
    replica2Command: replica2.command,
    replica2PidFile: replica2.pidFile,
    replica2LogFile: replica2.logFile,
  }
  const stop = once(() => stopMariaDb(dir, [primary.pidFile, replica.pidFile, replica2.pidFile]))
  await startOrCleanUp('MariaDB', stop, () => setUpMariaDb(binaries.installDb, primary, [replica, replica2]))
  return {
    ...env,
    ...controlMariaDb(env),
    stop,
    killPrimary: () => killMariaDb(primary.pidFile),
    async promoteReplica(index = 1) {
      const adminUrl = index === 1 ? env.adminReplicaUrl : env.adminReplica2Url
      for (const statement of ['STOP SLAVE', 'RESET SLAVE ALL', 'SET GLOBAL read_only = 0']) {
        await mysqlExec(adminUrl, statement)
      }
    },
  }
}

/** Controls replica 1 (server id 2) or replica 2 (server id 3) of the MariaDB primary. */
export function controlMariaDb(env: MariaDbEnv, index: ReplicaIndex = 1): ReplicaControl {
  const [adminUrl, command, pidFile, logFile] =
    index === 1
      ? [env.adminReplicaUrl, env.replicaCommand, env.replicaPidFile, env.replicaLogFile]
      : [env.adminReplica2Url, env.replica2Command, env.replica2PidFile, env.replica2LogFile]
  return {
    pauseReplay: () => mysqlExec(adminUrl, 'STOP SLAVE SQL_THREAD'),
    resumeReplay: () => mysqlExec(adminUrl, 'START SLAVE SQL_THREAD'),
    killReplica: () => killMariaDb(pidFile),
    startReplica: () => startMariaDb(command, logFile, adminUrl),
    waitForReplicaCatchUp: (timeoutMs = CATCH_UP_TIMEOUT_MS) => waitForGtid(env.adminPrimaryUrl, adminUrl, timeoutMs),
    freezeReplica: async () => signalAll(await mariaDbPids(pidFile), 'SIGSTOP'),
    thawReplica: async () => signalAll(await mariaDbPids(pidFile), 'SIGCONT'),
  }
}

async function mariaDbPids(pidFile: string): Promise<number[]> {
  const pid = await ownMariaDbPid(pidFile)
  if (pid === null) throw new Error(`No running mariadbd for ${pidFile}`)
  return [pid]
}

async function setUpMariaDb(installDb: string, primary: MariaDbServer, replicas: MariaDbServer[]): Promise<void> {
  const servers = [primary, ...replicas]
  // allSettled semantics: cleaning up while another server is still installing or starting would leak it.
  await settleAll(
    servers.map((server) => installMariaDb(installDb, server)),
    'Installing MariaDB failed',
  )
  await settleAll(
    servers.map((server) => startMariaDb(server.command, server.logFile, server.rootUrl)),
    'Starting MariaDB failed',
  )
  // Created on the primary so that it replicates. Without SUPER or READ ONLY ADMIN, read_only
  // applies to `app`, which is what makes the replica refuse its writes.
  await mysqlExec(primary.rootUrl, 'CREATE DATABASE app')
  await mysqlExec(primary.rootUrl, `CREATE USER app@'%' IDENTIFIED BY '${APP_PASSWORD}'`)
  await mysqlExec(primary.rootUrl, `GRANT ALL ON app.* TO app@'%'`)
  await settleAll(
    replicas.map(async (replica) => {
      await mysqlExec(
        replica.rootUrl,
        `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primary.port}, MASTER_USER='root', MASTER_USE_GTID=slave_pos`,
      )
      await mysqlExec(replica.rootUrl, 'START SLAVE')
      await waitForGtid(primary.rootUrl, replica.rootUrl, START_TIMEOUT_MS)
    }),
    'Starting MariaDB replication failed',
  )
}

async function installMariaDb(installDb: string, server: MariaDbServer): Promise<void> {
  await mkdir(server.tmpDir)
  await execFileAsync(installDb, [
    '--no-defaults',
    ...server.storageArgs,
    ...(isRoot ? ['--user=root'] : []),
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    '--skip-name-resolve',
  ])
}

interface MariaDbServer {
  port: number
  dataDir: string
  /** Own tmpdir: mariadbd instances sharing one (e.g. /tmp) collide on temp table files and crash. */
  tmpDir: string
  /** Shared by mariadb-install-db and mariadbd, so the server need not resize the redo log on start. */
  storageArgs: string[]
  pidFile: string
  logFile: string
  command: string[]
  /** root without a default database: `app` does not exist yet while setting up. */
  rootUrl: string
}

function mariadbServer(
  mariadbd: string,
  dir: string,
  name: string,
  port: number,
  serverId: number,
  extraArgs: string[],
): MariaDbServer {
  const dataDir = path.join(dir, name)
  const tmpDir = path.join(dir, `${name}-tmp`)
  const pidFile = path.join(dir, `${name}.pid`)
  const logFile = path.join(dir, `${name}.err`)
  const storageArgs = [
    `--datadir=${dataDir}`,
    `--tmpdir=${tmpDir}`,
    '--innodb-buffer-pool-size=64M',
    '--innodb-log-file-size=16M',
    // Like the PostgreSQL servers' fsync = off: a test cluster need not survive a power cut, only a killed process
    // (each commit still reaches the OS at once). With an fsync per commit, the replica's one applier stalled behind
    // the disk whenever anything else on the machine wrote to it, and a replica that keeps up looked lagged.
    '--innodb-flush-log-at-trx-commit=2',
  ]
  const command = [
    mariadbd,
    '--no-defaults',
    ...storageArgs,
    ...(isRoot ? ['--user=root'] : []),
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(dir, `${name}.sock`)}`,
    `--pid-file=${pidFile}`,
    `--log-error=${logFile}`,
    `--server-id=${serverId}`,
    '--skip-name-resolve',
    '--max-connections=300',
    ...extraArgs,
  ]
  return { port, dataDir, tmpDir, storageArgs, pidFile, logFile, command, rootUrl: `mysql://root@127.0.0.1:${port}/` }
}

async function findMariaDbBinaries(): Promise<{ mariadbd: string; installDb: string }> {
  const mariadbd = await findExecutable('mariadbd', '/usr/sbin')
  const installDb = await findExecutable('mariadb-install-db', '/usr/bin')
  const missing = [mariadbd ? null : 'mariadbd', installDb ? null : 'mariadb-install-db'].filter(Boolean)
  if (!mariadbd || !installDb) {
    throw new Error(
      `MariaDB binaries not found: ${missing.join(', ')} (looked on PATH, /usr/sbin and /usr/bin). ` +
        'Install them with `apt-get install -y mariadb-server` (.ci/run does this).',
    )
  }
  return { mariadbd, installDb }
}

/** Starts mariadbd detached (it outlives the process that starts it) and waits until it answers. */
async function startMariaDb(command: string[], logFile: string, adminUrl: string): Promise<void> {
  const [file, ...args] = command
  if (file === undefined) throw new Error(`Cannot start mariadbd: its command line is empty (log file ${logFile})`)
  const server = spawn(file, args, { detached: true, stdio: 'ignore' })
  server.unref()
  let exited: string | undefined
  server.once('exit', (code, signal) => (exited = `exited with ${signal ?? `code ${code}`}`))
  server.once('error', (error) => (exited = error.message))
  try {
    await waitUntil(`mariadbd (${logFile}) to accept connections`, START_TIMEOUT_MS, async () => {
      if (exited) throw new Error(`mariadbd ${exited}`)
      return canConnect(adminUrl)
    })
  } catch (error) {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL')
    throw new Error(`${errorMessage(error)}\n${await logTail(logFile)}`)
  }
}

/** SIGKILL, then wait until the process is gone. A stale pid file (server already dead) is a no-op. */
async function killMariaDb(pidFile: string): Promise<void> {
  const pid = await ownMariaDbPid(pidFile)
  if (pid === null) return
  process.kill(pid, 'SIGKILL')
  await waitUntil(`mariadbd ${pid} to exit`, START_TIMEOUT_MS, async () => !(await isRunning(pid)))
}

/** The pid in the pid file, but only while that process is still the mariadbd that wrote it. */
async function ownMariaDbPid(pidFile: string): Promise<number | null> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim())
  if (!Number.isInteger(pid) || pid <= 0) return null
  // After a kill -9 the pid file stays; its pid may since belong to another process.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return cmdline.includes(`--pid-file=${pidFile}`) && (await isRunning(pid)) ? pid : null
}

async function stopMariaDb(dir: string, pidFiles: string[]): Promise<void> {
  await settleAll(pidFiles.map(killMariaDb), 'Stopping MariaDB failed')
  await rm(dir, { recursive: true, force: true })
}

async function waitForGtid(primaryRootUrl: string, replicaRootUrl: string, timeoutMs: number): Promise<void> {
  const { pos } = firstRow(
    'primary GTID position',
    await mysqlQuery<{ pos: string }>(primaryRootUrl, 'SELECT @@gtid_binlog_pos AS pos'),
  )
  if (pos === '') return
  const { result } = firstRow(
    'replica MASTER_GTID_WAIT result',
    await mysqlQuery<{ result: number }>(replicaRootUrl, 'SELECT MASTER_GTID_WAIT(?, ?) AS result', [
      pos,
      timeoutMs / 1000,
    ]),
  )
  if (result !== 0) {
    const [status] = await mysqlQuery<Record<string, unknown>>(replicaRootUrl, 'SHOW SLAVE STATUS')
    throw new Error(
      `MariaDB replica (${replicaRootUrl}) did not reach GTID ${pos} within ${timeoutMs} ms ` +
        `(Gtid_IO_Pos=${status?.Gtid_IO_Pos}, SQL running=${status?.Slave_SQL_Running}, ` +
        `IO error=${status?.Last_IO_Error}, SQL error=${status?.Last_SQL_Error})`,
    )
  }
}

async function mysqlQuery<Row>(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const connection = await mysql.createConnection({ uri: url, connectTimeout: 5_000 })
  try {
    const [rows] = await connection.query(sql, params)
    return rows as Row[]
  } finally {
    await connection.end()
  }
}

async function mysqlExec(url: string, sql: string): Promise<void> {
  await mysqlQuery(url, sql)
}

async function canConnect(url: string): Promise<boolean> {
  try {
    await mysqlQuery(url, 'SELECT 1')
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Shared

function pairUrls(
  scheme: string,
  [primaryPort, replicaPort, replica2Port]: Ports,
  app: string,
  admin: string,
): PairUrls {
  const url = (credentials: string, port: number) => `${scheme}://${credentials}@127.0.0.1:${port}/app`
  return {
    primaryUrl: url(app, primaryPort),
    replicaUrl: url(app, replicaPort),
    adminPrimaryUrl: url(admin, primaryPort),
    adminReplicaUrl: url(admin, replicaPort),
    replica2Url: url(app, replica2Port),
    adminReplica2Url: url(admin, replica2Port),
  }
}

/** Ports of a primary and its two replicas. */
type Ports = [primary: number, replica: number, replica2: number]

/** Three ports the OS just handed out; all held open together so they are distinct. */
async function freePorts(): Promise<Ports> {
  const listen = async () => {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    return server
  }
  const servers = await Promise.all([listen(), listen(), listen()])
  const port = (server: Server) => (server.address() as AddressInfo).port
  const ports: Ports = [port(servers[0]), port(servers[1]), port(servers[2])]
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** For queries that always yield one row; none means the server answered something unexpected. */
function firstRow<Row>(what: string, rows: Row[]): Row {
  const [row] = rows
  if (row === undefined) throw new Error(`Query for the ${what} returned no rows`)
  return row
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Runs setUp; if it fails, stops what it started, so a failed start leaves no server behind. */
async function startOrCleanUp(database: string, stop: () => Promise<void>, setUp: () => Promise<void>): Promise<void> {
  try {
    await setUp()
  } catch (error) {
    const failure = new Error(`Starting the ${database} primary/replica pair failed: ${errorMessage(error)}`, {
      cause: error,
    })
    try {
      await stop()
    } catch (stopError) {
      throw new AggregateError(
        [failure, stopError],
        `${failure.message}\n(and stopping it failed too: ${errorMessage(stopError)})`,
      )
    }
    throw failure
  }
}

/** Waits for every promise, then throws if any failed, so one failure does not skip the others. */
async function settleAll(promises: Promise<unknown>[], message: string): Promise<void> {
  const reasons = (await Promise.allSettled(promises)).flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
  if (reasons.length === 1) throw reasons[0]
  if (reasons.length > 1) throw new AggregateError(reasons, `${message}: ${reasons.map(errorMessage).join('; ')}`)
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined
  return () => (result ??= fn())
}

/** Whether any thread of the process is still alive, and so may still hold its sockets open. */
async function isRunning(pid: number): Promise<boolean> {
  const threads = await readdir(`/proc/${pid}/task`).catch(() => [])
  if (threads.some((tid) => tid !== String(pid))) return true
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  // A dead process that its parent has not reaped yet is a zombie: gone for our purposes. After a
  // SIGKILL the main thread turns zombie before the other threads have closed the listen socket.
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

async function requireOsUser(name: string): Promise<string> {
  try {
    await execFileAsync('id', ['-u', name])
    return name
  } catch {
    throw new Error(
      `Running as root, but there is no OS user "${name}" to run PostgreSQL as. ` +
        'Install the server with `apt-get install -y postgresql` (.ci/run does this), which creates it.',
    )
  }
}

async function chownToUser(target: string, user: string): Promise<void> {
  const id = async (flag: string) => Number((await execFileAsync('id', [flag, user])).stdout.trim())
  const [uid, gid] = await Promise.all([id('-u'), id('-g')])
  await chown(target, uid, gid)
}

async function findExecutable(name: string, fallbackDir: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), fallbackDir]
  for (const dir of dirs) {
    if (await allExecutable(dir, [name])) return path.join(dir, name)
  }
  return null
}

async function allExecutable(dir: string, names: string[]): Promise<boolean> {
  const checks = await Promise.all(names.map((name) => exists(path.join(dir, name), constants.X_OK)))
  return checks.every(Boolean)
}

async function exists(file: string, mode = constants.F_OK): Promise<boolean> {
  return access(file, mode).then(
    () => true,
    () => false,
  )
}

async function logTail(file: string, lines = 40): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '(no log written)')
  return `--- last lines of ${file} ---\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

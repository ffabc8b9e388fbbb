// Peers that must not share the root node_modules: kysely-replication with its own kysely 0.28
// (bench/peers), and TypeScript 7 (bench/ts7), whose `tsc` must not replace the root's TypeScript 5.9.
// Both are installed from their lock files the first time a benchmark needs them.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { log } from './util.js'

export async function ensureInstalled(benchDir: string, needs: { peers: boolean; ts7: boolean }): Promise<void> {
  const dirs = [
    needs.peers
      ? { dir: path.join(benchDir, 'peers'), probe: 'node_modules/kysely-replication/package.json' }
      : undefined,
    needs.ts7 ? { dir: path.join(benchDir, 'ts7'), probe: 'node_modules/typescript/package.json' } : undefined,
  ]
  for (const entry of dirs) {
    if (!entry || existsSync(path.join(entry.dir, entry.probe))) continue
    log(`installing ${path.basename(entry.dir)}/ (npm ci, from its package-lock.json)`)
    await npm(entry.dir, ['ci', '--no-audit', '--no-fund'])
  }
}

function npm(cwd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] })
    child.once('error', reject)
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`npm ${args.join(' ')} in ${cwd} exited with ${code}`)),
    )
  })
}

async function versionOf(dir: string, name: string): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(path.join(dir, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string
    }
    return pkg.version
  } catch {
    return 'not installed'
  }
}

/** Versions of everything compared, as `name version` strings. */
export async function peerVersions(root: string, benchDir: string): Promise<string[]> {
  const peers = path.join(benchDir, 'peers')
  const ts7 = path.join(benchDir, 'ts7')
  return [
    `kysely ${await versionOf(root, 'kysely')}`,
    `kysely-replication ${await versionOf(peers, 'kysely-replication')} (on kysely ${await versionOf(peers, 'kysely')})`,
    `drizzle-orm ${await versionOf(root, 'drizzle-orm')}`,
    `pg ${await versionOf(root, 'pg')}`,
    `mysql2 ${await versionOf(root, 'mysql2')}`,
    `tinybench ${await versionOf(root, 'tinybench')}`,
    `TypeScript ${await versionOf(root, 'typescript')} and ${await versionOf(ts7, 'typescript')}`,
  ]
}

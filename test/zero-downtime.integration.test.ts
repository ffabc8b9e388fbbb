// Runs examples/zero-downtime-migration.ts against the real pairs: expand, backfill throttled on lag,
// live reads of the new column, contract.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { families } from './support/databases.js'

const run = promisify(execFile)

describe.each(families)('%s', (_name, familyOf) => {
  it('migrates with zero read errors and keeps measured lag under the budget', async () => {
    const family = familyOf()
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/zero-downtime-migration.ts'], {
      env: { ...process.env, DIALECT: family.dialect, PRIMARY_URL: family.primaryUrl, REPLICA_URL: family.replicaUrl },
      timeout: 60_000,
    })
    expect(stdout).toMatch(/rows still without tier: 0/)
    expect(stdout).toMatch(/read errors: 0/)
    const reads = Number(/reads of the new column during the migration: (\d+)/.exec(stdout)?.[1])
    expect(reads).toBeGreaterThan(10)
    const [, lag, budget] = /max replica lag seen during backfill: (\d+) ms \(budget (\d+) ms\)/.exec(stdout) ?? []
    expect(Number(lag)).toBeLessThanOrEqual(Number(budget))
    expect(stdout).toMatch(/"state":"up"/)
    expect(stdout).not.toMatch(/apppw/)
  })
})

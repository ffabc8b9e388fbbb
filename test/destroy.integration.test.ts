import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { families } from './support/databases.js'

const run = promisify(execFile)

describe.each(families)('%s', (_name, familyOf) => {
  it('destroy() closes every pool: the process exits on its own', async () => {
    const family = familyOf()
    const started = Date.now()
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'test/support/destroy-child.ts', family.dialect, family.primaryUrl, family.replicaUrl],
      // An open pool would keep the process alive past this (pg closes idle clients only after 10 s).
      { timeout: 6_000 },
    )
    expect(stdout.trim()).toBe('destroyed')
    expect(Date.now() - started).toBeLessThan(6_000)
  })
})

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { families } from './support/databases.js'

const run = promisify(execFile)

describe.each(families)('%s', (_name, familyOf) => {
  const child = (mode: string, timeout: number) => {
    const family = familyOf()
    return run(
      process.execPath,
      ['--import', 'tsx', 'test/support/destroy-child.ts', mode, family.dialect, family.primaryUrl, family.replicaUrl],
      { timeout },
    )
  }

  it('destroy() closes every pool: the process exits on its own', async () => {
    const started = Date.now()
    // An open pool would keep the process alive past this (pg closes idle clients only after 10 s).
    const { stdout } = await child('destroy', 6_000)
    expect(stdout.trim()).toBe('destroyed')
    expect(Date.now() - started).toBeLessThan(6_000)
  })

  it('destroy() on db.kysely (the write backend), as kysely-ctl calls it, ends everything', async () => {
    const { stdout } = await child('write-destroy', 6_000)
    expect(stdout.trim()).toBe('destroyed')
  })

  it('a process that never calls destroy() still exits on its own once idle, replicas configured', async () => {
    const started = Date.now()
    const { stdout } = await child('idle', 15_000)
    expect(stdout.trim()).toBe('idle')
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it('a query still waiting for a connection when destroy() runs rejects with BackendsDestroyedError', async () => {
    const { stdout } = await child('queued', 12_000)
    expect(stdout.trim().split('\n')).toEqual(['queued: BackendsDestroyedError', 'destroyed'])
  })
})

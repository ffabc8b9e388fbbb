import { describe, expect, it } from 'vitest'
import { type BackendsConfig, ConfigurationError, createBackends } from '../src/index.js'

const base: BackendsConfig = { dialect: 'postgres', primary: 'postgres://app:secret@127.0.0.1:1/app' }

describe('createBackends refuses configuration it would otherwise have to guess at', () => {
  it.each([
    [{ dialect: 'sqlite' as never }, /Unknown dialect \(a string of 6 characters\)/],
    [{ primary: '' }, /needs a primary/],
    [
      { readOnlySessions: 'Transaction' as never },
      /readOnlySessions must be 'connection' or 'transaction', not a string of 11 characters/,
    ],
    [{ whenNoReplica: 'replica' as never }, /whenNoReplica must be 'primary' or 'error'/],
    [{ replicaSelection: 'fastest' as never }, /replicaSelection must be 'round-robin' or 'random' or 'least-lag'/],
    [{ maxReplicaLagMs: -1 }, /maxReplicaLagMs must be a positive number/],
    [{ healthCheckIntervalMs: 0 }, /healthCheckIntervalMs must be a positive number/],
    [{ readYourWrites: { maxWaitMs: Number.NaN } }, /readYourWrites.maxWaitMs must be a positive number/],
    [{ primary: [] }, /needs a primary/],
    [{ primary: ['postgres://127.0.0.1:1/app', ''] }, /needs a primary/],
    [{ timeouts: { connectMs: 0 } }, /timeouts.connectMs must be a positive number/],
    [{ timeouts: { acquireMs: -5 } }, /timeouts.acquireMs must be a positive number/],
    [{ timeouts: { healthCheckMs: Number.POSITIVE_INFINITY } }, /timeouts.healthCheckMs must be a positive number/],
    [{ timeouts: { destroyMs: Number.NaN } }, /timeouts.destroyMs must be a positive number/],
    [{ fallbackReads: { maxConcurrent: 0 } }, /fallbackReads.maxConcurrent must be a positive number/],
    [{ fallbackReads: { maxQueueMs: -1 } }, /fallbackReads.maxQueueMs must be a positive number/],
    [{ staleReads: {} as never }, /staleReads.maxLagMs must be a positive number/],
  ])('%j', (override, message) => {
    const attempt = () => createBackends({ ...base, ...override })
    expect(attempt).toThrow(ConfigurationError)
    expect(attempt).toThrow(message)
  })

  it.each([
    [{ primary: undefined }, /needs a primary: primary is undefined \(an environment variable that is not set\?\)/],
    [{ primary: ['postgres://127.0.0.1:1/app', undefined] }, /needs a primary: primary\[1\] is undefined/],
    [
      { replicas: ['postgres://127.0.0.1:2/app', undefined] },
      /replicas\[1\] is undefined .*or leave it out of replicas/,
    ],
    [{ replicas: [''] }, /replicas\[0\] is an empty string/],
    [
      { primary: 'mysql://app:secret@127.0.0.1:1/app' },
      /primary is a mysql:\/\/ URL, but the dialect is 'postgres': use a postgres:\/\/ URL, or set dialect: 'mysql'/,
    ],
    [
      { replicas: ['mariadb://app:secret@127.0.0.1:1/app'] },
      /replicas\[0\] is a mariadb:\/\/ URL, but the dialect is 'postgres'/,
    ],
    [
      { primary: 'secret:hunter2' },
      /primary is a URL of another scheme, but the dialect is 'postgres': use a postgres:\/\/ URL\.$/,
    ],
    [{ primary: { connectionString: 'mysql://app:secret@db/app' } }, /primary's connection string is a mysql:\/\/ URL/],
    [
      { primary: { uri: 'postgres://app:secret@db/app' } as never },
      /primary has the option uri, which pg does not know/,
    ],
    [
      { dialect: 'mysql' as const, primary: { uri: 'postgres://app:secret@db/app' } },
      /primary's connection string is a postgres:\/\/ URL, but the dialect is 'mysql'/,
    ],
    [
      { dialect: 'mysql' as const, primary: { connectionString: 'mysql://db/app' } as never },
      /primary has the option connectionString, which mysql2 does not know/,
    ],
  ])('%j', (override, message) => {
    const attempt = () => createBackends({ ...base, ...override } as BackendsConfig)
    expect(attempt).toThrow(ConfigurationError)
    expect(attempt).toThrow(message)
    expect(attempt).not.toThrow(/secret|hunter2/)
  })

  it('refuses a pool of the other driver, naming it', () => {
    const pgLike = { connect: async () => ({}), end: async () => {}, options: {}, totalCount: 0 } as never
    const mysqlLike = { getConnection: () => {}, end: () => {} } as never
    expect(() => createBackends({ dialect: 'mysql', primary: pgLike })).toThrow(
      /primary is a pg pool, but the dialect is 'mysql': hand in a mysql2 pool, or set dialect: 'postgres'/,
    )
    expect(() => createBackends({ ...base, replicas: [mysqlLike] })).toThrow(/replicas\[0\] is a mysql2 pool/)
  })

  it('refuses a single connection where a pool is expected, naming its driver', async () => {
    const pg = (await import('pg')).default
    const mysql2 = await import('mysql2')
    const client = new pg.Client({ connectionString: 'postgres://app:secret@127.0.0.1:1/app' })
    const connection = mysql2.createConnection({ uri: 'mysql://app:secret@127.0.0.1:1/app' })
    connection.on('error', () => {})
    try {
      expect(() => createBackends({ dialect: 'postgres', primary: client as never })).toThrow(
        /primary is a single pg connection.*new pg\.Pool/,
      )
      expect(() => createBackends({ dialect: 'mysql', primary: connection as never })).toThrow(
        /primary is a single mysql2 connection.*createPool/,
      )
      expect(() => createBackends({ dialect: 'postgres', primary: client as never })).not.toThrow(/secret/)
    } finally {
      connection.destroy()
    }
  })

  it('never puts the password of a connection string in its errors', () => {
    expect(() => createBackends({ ...base, readOnlySessions: 'x' as never })).not.toThrow(/secret/)
  })
})

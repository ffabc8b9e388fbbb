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

  it('never puts the password of a connection string in its errors', () => {
    expect(() => createBackends({ ...base, readOnlySessions: 'x' as never })).not.toThrow(/secret/)
  })
})

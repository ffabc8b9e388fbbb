// For test files. They run in worker processes, apart from the global setup that owns the servers,
// so they control the replicas from the JSON env alone: pid files, data dirs, binaries and URLs.
import { inject } from 'vitest'
// Brings global-setup.ts's ProvidedContext augmentation into the program, which types inject().
import type {} from './global-setup.js'
import type { ReplicationEnv } from './replication.js'

export type { MariaDbEnv, PostgresEnv, ReplicaControl, ReplicaIndex, ReplicationEnv } from './replication.js'
export { controlMariaDb, controlPostgres } from './replication.js'

/** Connection info of the pairs that global-setup.ts started for this run. */
export function replication(): ReplicationEnv {
  return inject('replication')
}

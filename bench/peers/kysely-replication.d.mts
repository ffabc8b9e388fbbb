/**
 * A Kysely 0.28 instance over kysely-replication (writes and transactions on the primary, reads on the
 * replicas in turn). Typed `unknown` here: the benchmarks run the same query functions on it as on
 * every other client, through a cast to their Kysely 0.29 type.
 */
export declare function createKyselyReplication(options: {
  dialect: 'postgres' | 'mysql'
  primaryUrl: string
  replicaUrls: string[]
}): { destroy(): Promise<void> }

/** kysely-replication (one primary, two replicas) and a plain Kysely 0.28, each on drivers from `makeDriver`. */
export declare function createOnDrivers(options: { makeDriver: () => unknown }): {
  replication: { destroy(): Promise<void> }
  plain: { destroy(): Promise<void> }
}

// Starts one PostgreSQL and one MariaDB primary, each with two replicas, for the whole integration run and
// hands their connection info to the test files (which run in other processes) as plain JSON.
import type { TestProject } from 'vitest/node'
import { type ReplicationEnv, startMariaDbPair, startPostgresPair } from './replication.js'

declare module 'vitest' {
  export interface ProvidedContext {
    replication: ReplicationEnv
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [postgres, mariadb] = await Promise.allSettled([startPostgresPair(), startMariaDbPair()])
  const stopAll = async () => {
    const pairs = [postgres, mariadb].flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
    const error = failureOf(await Promise.allSettled(pairs.map((pair) => pair.stop())), 'Stopping the pairs failed')
    if (error !== null) throw error
  }
  if (postgres.status === 'rejected' || mariadb.status === 'rejected') {
    // Vitest runs no teardown when setup throws: stop the pair that did come up.
    await stopAll()
    throw failureOf([postgres, mariadb], 'Starting the pairs failed')
  }
  project.provide('replication', { postgres: dataOf(postgres.value), mariadb: dataOf(mariadb.value) })
  return stopAll
}

/** The one rejection, an AggregateError of several, or null when all succeeded. */
function failureOf(results: PromiseSettledResult<unknown>[], message: string): unknown {
  const reasons = results.flatMap((result) => (result.status === 'rejected' ? [result.reason] : []))
  if (reasons.length === 0) return null
  if (reasons.length === 1) return reasons[0]
  const details = reasons.map((reason) => (reason instanceof Error ? reason.message : String(reason)))
  return new AggregateError(reasons, [message, ...details].join('\n'))
}

type DataOf<T> = { [K in keyof T as T[K] extends (...args: never[]) => unknown ? never : K]: T[K] }

/** A pair without its methods: the JSON part that workers rebuild the controls from. */
function dataOf<T extends object>(pair: T): DataOf<T> {
  return Object.fromEntries(Object.entries(pair).filter(([, value]) => typeof value !== 'function')) as DataOf<T>
}

// The fault runs of issue #9 on the benchmark's own PostgreSQL and MariaDB servers: a replica frozen with
// SIGSTOP under load, and replay paused on both replicas under session load. The scenarios are the ones
// the integration tests assert (test/support/fault-scenarios.ts); this renders their figures.

import { sql } from 'kysely'
import { controlMariaDb, controlPostgres, type MariaDbPair, type PostgresPair } from '../../test/harness/replication.js'
import {
  type HungReplicaResult,
  hungReplica,
  type LagUnderLoadResult,
  lagUnderLoad,
  type ScenarioTarget,
} from '../../test/support/fault-scenarios.js'
import type { Family } from './db.js'
import { goal, type Headline, table } from './util.js'

export interface FaultsResult {
  readonly family: string
  readonly hung: HungReplicaResult
  readonly lag: LagUnderLoadResult
}

function targetOf(family: Family): ScenarioTarget {
  const pair = family.pair
  const controls =
    family.name === 'postgres'
      ? ([controlPostgres(pair as PostgresPair), controlPostgres(pair as PostgresPair, 2)] as const)
      : ([controlMariaDb(pair as MariaDbPair), controlMariaDb(pair as MariaDbPair, 2)] as const)
  const serial = family.name === 'postgres' ? 'serial primary key' : 'int auto_increment primary key'
  return {
    dialect: family.dialect,
    primaryUrl: family.primaryUrl,
    replicaUrls: [family.replicaUrl, pair.replica2Url],
    controls,
    async createTable(db, name) {
      await sql`drop table if exists ${sql.table(name)}`.execute(db)
      await sql`create table ${sql.table(name)} (id ${sql.raw(serial)}, name varchar(100) not null, qty int not null)`.execute(
        db,
      )
    },
  }
}

export async function runFaults(family: Family): Promise<FaultsResult> {
  const target = targetOf(family)
  return { family: family.label, hung: await hungReplica(target), lag: await lagUnderLoad(target) }
}

const HUNG_GOALS = '0 failed reads; no operation ≥ 5 s; out of rotation ≤ 3 s; throughput during ≥ 30% of before'
const LAG_GOALS = 'slowest session read ≤ 1000 ms; plain-read p99 ≤ 1000 ms; 0 stale; 0 errors'

function hungMet(r: HungReplicaResult): boolean {
  return (
    r.failed === 0 &&
    r.slowestMs < 5_000 &&
    r.outOfRotationMs <= 3_000 &&
    r.throughputDuring >= 0.3 * r.throughputBefore
  )
}

function lagMet(r: LagUnderLoadResult): boolean {
  return r.slowestSessionReadMs <= 1_000 && r.plainReadP99Ms <= 1_000 && r.stale === 0 && r.errors === 0
}

export function renderFaults(results: readonly FaultsResult[]): string {
  const out: string[] = []
  out.push(
    'Hung replica: replica 1 of two stopped with SIGSTOP (postmaster and children; mariadbd) for 8 s while 40 workers ' +
      'do 90% reads and 10% writes, default options; `destroy()` is timed with the replica still frozen. ' +
      `Goals: ${HUNG_GOALS}.\n`,
  )
  out.push(
    table(
      [
        'database',
        'operations',
        'failed',
        'slowest ms',
        'p99 ms',
        'out of rotation ms',
        'ops/s before',
        'ops/s during',
        'destroy() ms',
        'met',
      ],
      results.map(({ family, hung: r }) => [
        family,
        String(r.operations),
        String(r.failed),
        String(r.slowestMs),
        String(r.p99Ms),
        String(r.outOfRotationMs),
        r.throughputBefore.toFixed(0),
        r.throughputDuring.toFixed(0),
        String(r.destroyMs),
        goal(hungMet(r)),
      ]),
    ),
  )
  out.push(
    '\nLag under load: replay paused on both replicas, 40 session users writing then reading back their row, 20 plain ' +
      `readers, \`readYourWrites.maxWaitMs: 500\`, 4 s. Goals: ${LAG_GOALS}.\n`,
  )
  out.push(
    table(
      [
        'database',
        'session reads',
        'slowest session read ms',
        'plain reads',
        'plain p99 ms',
        'stale',
        'errors',
        'waits',
        'met',
      ],
      results.map(({ family, lag: r }) => [
        family,
        String(r.sessionReads),
        String(r.slowestSessionReadMs),
        String(r.plainReads),
        String(r.plainReadP99Ms),
        String(r.stale),
        String(r.errors),
        String(r.waits),
        goal(lagMet(r)),
      ]),
    ),
  )
  return out.join('\n')
}

export function faultsMisses(results: readonly FaultsResult[]): string[] {
  return results.flatMap(({ family, hung, lag }) => [
    ...(hungMet(hung) ? [] : [`${family}: hung replica: ${HUNG_GOALS} not all met`]),
    ...(lagMet(lag) ? [] : [`${family}: lag under load: ${LAG_GOALS} not all met`]),
  ])
}

export function faultsHeadlines(results: readonly FaultsResult[]): Headline[] {
  return results.flatMap(({ family, hung, lag }) => [
    {
      benchmark: `hung replica, ${family}`,
      measured: `${hung.failed} failed; slowest ${hung.slowestMs} ms; out after ${hung.outOfRotationMs} ms; throughput ${(
        hung.throughputDuring / Math.max(1, hung.throughputBefore)
      ).toFixed(2)}× of before`,
      goal: HUNG_GOALS,
      met: hungMet(hung),
    },
    {
      benchmark: `lag under load, ${family}`,
      measured: `slowest session read ${lag.slowestSessionReadMs} ms; plain p99 ${lag.plainReadP99Ms} ms; ${lag.stale} stale; ${lag.errors} errors`,
      goal: LAG_GOALS,
      met: lagMet(lag),
    },
  ])
}

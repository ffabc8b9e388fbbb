// Where a read-your-writes session's cost goes, step by step: one connection's worth of work at a time, so that
// each step's client CPU can be told apart (under load, steps overlap and only their sum shows). A plain
// `db.write` insert and `db.read` pk select, against a session's write (after one of its reads, so that its
// position is read in the write's round trip) and the session's first read after it (checked on a replica in
// its own round trip, or waiting where the check finds the replica behind). Alternated batch by batch.
import type { Kysely } from 'kysely'
import type { BenchDB, Family } from './db.js'
import { createBackends } from './kysely-rw.js'
import { QUERIES, type QuerySpec } from './queries.js'
import { fmt, median, ratio, table, until } from './util.js'

export const STEPS = {
  /** Write-then-read pairs per batch. */
  pairs: 200,
  /** Batches of each kind, alternated; the first two of each are not counted. */
  batches: 14,
}

/** What kysely-rw's `stats()` counts of session reads: checks, waits and fallbacks. */
export interface RwStats {
  readonly waits: number
  readonly waitMs: number
  readonly fallbacks: number
  readonly replayChecks: number
  readonly replayCheckMisses: number
}

/** The counts from `before` to `after`, two readings of `stats()`. */
export function statsBetween(before: RwStats, after: RwStats): RwStats {
  return {
    waits: after.waits - before.waits,
    waitMs: after.waitMs - before.waitMs,
    fallbacks: after.fallbacks - before.fallbacks,
    replayChecks: after.replayChecks - before.replayChecks,
    replayCheckMisses: after.replayCheckMisses - before.replayCheckMisses,
  }
}

export interface SessionSteps {
  /** Median over batches of client CPU µs per step. */
  readonly plainWriteUs: number
  readonly sessionWriteUs: number
  readonly plainReadUs: number
  readonly sessionReadUs: number
  /** Session reads after a write, in all counted batches, and what they did (checks, misses, waits). */
  readonly reads: number
  readonly stats: RwStats
}

const [pk, , insert] = QUERIES as [QuerySpec, QuerySpec, QuerySpec]
const cpu = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

export async function measureSessionSteps(family: Family, replicaUrls: string[]): Promise<SessionSteps> {
  const db = createBackends<BenchDB>({ dialect: family.dialect, primary: family.primaryUrl, replicas: replicaUrls })
  const k = (backend: unknown) => backend as Kysely<BenchDB>
  try {
    await until('both replicas up', 10_000, () => db.replicas().every((r) => r.state === 'up'))
    const session = db.session()
    const batch = async (useSession: boolean) => {
      const [write, read] = useSession ? [k(session.write), k(session.read)] : [k(db.write), k(db.read)]
      let [writeUs, readUs] = [0, 0]
      for (let i = 0; i < STEPS.pairs; i++) {
        // A read of the session first (caught up, untimed): its next write is the kind read back next.
        if (useSession) await pk.run(read)
        const started = cpu()
        await insert.run(write)
        const written = cpu()
        await pk.run(read)
        writeUs += written - started
        readUs += cpu() - written
      }
      return { writeUs: writeUs / STEPS.pairs, readUs: readUs / STEPS.pairs }
    }
    const plain: { writeUs: number; readUs: number }[] = []
    const sessioned: { writeUs: number; readUs: number }[] = []
    let before = db.stats()
    for (let b = 0; b < STEPS.batches; b++) {
      if (b === 2) before = db.stats()
      const order = b % 2 === 0 ? [false, true] : [true, false]
      for (const useSession of order) {
        const result = await batch(useSession)
        if (b >= 2) (useSession ? sessioned : plain).push(result)
      }
    }
    return {
      plainWriteUs: median(plain.map((r) => r.writeUs)),
      sessionWriteUs: median(sessioned.map((r) => r.writeUs)),
      plainReadUs: median(plain.map((r) => r.readUs)),
      sessionReadUs: median(sessioned.map((r) => r.readUs)),
      reads: (STEPS.batches - 2) * STEPS.pairs,
      stats: statsBetween(before, db.stats()),
    }
  } finally {
    await db.destroy()
  }
}

export function renderSessionSteps(s: SessionSteps): string {
  const row = (step: string, plainUs: number, sessionUs: number) => [
    step,
    fmt(plainUs, 1),
    fmt(sessionUs, 1),
    fmt(sessionUs - plainUs, 1),
    ratio(sessionUs / plainUs),
  ]
  return [
    'Where sessions cost, step by step: one write-then-read pair at a time on kysely-rw (same process, pinned as ' +
      `above), ${STEPS.pairs} pairs per batch, plain and session batches alternated ${STEPS.batches} times (the ` +
      "first two of each not counted), each step's client CPU (user + system) summed over its batch; medians over " +
      "batches. The session's write follows one of its reads, so its position is read in the write's round trip " +
      '(one more statement, answered after its own Sync); its first read after the write goes to a replica with the ' +
      'replay check in its round trip, and waits for the replica or falls back where the check finds it behind.\n',
    table(
      ['step', 'plain `db.write` / `db.read` µs', 'session µs', 'difference µs', 'ratio'],
      [
        row('insert', s.plainWriteUs, s.sessionWriteUs),
        row('pk select right after it', s.plainReadUs, s.sessionReadUs),
      ],
    ),
    `Session reads after a write: ${s.reads}; checked in their round trip ${s.stats.replayChecks}, of which the ` +
      `replica had not replayed the write yet ${s.stats.replayCheckMisses}; waits ${s.stats.waits}; fallbacks to ` +
      `the primary ${s.stats.fallbacks}.\n`,
  ].join('\n')
}

import { CallSlot } from './call-slot.js'

/**
 * A read sent to a replica before the replica was known to have replayed the read's target: the driver
 * reads the replica's replay position in the read's own round trip, on the same session, just before the
 * read. It reports a position only where the read's snapshot is taken after the check ran (the dialect
 * knows when: pg's checkReplayInline), so the read saw at least what it reports.
 */
export interface ReplayCheck {
  /** The replay position the replica reported; undefined when the check was not sent or failed. */
  replayed: string | undefined
}

// A read whose driver saw no check reports no position: it is run again elsewhere, never trusted.
const checks = new CallSlot<ReplayCheck>()

export function checkingReplay<T>(check: ReplayCheck, run: () => Promise<T>): Promise<T> {
  return checks.during(check, run)
}

/** The check of the read being issued now, if it asked for one. */
export function currentCheck(): ReplayCheck | undefined {
  return checks.current
}

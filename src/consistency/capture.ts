import { CallSlot } from './call-slot.js'

/** Receives the replication position a write or COMMIT reported, where the driver reports one. */
export interface PositionSink {
  position: string | undefined
  /**
   * The statement's own round trip may carry a read of its position (pipelined behind it on PostgreSQL), at
   * the cost of one more statement; otherwise the position is read later (SessionWrites).
   */
  readonly inline: boolean
}

// Without a sink seen by the driver, the session reads its position with one more query.
const sinks = new CallSlot<PositionSink>()

export function capturePositions<T>(sink: PositionSink, run: () => Promise<T>): Promise<T> {
  return sinks.during(sink, run)
}

/** The sink of the statement being issued now, if a session asked for positions. */
export function currentSink(): PositionSink | undefined {
  return sinks.current
}

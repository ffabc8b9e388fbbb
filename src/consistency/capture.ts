/** Receives the replication position a write or COMMIT reported, where the driver reports one. */
export interface PositionSink {
  position: string | undefined
  /**
   * The statement's own round trip may carry a read of its position (pipelined behind it on PostgreSQL), at
   * the cost of one more statement; otherwise the position is read later (SessionWrites).
   */
  readonly inline: boolean
}

// The sink of the statement being issued right now. Kysely's pg and mysql2 connections hand a statement
// to the driver's `query` synchronously, within the call that `capturePositions` makes, so a slot read at
// that moment is enough; no AsyncLocalStorage, which on Node 20 would slow every promise of the process.
// Should a driver ever defer that call, the wrappers see no sink and the session reads its position with
// one more query: slower, never wrong.
let current: PositionSink | undefined

export function capturePositions<T>(sink: PositionSink, run: () => Promise<T>): Promise<T> {
  const outer = current
  current = sink
  try {
    return run()
  } finally {
    current = outer
  }
}

/** The sink of the statement being issued now, if a session asked for positions. */
export function currentSink(): PositionSink | undefined {
  return current
}

import { AsyncLocalStorage } from 'node:async_hooks'

/** Receives the replication position a write or COMMIT reported, where the driver reports one. */
export interface PositionSink {
  position: string | undefined
}

// The drivers' result callbacks run outside the caller's async context, so wrappers read the sink when
// a query is issued (inside `capturePositions`) and write to it when its result arrives.
const storage = new AsyncLocalStorage<PositionSink>()

export function capturePositions<T>(sink: PositionSink, run: () => Promise<T>): Promise<T> {
  return storage.run(sink, run)
}

/** The sink of the statement being issued now, if a session asked for positions. */
export function currentSink(): PositionSink | undefined {
  return storage.getStore()
}

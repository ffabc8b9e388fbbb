import type { Node } from './node.js'

/**
 * `rows`, streamed from `node`, failing with the cut's reason if the node is cut off while they stream. A
 * driver's stream can wait forever on a socket that was cut under it (mysql2's row stream, paused for a slow
 * consumer, never learns that its connection closed): without this, the stream would never settle, nor give
 * its connection back.
 */
export async function* untilCut<T>(rows: AsyncIterableIterator<T>, node: Node): AsyncIterableIterator<T> {
  let cutReason: Error | undefined
  // One listener for the whole stream, not one per chunk: a long stream would pile them up.
  let failStep: ((reason: Error) => void) | undefined
  const stop = node.onCut((reason) => {
    cutReason = reason
    failStep?.(reason)
  })
  // Takes the step as a function: a step begun after the cut would fail later, with no one to hear it.
  const settled = <V>(step: () => Promise<V>): Promise<V> =>
    cutReason
      ? Promise.reject(cutReason)
      : new Promise<V>((resolve, reject) => {
          failStep = reject
          step().then(resolve, reject)
        })
  let done = false
  try {
    while (true) {
      const step = await settled(() => rows.next())
      if (step.done) {
        done = true
        return
      }
      yield step.value
    }
  } finally {
    try {
      if (!done) {
        // Left early or failed: the driver's stream ends its query (closes its cursor), unless its socket is
        // gone; a driver's stream stuck on a cut socket is not waited for.
        if (cutReason) Promise.resolve(rows.return?.()).catch(() => {})
        else await settled(() => Promise.resolve(rows.return?.())).catch(() => {})
      }
    } finally {
      stop()
    }
  }
}

/** A replica that may serve a read now, as a custom selection function sees it. */
export interface ReplicaCandidate {
  readonly name: string
  /** Last measured lag; null before the first health check. */
  readonly lagMs: number | null
}

/**
 * How a read picks among the eligible replicas: in turn, at random, the least lagging, or your own
 * function (which must return one of the candidates it is given).
 */
export type ReplicaSelection =
  | 'round-robin'
  | 'random'
  | 'least-lag'
  | ((candidates: readonly ReplicaCandidate[]) => ReplicaCandidate)

/** Returns a picker over candidates; each picker keeps its own round-robin turn. */
export function selector<C extends ReplicaCandidate>(selection: ReplicaSelection): (candidates: readonly C[]) => C {
  if (typeof selection === 'function') {
    return (candidates) => {
      const chosen = selection(candidates)
      if (!candidates.includes(chosen as C)) {
        throw new TypeError('replicaSelection must return one of the candidates it was given.')
      }
      return chosen as C
    }
  }
  switch (selection) {
    case 'random':
      return (candidates) => candidates[Math.floor(Math.random() * candidates.length)] as C
    case 'least-lag':
      return (candidates) =>
        candidates.reduce((best, c) =>
          (c.lagMs ?? Number.POSITIVE_INFINITY) < (best.lagMs ?? Number.POSITIVE_INFINITY) ? c : best,
        )
    case 'round-robin': {
      let turn = 0
      return (candidates) => candidates[turn++ % candidates.length] as C
    }
    default:
      throw new TypeError(`Unknown replicaSelection "${String(selection)}".`)
  }
}

import type { Node } from '../driver/node.js'
import type { Router } from '../driver/router.js'
import { PrimaryUnavailableError } from '../errors.js'
import type { Candidate, Topology } from '../topology/topology.js'

/**
 * Routing for writes: the candidate that is the primary now. When its connection fails, the candidates
 * are looked at again at once (the write that failed is not retried: its outcome is the caller's to
 * learn); while none is known to take writes, a write waits for that look, then fails.
 */
export function primaryRouter(
  topology: Topology,
  candidates: readonly Candidate[],
  isConnectionError: (error: unknown) => boolean,
): Router {
  const byNode = new Map<Node, Candidate>(candidates.map((candidate) => [candidate.write, candidate]))
  return {
    choose() {
      const current = topology.primary
      if (current) return current.write
      return topology.checkNow().then(() => {
        const found = topology.primary
        if (found) return found.write
        throw new PrimaryUnavailableError(candidates.map((c) => c.write.name).join(', '), {
          cause: new Error('none of the primary candidates takes writes now'),
        })
      })
    },
    failed(node, error) {
      const candidate = byNode.get(node)
      if (candidate && isConnectionError(error)) void topology.primaryFailed(candidate)
      return false
    },
  }
}

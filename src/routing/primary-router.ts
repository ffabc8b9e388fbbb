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
      if (current && !topology.primaryUnanswered) return current.write
      if (current) {
        // It hangs: a write would wait on it until a deadline, and hold its caller as long. Refused now;
        // a check is asked for, whose answer lets writes through again as soon as the primary answers.
        void topology.checkNow()
        const refusal = new PrimaryUnavailableError(current.write.name, {
          cause: new Error('it did not answer its last health checks in time'),
        })
        // After a turn of the event loop, as a failed round trip would: a caller that retries in a loop must
        // not keep the process from everything else (reads, checks, timers).
        return new Promise<never>((_, reject) => setImmediate(() => reject(refusal)))
      }
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

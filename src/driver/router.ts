import type { FallbackReason } from '../events.js'
import type { Node } from './node.js'

/** What routing did for one observed read, for its log event and span: filled in by the router. */
export interface RouteTrace {
  /** Why the read runs on the primary, when it falls back to it. */
  fallbackReason?: FallbackReason
  /** How long it waited for a replica to replay a session's writes (or the schema floor). */
  waitMs?: number
}

/**
 * A replica chosen for a session read before it is known to have replayed what the read must see. The
 * read checks the replica's replay position in its own round trip (ReplayCheck) and is trusted only when
 * `confirmed`; otherwise its connection goes back to the pool and `otherwise` routes the read again, as
 * the router would have without this shortcut: a wait for a replica, or the primary. Streaming replay
 * usually outruns the client's round trip (and under load the read also waits for a pooled connection), so
 * the check usually finds the session's write replayed, and the read saves the wait's poll and timers.
 */
export class Unconfirmed {
  constructor(
    readonly node: Node,
    /** True when `replayed`, the position the check answered, covers the read's target. */
    readonly confirmed: (replayed: string | undefined) => boolean,
    /** The router's choice without the shortcut; never another Unconfirmed. */
    readonly otherwise: (exclude: ReadonlySet<Node>, trace?: RouteTrace) => Node | Promise<Node>,
  ) {}
}

/** Where a connection goes: a node, or a replica that the read must first confirm. */
export type Route = Node | Unconfirmed

/** Decides which node serves a backend's next connection. */
export interface Router {
  /**
   * A node for the next connection, never one in `exclude` (nodes that already failed this request);
   * a promise where the choice must wait (a session read waiting for a replica to replay its writes).
   */
  choose(exclude: ReadonlySet<Node>, trace?: RouteTrace): Route | Promise<Route>
  /** A connection to `node` failed; true when the request may be retried on another node. */
  failed(node: Node, error: unknown): boolean
}

/** Every connection to one node; nothing is retried elsewhere. */
export function fixedRouter(node: Node): Router {
  return {
    choose: () => node,
    failed: () => false,
  }
}

import type { FallbackReason } from '../events.js'
import type { Node } from './node.js'

/** What routing did for one observed read, for its log event and span: filled in by the router. */
export interface RouteTrace {
  /** Why the read runs on the primary, when it falls back to it. */
  fallbackReason?: FallbackReason
  /** How long it waited for a replica to replay a session's writes (or the schema floor). */
  waitMs?: number
}

/** Decides which node serves a backend's next connection. */
export interface Router {
  /**
   * A node for the next connection, never one in `exclude` (nodes that already failed this request);
   * a promise where the choice must wait (a session read waiting for a replica to replay its writes).
   */
  choose(exclude: ReadonlySet<Node>, trace?: RouteTrace): Node | Promise<Node>
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

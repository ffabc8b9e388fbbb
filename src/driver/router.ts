import type { Node } from './node.js'

/** Decides which node serves a backend's next connection. */
export interface Router {
  /**
   * A node for the next connection, never one in `exclude` (nodes that already failed this request);
   * a promise where the choice must wait (a session read waiting for a replica to replay its writes).
   */
  choose(exclude: ReadonlySet<Node>): Node | Promise<Node>
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

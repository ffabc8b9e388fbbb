import type { DatabaseConnection } from 'kysely'
import type { Node } from './node.js'

/** Decides which node serves a backend's next connection. */
export interface Router {
  /** A node for the next connection, never one in `exclude` (nodes that already failed this request). */
  choose(exclude: ReadonlySet<Node>): Node
  /**
   * Called with the connection before it is handed out; false sends the request to another node
   * (a session read whose replica did not replay its position in time).
   */
  admit?(node: Node, connection: DatabaseConnection): Promise<boolean>
  /**
   * Something to wait for before a node is chosen (a session position still being read); undefined
   * when there is nothing, so that a plain read does not pay for an await.
   */
  ready?(): Promise<void> | undefined
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

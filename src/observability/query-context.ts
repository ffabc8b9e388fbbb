import type { CompiledQuery } from 'kysely'
import type { FallbackReason } from '../events.js'

/** Where a node listens, as OpenTelemetry's `server.*` and `db.namespace` attributes want it. */
export interface ServerInfo {
  readonly address: string
  readonly port: number | undefined
  readonly namespace: string | undefined
}

/**
 * One query as kysely-rw ran it: what log events, channel messages and spans are made of. Never secrets.
 * A session read sent to a replica whose replay check then shows it behind is routed again while it runs:
 * `node`, `server`, `fallback`, `fallbackReason`, `waitMs` and `acquireMs` change to the node that answers
 * it before the channel's `end` message (a `start` subscriber sees the replica first chosen).
 */
export interface QueryContext {
  readonly query: CompiledQuery
  /** `'read'` for read backends (replicas, or the primary in a read-only session), `'write'` for the primary. */
  readonly role: 'read' | 'write'
  /** The node's name: role, host, port and database. */
  readonly node: string
  /** Parsed from the node's name; undefined for a ready-made dialect, whose address kysely-rw does not see. */
  readonly server: ServerInfo | undefined
  /** `'postgresql'` or `'mysql'` (MySQL and MariaDB), OpenTelemetry's `db.system.name`. */
  readonly system: 'postgresql' | 'mysql'
  /** True on the backends of a read-your-writes session. */
  readonly session: boolean
  /** True when a read runs on the primary because no replica could serve it. */
  readonly fallback: boolean
  /** Why it does, when it does. */
  readonly fallbackReason?: FallbackReason | undefined
  /** How long the read waited for a replica to replay a session's writes (or the schema floor), if it waited. */
  readonly waitMs?: number | undefined
  /** Time from asking for a connection to holding one: routing, session waits, the pool. */
  readonly acquireMs: number
  readonly isStream: boolean
}

const servers = new Map<string, ServerInfo | undefined>()

/**
 * The server of a node name such as `replica 1 postgres://10.0.0.2:5432/app` or `primary db1:3306/app`
 * (what describeNode builds, credentials already removed); cached, as names are few and fixed.
 */
export function serverOf(nodeName: string): ServerInfo | undefined {
  if (servers.has(nodeName)) return servers.get(nodeName)
  const last = nodeName.split(' ').at(-1) ?? ''
  let server: ServerInfo | undefined
  try {
    const url = new URL(last.includes('://') ? last : `db://${last}`)
    if (url.hostname && last.includes(':') && !/^\(/.test(last)) {
      const namespace = decodeURIComponent(url.pathname.replace(/^\//, ''))
      server = {
        address: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port ? Number(url.port) : undefined,
        namespace: namespace || undefined,
      }
    }
  } catch {
    server = undefined
  }
  servers.set(nodeName, server)
  return server
}

const OPERATIONS: Readonly<Record<string, string>> = {
  SelectQueryNode: 'SELECT',
  InsertQueryNode: 'INSERT',
  UpdateQueryNode: 'UPDATE',
  DeleteQueryNode: 'DELETE',
  MergeQueryNode: 'MERGE',
  CreateTableNode: 'CREATE TABLE',
  AlterTableNode: 'ALTER TABLE',
  DropTableNode: 'DROP TABLE',
  CreateIndexNode: 'CREATE INDEX',
  DropIndexNode: 'DROP INDEX',
}

/** OpenTelemetry's `db.operation.name`: the statement's kind, or the first word of raw SQL (`BEGIN`, `COMMIT`). */
export function operationOf(query: CompiledQuery): string {
  return OPERATIONS[query.query.kind] ?? (/^\s*([a-z]+)/i.exec(query.sql)?.[1] ?? 'QUERY').toUpperCase()
}

import { formatPosition, type Position, parsePosition } from './position.js'

const PREFIX = 'rw1.'

/** What a session token carries: which cluster (and timeline) the position belongs to, and the position. */
export interface SessionToken {
  readonly cluster: string
  readonly position: Position | undefined
  /**
   * A write's position was still being read when the token was made: the session continued from it
   * asks the primary for a position past that write before its first read.
   */
  readonly unsettled?: boolean
}

/** A string safe to put in a cookie or header and hand back later: no secrets, only a position. */
export function encodeToken(token: SessionToken): string {
  const p = token.position ? formatPosition(token.position) : null
  const body = JSON.stringify(token.unsettled ? { c: token.cluster, p, u: 1 } : { c: token.cluster, p })
  return PREFIX + Buffer.from(body).toString('base64url')
}

/** Undefined for a string that is not a token of this library (tampered, truncated, another format). */
export function decodeToken(text: string): SessionToken | undefined {
  if (!text.startsWith(PREFIX)) return undefined
  try {
    const body = JSON.parse(Buffer.from(text.slice(PREFIX.length), 'base64url').toString('utf8')) as unknown
    if (typeof body !== 'object' || body === null) return undefined
    const { c, p, u } = body as { c?: unknown; p?: unknown; u?: unknown }
    if (typeof c !== 'string') return undefined
    const unsettled = u === 1
    if (p === null) return { cluster: c, position: undefined, unsettled }
    const position = typeof p === 'string' ? parsePosition(p) : undefined
    return position ? { cluster: c, position, unsettled } : undefined
  } catch {
    return undefined
  }
}

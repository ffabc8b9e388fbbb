import { createHmac, timingSafeEqual } from 'node:crypto'
import { formatPosition, type Position, parsePosition } from './position.js'

const PREFIX = 'rw1.'
const SIGNED = 'rw1s.'

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

/**
 * A string safe to put in a cookie or header and hand back later: no secrets, only a position. With a
 * secret, the body is signed (HMAC-SHA256), so that a client cannot forge or edit it.
 */
export function encodeToken(token: SessionToken, secret?: string | Uint8Array): string {
  const body = Buffer.from(
    JSON.stringify({
      c: token.cluster,
      p: token.position ? formatPosition(token.position) : null,
      ...(token.unsettled ? { u: 1 } : {}),
    }),
  ).toString('base64url')
  return secret === undefined ? PREFIX + body : `${SIGNED}${body}.${sign(body, secret)}`
}

/**
 * Undefined for a string that is not a token of this library (tampered, truncated, another format),
 * and, when a secret is configured, for any token whose signature does not verify (unsigned ones too).
 */
export function decodeToken(text: string, secret?: string | Uint8Array): SessionToken | undefined {
  let body: string
  if (secret === undefined) {
    if (!text.startsWith(PREFIX)) return undefined
    body = text.slice(PREFIX.length)
  } else {
    if (!text.startsWith(SIGNED)) return undefined
    const dot = text.lastIndexOf('.')
    body = text.slice(SIGNED.length, dot)
    const given = Buffer.from(text.slice(dot + 1), 'base64url')
    const expected = Buffer.from(sign(body, secret), 'base64url')
    if (dot < SIGNED.length || given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  }
  try {
    const parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown
    if (typeof parsed !== 'object' || parsed === null) return undefined
    const { c, p, u } = parsed as { c?: unknown; p?: unknown; u?: unknown }
    if (typeof c !== 'string') return undefined
    const unsettled = u === 1
    if (p === null) return { cluster: c, position: undefined, unsettled }
    const position = typeof p === 'string' ? parsePosition(p) : undefined
    return position ? { cluster: c, position, unsettled } : undefined
  } catch {
    return undefined
  }
}

function sign(body: string, secret: string | Uint8Array): string {
  return createHmac('sha256', secret).update(body).digest('base64url')
}

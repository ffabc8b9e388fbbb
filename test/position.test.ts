import { describe, expect, it } from 'vitest'
import { formatPosition, hasReached, laterOf, type Position, parsePosition } from '../src/consistency/position.js'
import { decodeToken, encodeToken } from '../src/consistency/token.js'
import { replayedForm, walLayout } from '../src/consistency/wal-layout.js'

const p = (text: string): Position => {
  const position = parsePosition(text)
  if (!position) throw new Error(`unparsable: ${text}`)
  return position
}

const A = '3e11fa47-71ca-11e1-9e33-c80aa9429562'
const B = '2174b383-5441-11e8-b90a-c80aa9429562'

describe('positions', () => {
  it('orders PostgreSQL LSNs across the 32-bit halves', () => {
    expect(hasReached(p('1/0'), p('0/FFFFFFFF'))).toBe(true)
    expect(hasReached(p('0/3000028'), p('0/3016210'))).toBe(false)
    expect(formatPosition(p('16/B374D848'))).toBe('16/B374D848')
  })

  it('compares MariaDB GTID positions per domain, whatever the server id', () => {
    expect(hasReached(p('0-1-10,1-2-5'), p('0-2-10'))).toBe(true)
    expect(hasReached(p('0-1-10'), p('0-1-10,1-2-1'))).toBe(false)
    expect(formatPosition(laterOf(p('0-1-10,1-2-7'), p('0-1-12,1-2-3')))).toBe('0-0-12,1-0-7')
  })

  it('compares MySQL GTID sets as sets of intervals per source', () => {
    expect(hasReached(p(`${A}:1-42`), p(`${A}:23`))).toBe(true)
    expect(hasReached(p(`${A}:1-20:22-42`), p(`${A}:21`))).toBe(false)
    expect(hasReached(p(`${A}:1-42,${B}:1-3`), p(`${B}:3,${A}:40-42`))).toBe(true)
    expect(hasReached(p(`${A}:1-42`), p(`${B}:1`))).toBe(false)
    expect(formatPosition(laterOf(p(`${A}:1-5`), p(`${A}:6-9:12`)))).toBe(`${A}:1-9:12`)
  })

  it('never compares positions of different kinds, and refuses what it cannot read', () => {
    expect(hasReached(p('0/1'), p('0-1-1'))).toBe(false)
    expect(parsePosition('garbage')).toBeUndefined()
    expect(parsePosition(null)).toBeUndefined()
  })

  it('round-trips a session position through a token, and rejects tampered tokens', () => {
    const token = encodeToken({ cluster: '7711:1', position: p(`${A}:1-42`) })
    const decoded = decodeToken(token)
    expect(decoded?.cluster).toBe('7711:1')
    expect(formatPosition(decoded!.position!)).toBe(`${A}:1-42`)
    expect(decodeToken(`${token.slice(0, -3)}@@@`)).toBeUndefined()
    expect(decodeToken('rw1.')).toBeUndefined()
  })
})

describe('replayedForm: a primary insert position as a replica reports it', () => {
  const layout = walLayout(8192, 16 * 1024 * 1024, 8)
  const lsn = (n: bigint): Position => ({ kind: 'lsn', lsn: n })

  it('reads the layout from pg_control_init(): headers padded to the server alignment', () => {
    expect(layout).toEqual({ pageBytes: 8192n, segmentBytes: 16_777_216n, shortHeader: 24n, longHeader: 40n })
    expect(walLayout('8192', '16777216', '4')).toMatchObject({ shortHeader: 20n, longHeader: 36n })
    expect(walLayout(undefined, 16_777_216, 8)).toBeUndefined()
    expect(walLayout(8192, 16_777_216, 'eight')).toBeUndefined()
  })

  it('moves a position just past a page header back to the page boundary, where the last record ended', () => {
    // 0/4262018, seen from pg_current_wal_insert_lsn() after a commit whose record ended at 0/4262000.
    expect(replayedForm(lsn(0x4262018n), layout)).toEqual(lsn(0x4262000n))
    // The first page of a segment has the long header.
    expect(replayedForm(lsn(0x5000028n), layout)).toEqual(lsn(0x5000000n))
  })

  it('leaves every other position as it is: a record can end anywhere past a header', () => {
    for (const n of [0x4262000n, 0x4262020n, 0x4262010n, 0x5000018n, 0x4261ff8n, 0x5000030n]) {
      expect(replayedForm(lsn(n), layout)).toEqual(lsn(n))
    }
    expect(replayedForm(lsn(0x4262018n), undefined)).toEqual(lsn(0x4262018n))
    const gtid = parsePosition('0-1-42') as Position
    expect(replayedForm(gtid, layout)).toBe(gtid)
  })
})

import type { Position } from './position.js'

/**
 * How a PostgreSQL cluster lays out its WAL: pages, segments of pages, and a header at the start of each
 * page, longer on a segment's first. The same on a primary and its physical replicas; read from
 * `pg_control_init()` by the node probe.
 */
export interface WalLayout {
  readonly pageBytes: bigint
  readonly segmentBytes: bigint
  readonly shortHeader: bigint
  readonly longHeader: bigint
}

/**
 * The layout from `pg_control_init()`'s `wal_block_size`, `bytes_per_wal_segment` and `max_data_alignment`;
 * undefined when a value is missing or not a size. The headers are PostgreSQL's XLogPageHeaderData (20 bytes)
 * and XLogLongPageHeaderData (36 bytes), each padded to the server's alignment.
 */
export function walLayout(pageBytes: unknown, segmentBytes: unknown, maxAlign: unknown): WalLayout | undefined {
  const [page, segment, align] = [pageBytes, segmentBytes, maxAlign].map(Number)
  if (![page, segment, align].every((n) => Number.isSafeInteger(n) && (n as number) > 0)) return undefined
  const padded = (bytes: number) => BigInt(Math.ceil(bytes / (align as number)) * (align as number))
  return {
    pageBytes: BigInt(page as number),
    segmentBytes: BigInt(segment as number),
    shortHeader: padded(20),
    longHeader: padded(36),
  }
}

/**
 * `position` as a replica reports it once it has replayed everything up to there. A primary's insert
 * position just past a record that ends on a page boundary points past the next page's header, where the
 * next record will start; a replica reports the end of the last record it replayed: the boundary. No
 * record ends inside a header, so the two are the same point of the WAL. Left as the primary said it, a
 * session read after such a write would wait for a replica that only gets past the header with the next
 * write: in a quiet app, its whole wait budget, and the replica would then be skipped as stuck.
 * Unchanged without a layout, and for positions other than PostgreSQL's.
 */
export function replayedForm(position: Position, layout: WalLayout | undefined): Position {
  if (!layout || position.kind !== 'lsn') return position
  const { lsn } = position
  if (lsn % layout.segmentBytes === layout.longHeader) return { kind: 'lsn', lsn: lsn - layout.longHeader }
  if (lsn % layout.pageBytes === layout.shortHeader && lsn % layout.segmentBytes !== layout.shortHeader) {
    return { kind: 'lsn', lsn: lsn - layout.shortHeader }
  }
  return position
}

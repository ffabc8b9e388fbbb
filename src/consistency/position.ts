/**
 * A replication position: how far a server's data goes. PostgreSQL: a WAL location (LSN). MariaDB: a
 * GTID position, one sequence number per replication domain. MySQL: a GTID set, intervals of
 * transaction numbers per source server uuid.
 */
export type Position =
  | { readonly kind: 'lsn'; readonly lsn: bigint }
  | { readonly kind: 'gtid'; readonly domains: ReadonlyMap<number, bigint> }
  | { readonly kind: 'gtidset'; readonly sources: ReadonlyMap<string, readonly Interval[]> }

/** Inclusive, sorted, disjoint. */
type Interval = readonly [bigint, bigint]

const LSN = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i
const MARIADB_GTID = /^(\d+)-(\d+)-(\d+)$/
const MYSQL_SOURCE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})((?::\d+(?:-\d+)?)+)$/i

/** Parses `16/B374D848`, `0-1-42,1-2-7` or `uuid:1-42:50,uuid2:7`; undefined when it is none of them. */
export function parsePosition(text: string | null | undefined): Position | undefined {
  if (typeof text !== 'string') return undefined
  const lsn = LSN.exec(text)
  if (lsn) return { kind: 'lsn', lsn: (BigInt(`0x${lsn[1]}`) << 32n) | BigInt(`0x${lsn[2]}`) }
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
  if (parts.length === 0) return text.trim() === '' ? { kind: 'gtid', domains: new Map() } : undefined
  if (parts.every((part) => MARIADB_GTID.test(part))) {
    const domains = new Map<number, bigint>()
    for (const part of parts) {
      const [, domain, , seq] = MARIADB_GTID.exec(part) as RegExpExecArray
      domains.set(Number(domain), BigInt(seq as string))
    }
    return { kind: 'gtid', domains }
  }
  if (parts.every((part) => MYSQL_SOURCE.test(part))) {
    const sources = new Map<string, Interval[]>()
    for (const part of parts) {
      const [, uuid, list] = MYSQL_SOURCE.exec(part) as RegExpExecArray
      const intervals = (list as string)
        .slice(1)
        .split(':')
        .map((range): Interval => {
          const [from, to = from] = range.split('-') as [string, string?]
          return [BigInt(from), BigInt(to)]
        })
      sources.set(
        (uuid as string).toLowerCase(),
        merge([...(sources.get((uuid as string).toLowerCase()) ?? []), ...intervals]),
      )
    }
    return { kind: 'gtidset', sources }
  }
  return undefined
}

export function formatPosition(position: Position): string {
  switch (position.kind) {
    case 'lsn':
      return `${(position.lsn >> 32n).toString(16).toUpperCase()}/${(position.lsn & 0xffffffffn).toString(16).toUpperCase()}`
    case 'gtid':
      // The server id is not part of the order within a domain; 0 keeps the text a valid GTID (as MariaDB writes one).
      return [...position.domains].map(([domain, seq]) => `${domain}-0-${seq}`).join(',')
    case 'gtidset':
      return [...position.sources]
        .map(([uuid, intervals]) => `${uuid}:${intervals.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(':')}`)
        .join(',')
  }
}

/** True when a server at `current` has everything up to `target`. Different kinds never compare. */
export function hasReached(current: Position | undefined, target: Position): boolean {
  if (!current) return false
  if (current.kind === 'lsn' && target.kind === 'lsn') return current.lsn >= target.lsn
  if (current.kind === 'gtid' && target.kind === 'gtid') {
    for (const [domain, seq] of target.domains) {
      if ((current.domains.get(domain) ?? -1n) < seq) return false
    }
    return true
  }
  if (current.kind === 'gtidset' && target.kind === 'gtidset') {
    for (const [uuid, wanted] of target.sources) {
      const have = current.sources.get(uuid) ?? []
      if (!wanted.every(([a, b]) => have.some(([c, d]) => c <= a && b <= d))) return false
    }
    return true
  }
  return false
}

/** The later of two positions of the same kind (per domain for GTIDs, the union for GTID sets). */
export function laterOf(a: Position | undefined, b: Position): Position {
  if (!a || a.kind !== b.kind) return b
  if (a.kind === 'lsn' && b.kind === 'lsn') return a.lsn >= b.lsn ? a : b
  if (a.kind === 'gtid' && b.kind === 'gtid') {
    const domains = new Map(a.domains)
    for (const [domain, seq] of b.domains) {
      if ((domains.get(domain) ?? -1n) < seq) domains.set(domain, seq)
    }
    return { kind: 'gtid', domains }
  }
  if (a.kind === 'gtidset' && b.kind === 'gtidset') {
    const sources = new Map(a.sources)
    for (const [uuid, intervals] of b.sources) sources.set(uuid, merge([...(sources.get(uuid) ?? []), ...intervals]))
    return { kind: 'gtidset', sources }
  }
  return b
}

function merge(intervals: Interval[]): Interval[] {
  const sorted = [...intervals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const merged: [bigint, bigint][] = []
  for (const [from, to] of sorted) {
    const last = merged[merged.length - 1]
    // Bigints: Math.max would throw on them.
    if (!last || from > last[1] + 1n) merged.push([from, to])
    else if (to > last[1]) last[1] = to
  }
  return merged
}

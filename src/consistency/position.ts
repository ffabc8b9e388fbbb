/**
 * A replication position: how far a server's data goes. PostgreSQL: a WAL location (LSN). MariaDB: a
 * GTID position, one sequence number per replication domain.
 */
export type Position = { readonly kind: 'lsn'; readonly lsn: bigint } | { readonly kind: 'gtid'; readonly domains: ReadonlyMap<number, bigint> }

/** Parses `16/B374D848` (PostgreSQL) or `0-1-42,1-2-7` (MariaDB); undefined when it is neither. */
export function parsePosition(text: string | null | undefined): Position | undefined {
  if (typeof text !== 'string') return undefined
  const lsn = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(text)
  if (lsn) return { kind: 'lsn', lsn: (BigInt(`0x${lsn[1]}`) << 32n) | BigInt(`0x${lsn[2]}`) }
  const domains = new Map<number, bigint>()
  for (const part of text.split(',')) {
    const gtid = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part)
    if (!gtid) return text.trim() === '' ? { kind: 'gtid', domains } : undefined
    domains.set(Number(gtid[1]), BigInt(gtid[3] as string))
  }
  return { kind: 'gtid', domains }
}

export function formatPosition(position: Position): string {
  if (position.kind === 'lsn') {
    return `${(position.lsn >> 32n).toString(16).toUpperCase()}/${(position.lsn & 0xffffffffn).toString(16).toUpperCase()}`
  }
  // The server id is not part of the order within a domain; 0 keeps the text a valid GTID for MASTER_GTID_WAIT.
  return [...position.domains].map(([domain, seq]) => `${domain}-0-${seq}`).join(',')
}

/** True when a server at `current` has everything up to `target`. Different kinds never compare. */
export function hasReached(current: Position | undefined, target: Position): boolean {
  if (!current || current.kind !== target.kind) return false
  if (current.kind === 'lsn') return current.lsn >= (target as { lsn: bigint }).lsn
  for (const [domain, seq] of (target as { domains: ReadonlyMap<number, bigint> }).domains) {
    if ((current.domains.get(domain) ?? -1n) < seq) return false
  }
  return true
}

/** The later of two positions of the same kind (per domain for GTIDs). */
export function laterOf(a: Position | undefined, b: Position): Position {
  if (!a || a.kind !== b.kind) return b
  if (a.kind === 'lsn') return a.lsn >= (b as { lsn: bigint }).lsn ? a : b
  const domains = new Map(a.domains)
  for (const [domain, seq] of (b as { domains: ReadonlyMap<number, bigint> }).domains) {
    if ((domains.get(domain) ?? -1n) < seq) domains.set(domain, seq)
  }
  return { kind: 'gtid', domains }
}

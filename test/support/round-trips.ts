/**
 * True when a query call on this pg Client goes out in the round trip of one already sent: the client is in
 * pipeline mode (pg 8.23+) with a query in flight. Counters of round trips skip such calls.
 */
export function pipelinedBehind(client: unknown): boolean {
  const c = client as { pipeline?: unknown; _activeQuery?: unknown; _sentQueryQueue?: unknown[] }
  return c.pipeline === true && (c._activeQuery != null || (c._sentQueryQueue?.length ?? 0) > 0)
}

/** The text of a pg query call's first argument: a string, or a query object's `text` (kysely-rw sends both). */
export function queryText(first: unknown): string {
  return String(typeof first === 'string' ? first : (first as { text?: unknown } | null)?.text)
}

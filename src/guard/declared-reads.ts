import type { CompiledQuery } from 'kysely'

// Compiled queries whose SQL text readSql has checked; the guard lets these raw queries through.
const declaredReads = new WeakSet<CompiledQuery>()

export function declareRead(query: CompiledQuery): void {
  declaredReads.add(query)
}

export function isDeclaredRead(query: CompiledQuery): boolean {
  return declaredReads.has(query)
}

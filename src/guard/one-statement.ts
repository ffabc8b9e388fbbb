import { type CompiledQuery, type Driver, PostgresDriver } from 'kysely'

/**
 * One statement per read, at the protocol level. node-postgres sends a query without parameters over
 * the simple protocol, which runs every statement in the string; with `queryMode: 'extended'` it always
 * uses the extended protocol, whose Parse message the server refuses when it holds two statements.
 * Kysely's PostgresConnection hands `sql` to `client.query` as it is, so a query config object in its
 * place reaches pg for pools kysely-rw creates and for those handed in alike. MySQL needs nothing here:
 * mysql2 sends one statement per COM_QUERY unless `multipleStatements` is on, which read pools refuse.
 */
export function oneStatementQuery(query: CompiledQuery, driver: Driver): CompiledQuery {
  // With a parameter, node-postgres takes the extended protocol anyway; the config object would only make
  // it copy the query config (a few µs under load).
  if (query.parameters.length > 0 || !(driver instanceof PostgresDriver)) return query
  const config = { text: query.sql, queryMode: 'extended' }
  return { ...query, sql: config as unknown as string }
}

/** A statement pair that every read connection must refuse, to prove the protocol sends one statement. */
export const TWO_STATEMENTS = 'select 1; select 1'

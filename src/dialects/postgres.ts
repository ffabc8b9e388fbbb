import { PostgresDialect } from 'kysely'
import type { DialectSupport } from './dialect.js'
import { describeNode } from './describe.js'

// A startup parameter: every transaction of the session is read-only, at no extra round trip.
const READ_ONLY_OPTION = '-c default_transaction_read_only=on'

// SQLSTATE 25006 read_only_sql_transaction: a write in a read-only transaction, or on a hot standby.
const READ_ONLY_SQL_TRANSACTION = '25006'

export const postgres: DialectSupport = {
  createDialect(config, readOnly) {
    const poolConfig: Record<string, unknown> =
      typeof config === 'string' ? { connectionString: config } : { ...config }
    if (readOnly) {
      poolConfig.options = [poolConfig.options, READ_ONLY_OPTION].filter(Boolean).join(' ')
    }
    return new PostgresDialect({
      // Imported on first use so that `pg` stays an optional peer for MySQL users.
      pool: async () => {
        const pg = await import('pg')
        return new pg.default.Pool(poolConfig)
      },
    })
  },
  readOnlySessionSql: 'set session characteristics as transaction read only',
  readOnlyTransactionSql: 'set transaction read only',
  isReadOnlyRefusal(error) {
    return (error as { code?: unknown } | null)?.code === READ_ONLY_SQL_TRANSACTION
  },
  describe: describeNode,
}

import { CompiledQuery, MysqlDialect } from 'kysely'
import type { DialectSupport } from './dialect.js'
import { describeNode } from './describe.js'

const READ_ONLY_SESSION = 'set session transaction read only'

// ER_OPTION_PREVENTS_STATEMENT (server --read-only) and ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
const READ_ONLY_ERRNOS = new Set([1290, 1792])

export const mysql: DialectSupport = {
  createDialect(config, readOnly) {
    const poolConfig: Record<string, unknown> = typeof config === 'string' ? { uri: config } : { ...config }
    return new MysqlDialect({
      // Imported on first use so that `mysql2` stays an optional peer for PostgreSQL users.
      pool: async () => {
        const mysql2 = await import('mysql2')
        return mysql2.createPool(poolConfig)
      },
      // Once per new connection; mysql2 has no startup parameter for it.
      onCreateConnection: readOnly
        ? async (connection) => {
            await connection.executeQuery(CompiledQuery.raw(READ_ONLY_SESSION))
          }
        : undefined,
    })
  },
  readOnlySessionSql: READ_ONLY_SESSION,
  isReadOnlyRefusal(error) {
    return READ_ONLY_ERRNOS.has((error as { errno?: number } | null)?.errno ?? -1)
  },
  describe: describeNode,
}

// Run as a child process by destroy.integration.test.ts: uses both backends, destroys them, and must
// then exit on its own (no open pool, socket or timer keeps the event loop alive).
import { createBackends, readSql } from '../../src/index.js'

const [dialect, primary, replica] = process.argv.slice(2) as ['postgres' | 'mysql', string, string]
const db = createBackends<Record<string, never>>({ dialect, primary, replicas: [replica] })
await readSql`select 1 as one`.execute(db.read)
await readSql`select 1 as one`.execute(db.write)
await db.write.transaction().execute((tx) => readSql`select 1 as one`.execute(tx))
await db.destroy()
console.log('destroyed')

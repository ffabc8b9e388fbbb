// Run as a child process by destroy.integration.test.ts. Modes:
// - `destroy`: uses both backends, destroys them, and must then exit on its own;
// - `write-destroy`: the same, but calls destroy() on db.kysely (the primary as a Kysely, which runs on
//   the write backend), as kysely-ctl and other tools do;
// - `idle`: never calls destroy(); it must still exit on its own once idle, as with plain Kysely;
// - `queued`: destroys while a query waits for a connection; that query must reject, not hang.
import { createBackends, readSql } from '../../src/index.js'

const [mode, dialect, primary, replica] = process.argv.slice(2) as [string, 'postgres' | 'mysql', string, string]
const db = createBackends<Record<string, never>>({ dialect, primary, replicas: [replica] })
await readSql`select 1 as one`.execute(db.read)
// Reads by 50 workers at once, so that PostgreSQL replica reads pipeline and the lane holds connections: those
// must end with destroy() and keep no idle process alive either.
let reads = 0
await Promise.all(
  Array.from({ length: 50 }, async () => {
    while (reads++ < 1_000) await readSql`select 1 as one`.execute(db.read)
  }),
)
if (dialect === 'postgres' && db.stats().pipelinedReads === 0) throw new Error('no read was pipelined')
await readSql`select 1 as one`.execute(db.write)
await db.write.transaction().execute((tx) => readSql`select 1 as one`.execute(tx))
if (mode === 'destroy') await db.destroy()
if (mode === 'write-destroy') await db.kysely.destroy()
if (mode === 'queued') {
  // Holds all 10 connections of the write pool, so that one more query queues, then destroys.
  let holding = 0
  const held = Array.from({ length: 10 }, () =>
    db.write.connection().execute(async () => {
      holding++
      await new Promise((resolve) => setTimeout(resolve, 2_000))
    }),
  )
  while (holding < 10) await new Promise((resolve) => setTimeout(resolve, 10))
  const queued = readSql`select 1 as one`.execute(db.write).then(
    () => 'ran',
    (error: Error) => error.name,
  )
  await new Promise((resolve) => setTimeout(resolve, 50))
  await db.destroy()
  console.log(`queued: ${await queued}`)
  await Promise.allSettled(held)
}
console.log(mode === 'idle' ? 'idle' : 'destroyed')

// Read-your-writes across HTTP requests: starts the notes service (examples/http/notes-service.ts) on a
// free port, then acts as its client. A POST creates a note and gets the session token in a cookie; a
// later GET that sends the cookie back reads the note, even while every replica is behind.
//
//   npx tsx examples/http-session.ts      (see examples/support/connection.ts for PRIMARY_URL & co.)
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createBackends } from '../src/index.js'
import { createNotesTable, type NotesDB, notesService } from './http/notes-service.js'
import { connection, describeConnection } from './support/connection.js'

const config = connection()
console.log(describeConnection(config))
const db = createBackends<NotesDB>(config)
await createNotesTable(db.write)

const server = notesService(db).listen(0, '127.0.0.1')
await once(server, 'listening')
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

// Request 1: create a note. The response sets the session cookie.
const created = await fetch(`${url}/notes`, { method: 'POST', body: 'Buy oat milk' })
const { id } = (await created.json()) as { id: string }
const cookie = created.headers.get('set-cookie')?.split(';')[0] ?? ''
console.log(`POST /notes -> ${created.status}, note ${id}`)
console.log(`cookie: ${cookie}`)

// Request 2, with the cookie: the session's read waits (bounded) for a replica that has the note, or
// runs on the primary. It never misses the note.
const mine = await fetch(`${url}/notes/${id}`, { headers: { cookie } })
console.log(`GET /notes/${id} with the cookie -> ${mine.status} ${JSON.stringify(await mine.json())}`)

// Request 3, without the cookie: a plain read on any replica. It may miss the note while replicas lag.
const anyone = await fetch(`${url}/notes/${id}`)
const missed = anyone.status === 404 ? ' (a replica had not replayed the POST yet)' : ''
console.log(`GET /notes/${id} without the cookie -> ${anyone.status}${missed}`)

const { waits, fallbacks } = db.stats()
console.log(`session reads that waited for a replica: ${waits}; reads run on the primary instead: ${fallbacks}`)

server.close()
await db.destroy()

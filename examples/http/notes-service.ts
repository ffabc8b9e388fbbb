// A small HTTP service (node:http) whose clients read their own writes across requests: each request
// continues the client's read-your-writes session from a cookie, and each write sends the session's new
// token back in that cookie. examples/http-session.ts runs it.
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Backends, CanRead, WriteBackend } from '../../src/index.js'

export interface NotesDB {
  notes: { id: string; body: string }
}

const COOKIE = 'rw_session'

export async function createNotesTable(db: WriteBackend<NotesDB>): Promise<void> {
  await db.schema
    .createTable('notes')
    .ifNotExists()
    .addColumn('id', 'varchar(36)', (col) => col.primaryKey())
    .addColumn('body', 'varchar(1000)', (col) => col.notNull())
    .execute()
}

function findNote(db: CanRead<NotesDB>, id: string) {
  return db.selectFrom('notes').select(['id', 'body']).where('id', '=', id).executeTakeFirst()
}

async function addNote(db: WriteBackend<NotesDB>, body: string): Promise<string> {
  const id = randomUUID()
  await db.insertInto('notes').values({ id, body }).execute()
  return id
}

export function notesService(db: Backends<NotesDB>): Server {
  return createServer(async (req, res) => {
    try {
      // No cookie: a new session. A cookie: the client's session, whatever server wrote it.
      const session = db.session(cookie(req, COOKIE))

      if (req.method === 'POST' && req.url === '/notes') {
        const id = await addNote(session.write, await body(req))
        // The token holds a replication position, nothing secret; HttpOnly keeps scripts off it anyway.
        res.setHeader('set-cookie', `${COOKIE}=${session.token()}; Path=/; HttpOnly; SameSite=Lax`)
        return json(res, 201, { id })
      }

      const id = req.method === 'GET' ? /^\/notes\/([\w-]+)$/.exec(req.url ?? '')?.[1] : undefined
      if (id) {
        const note = await findNote(session.read, id)
        return note ? json(res, 200, note) : json(res, 404, { error: 'no such note' })
      }
      json(res, 404, { error: 'not found' })
    } catch (error) {
      console.error(error)
      json(res, 500, { error: 'internal error' })
    }
  })
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const pair of req.headers.cookie?.split(';') ?? []) {
    const [key, ...value] = pair.trim().split('=')
    if (key === name) return value.join('=')
  }
  return undefined
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
}

// The runtime query mix. Each query is written once against Kysely's own type, and every client runs
// the very same function, so the SQL each sends is identical. kysely-rw's backends are real Kysely
// instances at run time; only their static types differ (ReadBackend / WriteBackend), hence the casts
// at the call sites in overhead.ts.
import type { Kysely } from 'kysely'
import { type BenchDB, USERS } from './db.js'

let seed = 1
/** A cheap deterministic pseudo-random user id in 1..USERS. */
export function nextUserId(): number {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return (seed % USERS) + 1
}

export type QueryName = 'pk select' | 'join select' | 'insert' | 'update' | 'write tx + read back'

export interface QuerySpec {
  readonly name: QueryName
  readonly kind: 'read' | 'write'
  readonly sql: string
  run(db: Kysely<BenchDB>): Promise<unknown>
}

export const QUERIES: readonly QuerySpec[] = [
  {
    name: 'pk select',
    kind: 'read',
    sql: 'select * from users where id = ?',
    run: (db) => db.selectFrom('users').selectAll().where('id', '=', nextUserId()).executeTakeFirst(),
  },
  {
    name: 'join select',
    kind: 'read',
    sql: `select o.id, o.total, u.name from orders o join users u … where o.user_id = ? and o.status = 'paid' order by o.id limit 20 (2 rows)`,
    run: (db) =>
      db
        .selectFrom('orders')
        .innerJoin('users', 'users.id', 'orders.user_id')
        .select(['orders.id', 'orders.total', 'users.name'])
        .where('orders.user_id', '=', nextUserId())
        .where('orders.status', '=', 'paid')
        .orderBy('orders.id')
        .limit(20)
        .execute(),
  },
  {
    name: 'insert',
    kind: 'write',
    sql: 'insert into events (user_id, kind, payload) values (?, ?, ?)',
    run: (db) => db.insertInto('events').values({ user_id: nextUserId(), kind: 'click', payload: 'bench' }).execute(),
  },
  {
    name: 'update',
    kind: 'write',
    sql: 'update users set score = ? where id = ?',
    run: (db) =>
      db
        .updateTable('users')
        .set({ score: nextUserId() % 100 })
        .where('id', '=', nextUserId())
        .execute(),
  },
  {
    name: 'write tx + read back',
    kind: 'write',
    sql: 'begin; update users set score = score + 1 where id = ?; select score from users where id = ?; commit',
    run: (db) =>
      db.transaction().execute(async (tx) => {
        const id = nextUserId()
        await tx
          .updateTable('users')
          .set((eb) => ({ score: eb('score', '+', 1) }))
          .where('id', '=', id)
          .execute()
        return tx.selectFrom('users').select('score').where('id', '=', id).executeTakeFirstOrThrow()
      }),
  },
]

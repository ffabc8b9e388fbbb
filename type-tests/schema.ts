/**
 * The schema shared by the type tests, and declared (never created) backends of it.
 * Nothing here runs: tsd only type-checks.
 */
import type { Generated, Kysely } from 'kysely'
import type { CanRead, ReadBackend, WriteBackend } from '../src/index.js'

export interface Users {
  id: Generated<number>
  name: string
  email: string | null
  created_at: Generated<Date>
}

export interface Posts {
  id: Generated<number>
  user_id: number
  title: string
  body: string
}

export interface Comments {
  id: Generated<number>
  post_id: number
  user_id: number
  text: string
  parent_id: number | null
}

export interface AppDB {
  users: Users
  posts: Posts
  comments: Comments
}

/** A strict subset of AppDB. */
export interface UsersDB {
  users: Users
}

/** A schema that shares no table with AppDB. */
export interface OtherDB {
  invoices: { id: Generated<number>; amount: number }
}

export declare const read: ReadBackend<AppDB>
export declare const write: WriteBackend<AppDB>
export declare const canRead: CanRead<AppDB>
/** A plain Kysely instance, the reference for result types. */
export declare const kysely: Kysely<AppDB>

/** Demands the primary. */
export declare function needsWrite(db: WriteBackend<AppDB>): void
/** Demands a replica. */
export declare function needsRead(db: ReadBackend<AppDB>): void
/** Accepts either. */
export declare function needsCanRead(db: CanRead<AppDB>): void

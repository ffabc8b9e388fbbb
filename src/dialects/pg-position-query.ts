import type { PgConnection, PgQuery, PgQueryClass } from './pg-checked-read.js'

/** A statement whose one row's first column is a replication position, read as text. */
export interface PositionQuery extends PgQuery {
  /** The position, once the statement answered; undefined if it answered none. */
  readonly position: string | undefined
}

const classes = new WeakMap<PgQueryClass, new (text: string) => PositionQuery>()

/**
 * The class of position statements for one copy of node-postgres (its `Query`). Such a statement rides behind
 * every session write: it takes the row's one value as it comes, where pg would describe the columns, look up
 * their parsers and build a row object for it (about 6 µs of client CPU per session write, one at a time).
 */
export function positionQueryClass(Query: PgQueryClass): new (text: string) => PositionQuery {
  let Position = classes.get(Query)
  if (Position) return Position
  Position = class extends Query implements PositionQuery {
    position: string | undefined = undefined

    override handleRowDescription(): void {}

    override handleDataRow(message: { fields: unknown[] }): void {
      const [value] = message.fields
      this.position = value == null ? undefined : String(value)
    }

    override handleCommandComplete(_message: unknown, _connection: PgConnection): void {}
  }
  classes.set(Query, Position)
  return Position
}

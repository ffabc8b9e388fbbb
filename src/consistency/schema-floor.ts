import { laterOf, type Position } from './position.js'

/**
 * The position every read must be at after a schema change: the primary's position after the DDL.
 * A replica that has not replayed it may not have the new column or table yet.
 */
export class SchemaFloor {
  #position: Position | undefined

  constructor(
    /** Reads a primary's position as the target replicas must replay (replayedForm). */
    private readonly targetOf: (text: string | null | undefined) => Position | undefined,
  ) {}

  get position(): Position | undefined {
    return this.#position
  }

  /** Raises the floor to `text` (an LSN or GTID position); a floor never goes down. */
  raise(text: string | null | undefined): void {
    const position = this.targetOf(text)
    if (position) this.#position = laterOf(this.#position, position)
  }
}

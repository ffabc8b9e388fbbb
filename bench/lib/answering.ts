// A database driver that answers every query at once, with one row: what is left to measure on it is the
// client's own CPU per query (Kysely's, kysely-rw's, kysely-replication's), which network noise hides.
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult } from 'kysely'
import { PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely'

// One row that answers every query kysely-rw asks itself (positions, cluster id) and the benchmark's.
export const ROW = { pos: '0/3000000', id: 'bench-cluster', reached: true, ro: 'on', n: 1, name: 'user 1', score: 1 }

class AnsweringConnection implements DatabaseConnection {
  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    // As PostgreSQL refuses two statements in one Parse message: kysely-rw checks its read connections do.
    if (/;\s*\S/.test(query.sql)) {
      throw Object.assign(new Error('cannot insert multiple commands into a prepared statement'), { code: '42601' })
    }
    return { rows: [ROW as R] }
  }
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {}
}

/** DummyDriver's no-ops, but with connections that are reused (as a pool's are) and answer a row. */
export class AnsweringDriver implements Driver {
  readonly #idle: AnsweringConnection[] = []
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return this.#idle.pop() ?? new AnsweringConnection()
  }
  async beginTransaction(): Promise<void> {}
  async commitTransaction(): Promise<void> {}
  async rollbackTransaction(): Promise<void> {}
  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    this.#idle.push(connection as AnsweringConnection)
  }
  async destroy(): Promise<void> {}
}

/** A PostgreSQL-flavoured Kysely 0.29 dialect on an answering driver. */
export function answeringDialect(): Dialect {
  return {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new AnsweringDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  }
}

/** A connection that only passes queries on to another: a class of its own, as any wrapping driver's. */
class PassingConnection implements DatabaseConnection {
  constructor(readonly inner: DatabaseConnection) {}
  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.inner.executeQuery<R>(query)
  }
  streamQuery<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize)
  }
}

/** A driver that wraps the answering driver's connections, and does nothing else. */
class PassingDriver implements Driver {
  readonly #inner = new AnsweringDriver()
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return new PassingConnection(await this.#inner.acquireConnection())
  }
  async beginTransaction(): Promise<void> {}
  async commitTransaction(): Promise<void> {}
  async rollbackTransaction(): Promise<void> {}
  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await this.#inner.releaseConnection((connection as PassingConnection).inner)
  }
  async destroy(): Promise<void> {}
}

/**
 * {@link answeringDialect} behind a driver that only wraps its connections, and a compiler subclass that adds
 * nothing: no library, just other classes at Kysely's call sites, as any driver that wraps another's has.
 */
export function passingDialect(): Dialect {
  class Compiler extends PostgresQueryCompiler {}
  return { ...answeringDialect(), createDriver: () => new PassingDriver(), createQueryCompiler: () => new Compiler() }
}

/**
 * The clock of the in-process benchmarks: this process's CPU time (user + system, all threads: GC
 * included), in ms. CPU time, unlike wall time, does not grow when other processes take the cores.
 */
export const cpuNow = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

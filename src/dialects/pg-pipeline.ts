/** A node-postgres Client's query method, as kysely-rw calls it. */
export type QueryFn = (...args: unknown[]) => Promise<unknown>

/**
 * What pipelining needs of node-postgres's Client: its `pipeline` option (pg 8.23 and later),
 * switched on only while the client is idle and held by kysely-rw, and the queues that say it is idle.
 */
interface PipeliningClient {
  pipeline?: unknown
  readyForQuery?: unknown
  _queryQueue?: unknown
  _sentQueryQueue?: unknown
  connection?: { stream?: { cork?(): void; uncork?(): void } }
}

/** True when `client` can send two queries in one round trip now: it pipelines, and nothing is in flight. */
export function canPipeline(client: unknown): boolean {
  return (client as PipeliningClient).pipeline === false && isIdle(client)
}

/** True when nothing sent or queued on `client` (a node-postgres Client) is unanswered. */
export function isIdle(client: unknown): boolean {
  const c = client as PipeliningClient
  return (
    c.readyForQuery === true &&
    Array.isArray(c._sentQueryQueue) &&
    c._sentQueryQueue.length === 0 &&
    Array.isArray(c._queryQueue) &&
    c._queryQueue.length === 0
  )
}

/**
 * Sends a statement and a second one right behind it, before the first is answered: one round trip. Each
 * goes with its own Sync, so the first is committed (autocommit) before the second starts, and a failure of
 * the first does not touch the second. The client is in pipeline mode until both are answered; nothing
 * else can use it meanwhile, as it is checked out to the caller. Returns both outcomes.
 */
export function pipelined<A, B>(
  client: unknown,
  first: () => Promise<A>,
  second: () => Promise<B>,
): Promise<[PromiseSettledResult<A>, PromiseSettledResult<B>]> {
  const c = client as PipeliningClient
  const stream = c.connection?.stream
  c.pipeline = true
  // One write for both statements' messages, where the socket allows it.
  stream?.cork?.()
  let pair: Promise<[PromiseSettledResult<A>, PromiseSettledResult<B>]>
  try {
    pair = Promise.allSettled([first(), second()])
  } catch (error) {
    c.pipeline = false
    throw error
  } finally {
    stream?.uncork?.()
  }
  return pair.finally(() => {
    c.pipeline = false
  })
}

/** Runs a query object (pg's `Query` or a subclass) on `query`, settling with the object once it is answered. */
export function submitted<Q extends { callback?: ((error: unknown, result: unknown) => void) | undefined }>(
  query: QueryFn,
  object: Q,
): Promise<Q> {
  return new Promise<Q>((resolve, reject) => {
    object.callback = (error) => (error ? reject(error) : resolve(object))
    void query(object)
  })
}

import { redactConnectionString } from '../errors.js'

/** Host, port and database of a connection string or pool config; never user or password. */
export function describeNode(config: string | Record<string, unknown>): string {
  if (typeof config === 'string') return redactConnectionString(config)
  const url = config.connectionString ?? config.uri
  if (typeof url === 'string') return redactConnectionString(url)
  const host = config.host ?? config.socketPath ?? 'localhost'
  const port = config.port ? `:${String(config.port)}` : ''
  const db = config.database ? `/${String(config.database)}` : ''
  return `${String(host)}${port}${db}`
}

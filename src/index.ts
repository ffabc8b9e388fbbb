export { type Backends, createBackends, type Session } from './backends.js'
export type {
  BackendConnectionBuilder,
  BackendTransactionBuilder,
  CanRead,
  CanReadTransaction,
  CheckedRawBuilder,
  ControlledTransactionStarter,
  ReadBackend,
  ReadControlledTransaction,
  ReadTransaction,
  SchemaOf,
  WriteBackend,
  WriteControlledTransaction,
  WriteTransaction,
} from './capability.js'
export type {
  BackendsConfig,
  MysqlBackendsConfig,
  PostgresBackendsConfig,
} from './config.js'
export type { DialectName } from './dialects/dialect.js'
export type {
  MysqlNodeConfig,
  MysqlPoolOptions,
  NodeConfig,
  PostgresNodeConfig,
  PostgresPoolConfig,
} from './dialects/node-config.js'
export type { ReadOnlyEnforcement } from './driver/node.js'
export {
  BackendsDestroyedError,
  ConfigurationError,
  InvalidSessionTokenError,
  NoReplicaAvailableError,
  NotAReadStatementError,
  PrimaryUnavailableError,
  type StatementKind,
  TransactionEscapeError,
  WriteOnReadBackendError,
  WriteOutcomeUnknownError,
} from './errors.js'
export type {
  BackendEvent,
  BackendStats,
  DrainReason,
  FallbackReason,
  ReplicaState,
  ReplicaStatus,
} from './events.js'
export { type FromKyselyOptions, fromKysely } from './from-kysely.js'
export type { BackendMigratorProps } from './migrations/migrator.js'
export type { QueryContext, ServerInfo } from './observability/query-context.js'
export type { BackendLogConfig, BackendLogDetails, BackendLogEvent } from './observability/query-log.js'
export { QUERY_CHANNEL, type TracingOptions } from './observability/tracing.js'
export { type ReadSql, readSql } from './read-sql.js'
export { asReadonlyKysely } from './readonly-kysely.js'
export type { ReplicaCandidate, ReplicaSelection } from './routing/strategies.js'

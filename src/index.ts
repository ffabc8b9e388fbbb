export { type Backends, type BackendsConfig, createBackends } from './backends.js'
export type {
  BackendConnectionBuilder,
  BackendTransactionBuilder,
  CanRead,
  ControlledTransactionStarter,
  ReadBackend,
  ReadControlledTransaction,
  SchemaOf,
  WriteBackend,
  WriteControlledTransaction,
} from './capability.js'
export type { DialectName, NodeConfig } from './dialects/dialect.js'
export type { ReadOnlyEnforcement } from './driver/node.js'
export {
  ConfigurationError,
  NotAReadStatementError,
  type StatementKind,
  TransactionEscapeError,
  WriteOnReadBackendError,
} from './errors.js'
export { type Classification, classify } from './guard/classify.js'
export { type ReadSql, readSql } from './read-sql.js'

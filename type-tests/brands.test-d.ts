/**
 * The capability brands: a replica handle and a primary handle are different types, and neither
 * passes for the other. `CanRead` is what both are.
 */
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import type { CanRead, ReadBackend, WriteBackend } from '../src/index.js'
import { type AppDB, canRead, needsCanRead, needsRead, needsWrite, read, write } from './schema.js'

// --- what compiles ------------------------------------------------------------------------------

expectType<ReadBackend<AppDB>>(read)
expectType<WriteBackend<AppDB>>(write)
needsRead(read)
needsWrite(write)

// Both backends are CanRead.
expectAssignable<CanRead<AppDB>>(read)
expectAssignable<CanRead<AppDB>>(write)
needsCanRead(read)
needsCanRead(write)
needsCanRead(canRead)

// --- what must not compile ----------------------------------------------------------------------

// A replica, or anything that merely reads, where the primary is required.
expectError(needsWrite(read))
expectError(needsWrite(canRead))
expectNotAssignable<WriteBackend<AppDB>>(read)
expectNotAssignable<WriteBackend<AppDB>>(canRead)

// The primary where a replica is demanded (keeps replica-only work off the primary).
expectError(needsRead(write))
expectNotAssignable<ReadBackend<AppDB>>(write)
// A CanRead may be the primary, so it is not a ReadBackend either.
expectError(needsRead(canRead))
expectNotAssignable<ReadBackend<AppDB>>(canRead)

// Assignment, both ways.
declare let readVar: ReadBackend<AppDB>
declare let writeVar: WriteBackend<AppDB>
expectError((readVar = write))
expectError((writeVar = read))
// (and the same assignments of the right kind compile)
readVar = read
writeVar = write

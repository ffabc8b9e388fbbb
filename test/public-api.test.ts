// What `import … from 'kysely-rw'` gives at run time. A name exported here is one users may depend on, so it must
// be one the guides document; internals (the guard's classifier, lexers) stay importable only from src/.
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const guides = [
  readFileSync(path.join(root, 'README.md'), 'utf8'),
  ...readdirSync(path.join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => readFileSync(path.join(root, 'docs', name), 'utf8')),
].join('\n')

describe('the package entry point', () => {
  it('exports exactly the documented run-time names', () => {
    expect(Object.keys(api).sort()).toEqual([
      'BackendsDestroyedError',
      'ConfigurationError',
      'InvalidSessionTokenError',
      'NoReplicaAvailableError',
      'NotAReadStatementError',
      'PrimaryUnavailableError',
      'QUERY_CHANNEL',
      'TransactionEscapeError',
      'WriteOnReadBackendError',
      'WriteOutcomeUnknownError',
      'asReadonlyKysely',
      'createBackends',
      'fromKysely',
      'readSql',
    ])
  })

  // As code: `name`, `name(…)` or `name<…>`, not as part of a path such as `src/guard/classify.ts`.
  it.each(Object.keys(api))('%s is named in README.md or docs/', (name) => {
    expect(guides).toMatch(new RegExp(`\`${name}[\`(<]`))
  })
})

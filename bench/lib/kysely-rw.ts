// kysely-rw as its users run it: the package's dist/, compiled by tsc (`npm run bench` builds it first).
// Through tsx, src/ carries esbuild's keepNames wrappers (a defineProperty on every closure made per query),
// which cost the write path about 0.7 µs per query in-process that no user of the package pays.
// KYSELY_RW_BENCH_SRC=1 measures src/ instead, for a run without a build.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type * as ClassifyModule from '../../src/guard/classify.js'
import type * as ScopeModule from '../../src/guard/transaction-scope.js'
import type * as KyselyRw from '../../src/index.js'

const fromSrc = process.env.KYSELY_RW_BENCH_SRC === '1'
const root = fromSrc ? '../../src' : '../../dist'

if (!fromSrc && !existsSync(fileURLToPath(new URL(`${root}/index.js`, import.meta.url)))) {
  throw new Error(
    'bench: dist/ is missing; run `npm run build` first (npm run bench does), or set KYSELY_RW_BENCH_SRC=1',
  )
}

/** Which build of kysely-rw the benchmarks measure, for RESULTS.md. */
export const MEASURED_BUILD = fromSrc ? 'src/ through tsx (KYSELY_RW_BENCH_SRC=1)' : 'dist/ (tsc output, as published)'

const load = <T>(module: string): Promise<T> => import(`${root}/${module}`) as Promise<T>

export const { createBackends, readSql } = await load<typeof KyselyRw>('index.js')
export const { classify } = await load<typeof ClassifyModule>('guard/classify.js')
export const { watchedTransactions } = await load<typeof ScopeModule>('guard/transaction-scope.js')
export type { BackendEvent, Backends, BackendsConfig } from '../../src/index.js'

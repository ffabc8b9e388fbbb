// Benchmark 2: what kysely-rw's types cost the compiler. A generated app (a 200-table schema, 1,000
// data-access functions and the code that calls them) in two variants whose text differs only in the
// parameter types: kysely-rw (`CanRead<DB>` for reads, `WriteBackend<DB>` for writes and transactions,
// callers passing `db.read` / `db.write`) and plain Kysely (`Kysely<DB>` everywhere, callers passing one
// `Kysely<DB>`). Both are checked with `tsc --extendedDiagnostics` on TypeScript 5.9 and on TypeScript 7.
// kysely-rw is consumed as users get it: its emitted declarations, not its sources.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { errorMessage, execFileAsync, fmt, fmtInt, goal, type Headline, log, median, ratio, table } from './util.js'

export const TYPECHECK = {
  tables: 200,
  functions: 1000,
  files: 10,
  /** Runs per variant and compiler, alternating variants; check time is the median. */
  runs: { ts5: 2, ts7: 3 },
  goal: 1.15,
}

type Variant = 'kysely-rw' | 'plain Kysely'
const VARIANTS: readonly Variant[] = ['plain Kysely', 'kysely-rw']

interface Compiler {
  readonly name: string
  readonly version: string
  /** argv before `-p <dir>` */
  readonly command: readonly string[]
  readonly runs: number
  readonly note: string
}

export interface Measurement {
  readonly checkSeconds: number[]
  readonly totalSeconds: number[]
  /** CPU time of the whole compiler process (all threads, and its children), from this process's cutime/cstime. */
  readonly cpuSeconds: number[]
  readonly instantiations: number
  readonly types: number
  readonly memoryKb: number
}

export interface CompilerResult {
  readonly compiler: string
  readonly note: string
  readonly variants: Record<Variant, Measurement>
}

export interface TypecheckResult {
  readonly lines: number
  readonly compilers: CompilerResult[]
}

export async function runTypecheck(root: string, benchDir: string): Promise<TypecheckResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kysely-rw-typecheck-'))
  try {
    // The generated app resolves `kysely` (and @types/node) through the repository's node_modules.
    await symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
    await emitDeclarations(root, path.join(dir, 'kysely-rw'))
    let lines = 0
    for (const variant of VARIANTS) lines = await generate(path.join(dir, slug(variant)), variant)

    const ts5 = path.join(root, 'node_modules', 'typescript')
    const ts7 = path.join(benchDir, 'ts7', 'node_modules', 'typescript')
    const compilers: Compiler[] = [
      {
        name: `TypeScript ${await versionAt(ts5)}`,
        version: await versionAt(ts5),
        command: [process.execPath, path.join(ts5, 'lib', 'tsc.js')],
        runs: TYPECHECK.runs.ts5,
        note: '`tsc --extendedDiagnostics`',
      },
      {
        name: `TypeScript ${await versionAt(ts7)}`,
        version: await versionAt(ts7),
        command: [process.execPath, path.join(ts7, 'bin', 'tsc'), '--singleThreaded'],
        runs: TYPECHECK.runs.ts7,
        note:
          '`tsc --extendedDiagnostics --singleThreaded` (the native compiler; one thread, for stable times on 2 cores). ' +
          'Its report has check time, instantiations, types and memory like 5.9, but no I/O or program times and no ' +
          'relation cache sizes',
      },
    ]
    const results: CompilerResult[] = []
    for (const compiler of compilers) {
      const runs: Record<Variant, Run[]> = { 'kysely-rw': [], 'plain Kysely': [] }
      for (let i = 0; i < compiler.runs; i++) {
        // Alternate which variant goes first.
        const order = i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()
        for (const variant of order) runs[variant].push(await check(compiler, path.join(dir, slug(variant))))
      }
      const measure = (variant: Variant): Measurement => {
        const list = runs[variant]
        return {
          checkSeconds: list.map((r) => r.check),
          totalSeconds: list.map((r) => r.total),
          cpuSeconds: list.map((r) => r.cpu),
          instantiations: median(list.map((r) => r.instantiations)),
          types: median(list.map((r) => r.types)),
          memoryKb: median(list.map((r) => r.memoryKb)),
        }
      }
      const result = {
        compiler: compiler.name,
        note: compiler.note,
        variants: { 'kysely-rw': measure('kysely-rw'), 'plain Kysely': measure('plain Kysely') },
      }
      results.push(result)
      const rw = result.variants['kysely-rw']
      const plain = result.variants['plain Kysely']
      log(
        `typecheck ${compiler.name}: check ${fmt(median(rw.checkSeconds))} s vs ${fmt(median(plain.checkSeconds))} s, ` +
          `instantiations ${fmtInt(rw.instantiations)} vs ${fmtInt(plain.instantiations)}`,
      )
    }
    return { lines, compilers: results }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const slug = (variant: Variant) => (variant === 'kysely-rw' ? 'rw' : 'plain')

async function versionAt(dir: string): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  return (JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version
}

async function emitDeclarations(root: string, outDir: string): Promise<void> {
  const tsc = path.join(root, 'node_modules', 'typescript', 'lib', 'tsc.js')
  const args = [
    tsc,
    '-p',
    path.join(root, 'tsconfig.build.json'),
    '--outDir',
    outDir,
    '--emitDeclarationOnly',
    '--sourceMap',
    'false',
  ]
  try {
    await execFileAsync(process.execPath, args, { cwd: root, maxBuffer: 16 * 2 ** 20 })
  } catch (error) {
    // tsc emits declarations despite type errors; a missing index.d.ts is what makes this benchmark impossible.
    const { access } = await import('node:fs/promises')
    await access(path.join(outDir, 'index.d.ts')).catch(() => {
      throw new Error(`emitting kysely-rw's declarations failed: ${errorMessage(error)}`)
    })
    log(
      `warning: tsc reported errors while emitting kysely-rw's declarations (src/ being edited?); measuring what it emitted`,
    )
  }
}

interface Run {
  check: number
  total: number
  cpu: number
  instantiations: number
  types: number
  memoryKb: number
}

async function check(compiler: Compiler, project: string): Promise<Run> {
  const [file, ...args] = compiler.command as [string, ...string[]]
  let stdout: string
  const cpuBefore = await childrenCpuSeconds()
  try {
    ;({ stdout } = await execFileAsync(file, [...args, '-p', project, '--extendedDiagnostics'], {
      maxBuffer: 64 * 2 ** 20,
    }))
  } catch (error) {
    const out = (error as { stdout?: string }).stdout ?? ''
    throw new Error(
      `${compiler.name} found errors in the generated ${path.basename(project)} app:\n${out.split('\n').slice(0, 20).join('\n')}`,
    )
  }
  const number = (label: string) => {
    const match = new RegExp(`^${label}:\\s+([\\d.,]+)`, 'm').exec(stdout)
    if (!match?.[1]) throw new Error(`${compiler.name} printed no "${label}":\n${stdout}`)
    return Number(match[1].replaceAll(',', ''))
  }
  return {
    check: number('Check time'),
    total: number('Total time'),
    cpu: (await childrenCpuSeconds()) - cpuBefore,
    instantiations: number('Instantiations'),
    types: number('Types'),
    memoryKb: number('Memory used'),
  }
}

/**
 * CPU seconds of this process's children that have ended (/proc/self/stat cutime + cstime, in clock ticks
 * of 10 ms). Unlike wall time, it does not grow when other processes take the cores.
 */
async function childrenCpuSeconds(): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const stat = await readFile('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 16 and 17 of proc(5); fields[0] is field 3.
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS
}
const CLOCK_TICKS = 100

// ---------------------------------------------------------------------------------------------
// The generated app

const pad = (n: number) => String(n).padStart(3, '0')

function schema(): string {
  const out = ["import type { ColumnType, Generated } from 'kysely'", '']
  for (let t = 0; t < TYPECHECK.tables; t++) {
    out.push(
      `export interface T${pad(t)} {`,
      '  id: Generated<number>',
      '  name: string',
      "  status: 'active' | 'inactive' | 'banned'",
      '  amount: number',
      '  ref_id: number | null',
      '  note: string | null',
      '  created_at: ColumnType<Date, string | undefined, never>',
      '  flag: Generated<boolean>',
      '}',
    )
  }
  out.push('', 'export interface DB {')
  for (let t = 0; t < TYPECHECK.tables; t++) out.push(`  t${pad(t)}: T${pad(t)}`)
  out.push('}', '')
  return out.join('\n')
}

type Kind = 'readJoin' | 'readPk' | 'insert' | 'update' | 'delete' | 'transaction'
const KINDS: readonly Kind[] = [
  'readJoin',
  'readJoin',
  'readJoin',
  'readPk',
  'readPk',
  'insert',
  'insert',
  'update',
  'delete',
  'transaction',
]
const isRead = (kind: Kind) => kind === 'readJoin' || kind === 'readPk'

function fn(i: number, variant: Variant): { kind: Kind; text: string } {
  const kind = KINDS[i % KINDS.length] as Kind
  const t = `t${pad(i % TYPECHECK.tables)}`
  const o = `t${pad((i * 7 + 3) % TYPECHECK.tables)}`
  const param = variant === 'plain Kysely' ? 'Kysely<DB>' : isRead(kind) ? 'CanRead<DB>' : 'WriteBackend<DB>'
  const name = `f${String(i).padStart(4, '0')}`
  const values = `{ name, status: 'active', amount: ${i}, ref_id: null, note: null }`
  const body: Record<Kind, string> = {
    readJoin: [
      `export async function ${name}(db: ${param}, min: number) {`,
      `  return db.selectFrom('${t}').innerJoin('${o} as o', 'o.id', '${t}.ref_id')`,
      `    .select(['${t}.id', '${t}.name', 'o.amount as other_amount', 'o.status'])`,
      `    .where('${t}.status', '=', 'active').where('${t}.amount', '>', min)`,
      `    .orderBy('${t}.created_at', 'desc').limit(20).execute()`,
      '}',
    ].join('\n'),
    readPk: [
      `export async function ${name}(db: ${param}, id: number) {`,
      `  return db.selectFrom('${t}').selectAll().where('id', '=', id).executeTakeFirst()`,
      '}',
    ].join('\n'),
    insert: [
      `export async function ${name}(db: ${param}, name: string) {`,
      `  return db.insertInto('${t}').values(${values}).returning(['id', 'created_at']).executeTakeFirstOrThrow()`,
      '}',
    ].join('\n'),
    update: [
      `export async function ${name}(db: ${param}, id: number) {`,
      `  return db.updateTable('${t}').set((eb) => ({ amount: eb('amount', '+', 1), note: 'seen' })).where('id', '=', id).executeTakeFirst()`,
      '}',
    ].join('\n'),
    delete: [
      `export async function ${name}(db: ${param}, id: number) {`,
      `  return db.deleteFrom('${t}').where('id', '=', id).where('status', '=', 'banned').executeTakeFirst()`,
      '}',
    ].join('\n'),
    transaction: [
      `export async function ${name}(db: ${param}, name: string) {`,
      '  return db.transaction().execute(async (tx) => {',
      `    const { id } = await tx.insertInto('${t}').values(${values}).returning('id').executeTakeFirstOrThrow()`,
      `    await tx.updateTable('${o}').set({ ref_id: id }).where('id', '=', id).execute()`,
      `    return tx.selectFrom('${t}').select(['id', 'name', 'amount']).where('id', '=', id).executeTakeFirstOrThrow()`,
      '  })',
      '}',
    ].join('\n'),
  }
  return { kind, text: body[kind] }
}

async function generate(dir: string, variant: Variant): Promise<number> {
  await mkdir(dir, { recursive: true })
  const rw = variant === 'kysely-rw'
  const files: Record<string, string> = {
    'tsconfig.json': JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          types: ['node'],
          strict: true,
          skipLibCheck: true,
          noEmit: true,
        },
        include: ['*.ts'],
      },
      null,
      2,
    ),
    'schema.ts': schema(),
  }
  const perFile = TYPECHECK.functions / TYPECHECK.files
  const app: string[] = [
    rw ? "import type { Backends } from '../kysely-rw/index.js'" : "import type { Kysely } from 'kysely'",
    "import type { DB } from './schema.js'",
  ]
  for (let f = 0; f < TYPECHECK.files; f++) {
    const lines = [
      rw
        ? "import type { CanRead, WriteBackend } from '../kysely-rw/index.js'"
        : "import type { Kysely } from 'kysely'",
      "import type { DB } from './schema.js'",
      '',
    ]
    const calls: string[] = []
    for (let i = f * perFile; i < (f + 1) * perFile; i++) {
      const { kind, text } = fn(i, variant)
      lines.push(text, '')
      const name = `d${f}.f${String(i).padStart(4, '0')}`
      const arg =
        kind === 'readJoin' || kind === 'readPk' || kind === 'update' || kind === 'delete' ? String(i) : `'n${i}'`
      if (isRead(kind)) {
        calls.push(`  await ${name}(${rw ? 'db.read' : 'db'}, ${arg})`)
        // Reads are also called inside a write transaction, on its `tx`.
        if (i % 5 === 0)
          calls.push(`  await ${rw ? 'db.write' : 'db'}.transaction().execute((tx) => ${name}(tx, ${arg}))`)
      } else {
        calls.push(`  await ${name}(${rw ? 'db.write' : 'db'}, ${arg})`)
      }
    }
    files[`dal${f}.ts`] = lines.join('\n')
    app.splice(2, 0, `import * as d${f} from './dal${f}.js'`)
    app.push('', `export async function app${f}(db: ${rw ? 'Backends<DB>' : 'Kysely<DB>'}) {`, ...calls, '}')
  }
  files['app.ts'] = `${app.join('\n')}\n`
  // Proof that the types are live in both variants (an unresolved import would make them \`any\` and
  // the check cheap): each @ts-expect-error must meet an error, or the compiler fails the run.
  files['must-fail.ts'] = [
    rw ? "import type { Backends } from '../kysely-rw/index.js'" : "import type { Kysely } from 'kysely'",
    "import type { DB } from './schema.js'",
    ...(rw ? ["import { f0005 } from './dal0.js'"] : []),
    '',
    `export async function mustFail(db: ${rw ? 'Backends<DB>' : 'Kysely<DB>'}) {`,
    '  // @ts-expect-error no such column',
    `  await ${rw ? 'db.read' : 'db'}.selectFrom('t000').select('nope').execute()`,
    ...(rw
      ? [
          '  // @ts-expect-error a write function does not accept a read backend',
          "  await f0005(db.read, 'x')",
          '  // @ts-expect-error a read backend has no insertInto',
          "  db.read.insertInto('t000')",
        ]
      : []),
    '}',
    '',
  ].join('\n')
  let lines = 0
  for (const [name, text] of Object.entries(files)) {
    await writeFile(path.join(dir, name), text)
    if (name.endsWith('.ts')) lines += text.split('\n').length
  }
  return lines
}

// ---------------------------------------------------------------------------------------------

export function renderTypecheck(result: TypecheckResult): string {
  const out: string[] = []
  out.push(
    `A generated app of ${result.lines.toLocaleString('en-US')} lines per variant: a ${TYPECHECK.tables}-table schema, ` +
      `${TYPECHECK.functions.toLocaleString('en-US')} data-access functions in ${TYPECHECK.files} files ` +
      '(30% joins, 20% primary-key reads, 20% inserts with `returning`, 10% updates, 10% deletes, 10% transactions that ' +
      'insert, update and read back) and an app that calls each of them (and every fifth read again inside a write ' +
      'transaction, on its `tx`), plus a file of `@ts-expect-error` lines proving the types are live (a misuse of ' +
      'kysely-rw must fail to compile). The two variants differ only in the parameter types: kysely-rw uses `CanRead<DB>` ' +
      'for reads and `WriteBackend<DB>` for writes and transactions, and callers pass `db.read` / `db.write` of ' +
      '`Backends<DB>`; plain Kysely uses `Kysely<DB>` throughout. kysely-rw is consumed through its emitted ' +
      'declarations, as users get it; `skipLibCheck` on, as in most apps. Check time (wall, as the compiler reports ' +
      'it) is the median of the runs; compiler CPU is the CPU time of the whole compiler process, which other ' +
      "processes' load does not inflate; instantiations, types and memory as reported by the compiler. " +
      `Goal: at most ${TYPECHECK.goal}× plain Kysely.\n`,
  )
  for (const c of result.compilers) {
    const rw = c.variants['kysely-rw']
    const plain = c.variants['plain Kysely']
    const r = {
      check: median(rw.checkSeconds) / median(plain.checkSeconds),
      inst: rw.instantiations / plain.instantiations,
      mem: rw.memoryKb / plain.memoryKb,
      types: rw.types / plain.types,
    }
    out.push(`\n#### ${c.compiler}: ${c.note}, ${rw.checkSeconds.length} runs per variant\n`)
    const row = (label: string, m: Measurement) => [
      label,
      `${fmt(median(m.checkSeconds))} (${m.checkSeconds.map((s) => fmt(s)).join(', ')})`,
      fmt(median(m.totalSeconds)),
      fmt(median(m.cpuSeconds)),
      fmtInt(m.instantiations),
      fmtInt(m.types),
      fmtInt(m.memoryKb / 1024),
    ]
    out.push(
      table(
        ['variant', 'check time s (runs)', 'total time s', 'compiler CPU s', 'instantiations', 'types', 'memory MiB'],
        [
          row('plain Kysely (`Kysely<DB>`)', plain),
          row('kysely-rw (`CanRead` / `WriteBackend`)', rw),
          [
            '**ratio kysely-rw ÷ plain**',
            ratio(r.check),
            ratio(median(rw.totalSeconds) / median(plain.totalSeconds)),
            ratio(median(rw.cpuSeconds) / median(plain.cpuSeconds)),
            ratio(r.inst),
            ratio(r.types),
            ratio(r.mem),
          ],
        ],
      ),
    )
    out.push(
      `\nGoal ≤ ${TYPECHECK.goal}×: check time ${goal(r.check <= TYPECHECK.goal)} (${ratio(r.check)}), ` +
        `instantiations ${goal(r.inst <= TYPECHECK.goal)} (${ratio(r.inst)}), memory ${goal(r.mem <= TYPECHECK.goal)} (${ratio(r.mem)}).`,
    )
  }
  return out.join('\n')
}

export function typecheckMisses(result: TypecheckResult): string[] {
  return result.compilers.flatMap((c) => {
    const rw = c.variants['kysely-rw']
    const plain = c.variants['plain Kysely']
    const checks: [string, number][] = [
      ['check time', median(rw.checkSeconds) / median(plain.checkSeconds)],
      ['instantiations', rw.instantiations / plain.instantiations],
      ['memory', rw.memoryKb / plain.memoryKb],
    ]
    return checks
      .filter(([, r]) => r > TYPECHECK.goal)
      .map(([what, r]) => `type-check ${what} on ${c.compiler}: ${ratio(r)} plain Kysely (goal ≤ ${TYPECHECK.goal}×)`)
  })
}

export function typecheckHeadlines(result: TypecheckResult): Headline[] {
  return result.compilers.map((c) => {
    const rw = c.variants['kysely-rw']
    const plain = c.variants['plain Kysely']
    const check = median(rw.checkSeconds) / median(plain.checkSeconds)
    const cpu = median(rw.cpuSeconds) / median(plain.cpuSeconds)
    const inst = rw.instantiations / plain.instantiations
    const mem = rw.memoryKb / plain.memoryKb
    return {
      benchmark: `type check, ${c.compiler}: kysely-rw ÷ plain Kysely`,
      measured: `check time ${ratio(check, 2)} (compiler CPU ${ratio(cpu, 2)}), instantiations ${ratio(inst, 2)}, memory ${ratio(mem, 2)}`,
      goal: `≤ ${TYPECHECK.goal}×`,
      met: check <= TYPECHECK.goal && inst <= TYPECHECK.goal && mem <= TYPECHECK.goal,
    }
  })
}

/**
 * Tests the oldest TypeScript the README promises (FLOOR) the way a user meets it: through the built package.
 *
 * 1. dist/*.d.ts, with `skipLibCheck: false`: the declarations themselves, and Kysely's, compile on FLOOR
 *    (type-tests/floor/tsconfig.declarations.json).
 * 2. The type tests, as a consumer: scripts/ts7-type-tests.ts turns type-tests/*.test-d.ts into plain TypeScript
 *    (`expectError` -> `@ts-expect-error`), and they are copied into type-tests/floor/generated/ (gitignored) with
 *    every import of src/index.js replaced by `kysely-rw`, which resolves through the package's own `exports` to
 *    dist/index.d.ts (type-tests/floor/tsconfig.json). So what must compile compiles, and what must not still
 *    does not, on FLOOR.
 *
 * `--below` also runs both on the minor versions under FLOOR and expects each to fail (it prints how): the floor
 * is not lower than stated. Not part of CI: a failure there means the README can promise more, not a bug.
 *
 * TypeScript is installed on demand into .tools/ts<major><minor> (gitignored), never into node_modules: the root
 * keeps TypeScript 5.9 for the build, tsd and TypeDoc.
 *
 * Usage: tsx scripts/ts-floor.ts [--no-build] [--below]
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The README's "TypeScript 5.5 or later". 5.4 is Kysely 0.29's floor; a WriteBackend of a larger schema is not
 * assignable to one of a subset there (type-tests/subsetting.test-d.ts), which 5.5 accepts. */
const FLOOR = '5.5'
const BELOW = ['5.4', '5.3']

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const testsDir = path.join(root, 'type-tests')
const floorDir = path.join(testsDir, 'floor')
const generatedDir = path.join(floorDir, 'generated')
const srcIndex = path.join(root, 'src', 'index.js')
const win = process.platform === 'win32'
const bin = (dir: string, name: string) => path.join(dir, 'node_modules', '.bin', win ? `${name}.cmd` : name)

class FloorError extends Error {}

function main(): number {
  const args = process.argv.slice(2)
  if (!args.includes('--no-build')) run('npm', ['run', '--silent', 'build'])
  if (!existsSync(path.join(root, 'dist', 'index.d.ts'))) throw new FloorError('dist/ is missing: npm run build')
  run(bin(root, 'tsx'), [path.join('scripts', 'ts7-type-tests.ts'), '--generate-only'])
  const copied = copyAsConsumer()
  console.log(`ts floor: ${copied} files in ${path.relative(root, generatedDir)} import kysely-rw from dist/`)

  const floor = compile(FLOOR)
  if (!floor.passed) {
    console.log(floor.output)
    console.error(`ts floor: FAILED on TypeScript ${floor.version}, the floor the README states`)
    return 1
  }
  console.log(`ts floor: dist/*.d.ts and the type tests pass on TypeScript ${floor.version} (${floor.seconds} s)`)

  if (!args.includes('--below')) return 0
  let status = 0
  for (const minor of BELOW) {
    const below = compile(minor)
    if (below.passed) {
      console.error(`ts floor: TypeScript ${below.version} passes too: lower FLOOR and the README's floor`)
      status = 1
    } else console.log(`ts floor: TypeScript ${below.version} fails, as it should:\n${summary(below.output)}`)
  }
  return status
}

/** Both projects on TypeScript `minor`; `passed` only if both compile. */
function compile(minor: string): { version: string; passed: boolean; output: string; seconds: string } {
  const tsc = ensureTypeScript(minor)
  const version = run(tsc, ['--version'], { capture: true })
    .trim()
    .replace(/^Version /, '')
  const started = Date.now()
  let passed = true
  let output = ''
  for (const project of ['tsconfig.declarations.json', 'tsconfig.json']) {
    const result = spawnSync(tsc, ['--noEmit', '--pretty', 'false', '-p', path.join(floorDir, project)], {
      cwd: root,
      encoding: 'utf8',
      shell: win,
    })
    if (result.status !== 0) passed = false
    output += `${result.stdout}${result.stderr}`
  }
  return { version, passed, output: output.trim(), seconds: ((Date.now() - started) / 1000).toFixed(1) }
}

/** Errors per file, so that --below says in a few lines why a version fails. */
function summary(output: string): string {
  const perFile = new Map<string, number>()
  for (const match of output.matchAll(/^(\S[^(\n]*)\(\d+,\d+\): error/gm)) {
    const file = match[1] ?? ''
    perFile.set(file, (perFile.get(file) ?? 0) + 1)
  }
  const first = /^\S.*error TS\d+:.*$/m.exec(output)?.[0]
  return [...[...perFile].map(([file, count]) => `  ${count} error(s) in ${file}`), `  first: ${first}`].join('\n')
}

/**
 * Copies the generated type tests and what they import from type-tests/ into generated/, in the same layout so
 * that relative imports between them still hold; imports of src/index.js become the package's name.
 */
function copyAsConsumer(): number {
  rmSync(generatedDir, { recursive: true, force: true })
  const files = [
    'schema.ts',
    ...readdirSync(path.join(testsDir, 'codegen')).map((name) => path.join('codegen', name)),
    path.join('ts7', 'assertions.ts'),
    ...readdirSync(path.join(testsDir, 'ts7', 'generated')).map((name) => path.join('ts7', 'generated', name)),
  ].filter((file) => file.endsWith('.ts'))
  for (const file of files) {
    const from = path.join(testsDir, file)
    const to = path.join(generatedDir, file)
    mkdirSync(path.dirname(to), { recursive: true })
    if (file.startsWith('codegen')) {
      copyFileSync(from, to)
      continue
    }
    const text = readFileSync(from, 'utf8').replace(
      /(\bfrom\s+|\bimport\s*\(\s*)(['"])(\.[^'"]*)\2/g,
      (whole, before: string, quote: string, specifier: string) => {
        const target = path.resolve(path.dirname(from), specifier)
        if (target === srcIndex) return `${before}${quote}kysely-rw${quote}`
        if (target.startsWith(testsDir + path.sep)) return whole
        throw new FloorError(`type-tests/${file} imports ${specifier}: only src/index.js and type-tests/ can be mapped`)
      },
    )
    writeFileSync(to, text)
  }
  return files.length
}

/** Installs `typescript@~<minor>.0` into .tools/ts<major><minor> unless there, and returns its tsc. */
function ensureTypeScript(minor: string): string {
  const prefix = path.join(root, '.tools', `ts${minor.replace('.', '')}`)
  const tsc = bin(prefix, 'tsc')
  const manifest = path.join(prefix, 'node_modules', 'typescript', 'package.json')
  const installed = existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }) : null
  if (installed?.version.startsWith(`${minor}.`) && existsSync(tsc)) return tsc
  console.log(`ts floor: installing typescript@~${minor}.0 into ${path.relative(root, prefix)}`)
  mkdirSync(prefix, { recursive: true })
  const pkg = path.join(prefix, 'package.json')
  if (!existsSync(pkg)) writeFileSync(pkg, '{ "private": true }\n')
  run('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', `typescript@~${minor}.0`])
  if (!existsSync(tsc)) throw new FloorError(`npm install typescript@~${minor}.0 left no tsc in ${prefix}`)
  return tsc
}

function run(command: string, args: string[], options: { capture?: boolean } = {}): string {
  const result = spawnSync(command, args, {
    cwd: root,
    encoding: 'utf8',
    shell: win,
    stdio: options.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
  })
  if (result.status !== 0) {
    throw new FloorError(`${path.basename(command)} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`)
  }
  return result.stdout ?? ''
}

try {
  process.exitCode = main()
} catch (error) {
  if (!(error instanceof FloorError)) throw error
  console.error(`ts floor: ${error.message}`)
  process.exitCode = 1
}

/**
 * Checks the package as npm would publish it: builds dist/ (unless --no-build: `npm test` has just built it),
 * packs the tarball, checks that it holds only what users need and that every dist file comes from a src file
 * (the build empties dist/ first; this catches output that outlives its module), then runs publint and Are the
 * Types Wrong on the tarball.
 *
 * kysely-rw is ESM-only, like Kysely 0.29: attw runs with its `esm-only` profile, which skips the CommonJS
 * resolutions (`require` from node16/nodenext CJS and node10) that an ESM-only package fails by design.
 *
 * Usage: tsx scripts/check-package.ts [--no-build]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name: string) =>
  path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name)
const shell = process.platform === 'win32'

/** What the tarball may contain besides dist/. */
const allowedFiles = new Set(['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE'])
const requiredFiles = ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']

function run(command: string, args: string[], options: { capture?: boolean } = {}): string {
  const result = spawnSync(command, args, {
    cwd: root,
    encoding: 'utf8',
    shell,
    stdio: options.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
  })
  if (result.status !== 0) {
    throw new Error(`${path.basename(command)} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`)
  }
  return result.stdout ?? ''
}

function main() {
  if (!process.argv.includes('--no-build')) run('npm', ['run', '--silent', 'build'])
  if (!existsSync(path.join(root, 'dist', 'index.js'))) throw new Error('dist/ is missing: npm run build')

  const destination = mkdtempSync(path.join(tmpdir(), 'kysely-rw-pack-'))
  try {
    // --ignore-scripts: dist/ is built above; `prepack` builds for `npm publish`.
    const packed = JSON.parse(
      run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], { capture: true }),
    ) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[]
    const pack = packed[0]
    if (!pack) throw new Error('npm pack produced nothing')
    const tarball = path.join(destination, pack.filename)
    const files = pack.files.map((file) => file.path)

    const problems: string[] = []
    for (const file of files) {
      if (!file.startsWith('dist/') && !allowedFiles.has(file)) problems.push(`${file} should not be in the package`)
      if (file.startsWith('dist/')) {
        const source = file.replace(/^dist\//, 'src/').replace(/(\.d)?\.js$|\.d\.ts$/, '.ts')
        if (!/\.(js|d\.ts)$/.test(file)) problems.push(`${file}: only .js and .d.ts are built into dist/`)
        else if (!existsSync(path.join(root, source))) {
          problems.push(`${file} has no ${source} (stale build output: npm run build)`)
        }
      }
    }
    for (const file of requiredFiles) {
      if (!files.includes(file)) problems.push(`${file} is missing from the package`)
    }
    if (problems.length > 0) throw new Error(`package contents:\n  ${problems.join('\n  ')}`)
    console.log(
      `${pack.filename}: ${files.length} files, ${(pack.size / 1024).toFixed(1)} kB packed, ` +
        `${(pack.unpackedSize / 1024).toFixed(1)} kB unpacked`,
    )

    run(bin('publint'), ['run', tarball, '--strict'])
    run(bin('attw'), [tarball, '--profile', 'esm-only'])
  } finally {
    rmSync(destination, { recursive: true, force: true })
  }
}

try {
  main()
} catch (error) {
  console.error(`check:package: ${error instanceof Error ? error.message : error}`)
  process.exitCode = 1
}

/**
 * Checks the package as npm would publish it: builds dist/ (unless --no-build: `npm test` has just built it),
 * packs the tarball, checks that it holds only what users need and that every dist file comes from a src file
 * (the build empties dist/ first; this catches output that outlives its module), then runs publint and Are the
 * Types Wrong on the tarball.
 *
 * The packed README is read where the repository is not around it (the registry's page, an editor): each relative
 * link must point into the tarball, and each link into the repository (`<repository>/blob/main/…`) at a file that
 * exists. package.json must say where the repository, homepage and issue tracker are.
 *
 * kysely-rw is ESM-only, like Kysely 0.29: attw runs with its `esm-only` profile, which skips the CommonJS
 * resolutions (`require` from node16/nodenext CJS and node10) that an ESM-only package fails by design.
 *
 * Usage: tsx scripts/check-package.ts [--no-build]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { deadRelativeLinks, repositoryPaths } from './readme-links.js'

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

/** Where the package's page on the registry sends people: without these it shows no repository or issues link. */
function metadataProblems(manifest: Record<string, unknown>): string[] {
  const url = (value: unknown) =>
    typeof value === 'string' ? value : ((value as { url?: unknown } | undefined)?.url as string | undefined)
  const problems: string[] = []
  for (const field of ['repository', 'homepage', 'bugs']) {
    if (!url(manifest[field])) problems.push(`package.json has no ${field} URL`)
  }
  return problems
}

/** `git+https://host/owner/name.git` -> `https://host/owner/name`, the base of the README's absolute links. */
function webUrl(manifest: Record<string, unknown>): string | undefined {
  const repository = manifest.repository as { url?: string } | string | undefined
  const url = typeof repository === 'string' ? repository : repository?.url
  return url?.replace(/^git\+/, '').replace(/\.git$/, '')
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
    run('tar', ['-xzf', tarball, '-C', destination, 'package/package.json', 'package/README.md'])
    const manifest = JSON.parse(readFileSync(path.join(destination, 'package', 'package.json'), 'utf8'))
    const readme = readFileSync(path.join(destination, 'package', 'README.md'), 'utf8')
    problems.push(...metadataProblems(manifest))
    for (const link of deadRelativeLinks(readme, files)) {
      problems.push(
        `README.md:${link.line}: ${link.target} is not in the package; link to ${webUrl(manifest) ?? 'the repository'}/blob/main/…`,
      )
    }
    const repository = webUrl(manifest)
    if (repository !== undefined) {
      for (const link of repositoryPaths(readme, repository)) {
        if (!existsSync(path.join(root, link.path)))
          problems.push(`README.md:${link.line}: ${link.path} does not exist`)
      }
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

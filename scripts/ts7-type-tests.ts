/**
 * Runs the tsd type tests (type-tests/*.test-d.ts) on the native TypeScript 7 compiler, which has no compiler
 * API for tsd to drive.
 *
 * Each test file is rewritten into type-tests/ts7/generated/ (gitignored), never by hand:
 *
 *   expectError(expr)             ->  // @ts-expect-error
 *                                     ;(expr)                     joined onto one line: the directive covers
 *                                                                 the next line only
 *   expectType<T>(expr)           ->  expectType<T>()(expr)       identical types, see type-tests/ts7/assertions.ts
 *   expectNotAssignable<T>(expr)  ->  expectNotAssignable<T>()(expr)
 *   expectAssignable<T>(expr)     ->  unchanged
 *
 * `from 'tsd'` points at type-tests/ts7/assertions.ts and relative imports are re-pointed, so the generated files
 * use type-tests/schema.ts and src/ in place. Then TypeScript 7's tsc runs `tsc --noEmit -p type-tests/ts7`:
 * an `expectError` whose expression compiles leaves its directive unused, which is error TS2578.
 *
 * TypeScript 7 is installed on demand into .tools/ts7 (gitignored), never into node_modules: the root keeps
 * TypeScript 5.9's tsc for the build, tsd and TypeDoc.
 *
 * Usage: tsx scripts/ts7-type-tests.ts [--tsc <path>] [--generate-only]
 *   --tsc <path>      run this tsc instead (e.g. node_modules/.bin/tsc: the same files on TypeScript 5.9)
 *   --generate-only   write generated/ and stop
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const testsDir = path.join(root, 'type-tests')
const projectDir = path.join(testsDir, 'ts7')
const generatedDir = path.join(projectDir, 'generated')
const assertionsModule = path.join(projectDir, 'assertions.js')
const ts7Prefix = path.join(root, '.tools', 'ts7')

/** What was converted, for the summary line. */
const counts = { files: 0, expectType: 0, expectAssignable: 0, expectNotAssignable: 0, expectError: 0 }

class GenerateError extends Error {}

interface Edit {
  start: number
  end: number
  text: string
}

function main(): number {
  const args = process.argv.slice(2)
  const tscIndex = args.indexOf('--tsc')
  const tscArg = tscIndex >= 0 ? args[tscIndex + 1] : undefined
  if (tscIndex >= 0 && tscArg === undefined) throw new GenerateError('--tsc needs a path')

  const lineMaps = generate()
  console.log(
    `ts7 type tests: ${counts.files} files generated into ${path.relative(root, generatedDir)}: ` +
      `${counts.expectType} expectType, ${counts.expectError} expectError -> @ts-expect-error, ` +
      `${counts.expectAssignable} expectAssignable, ${counts.expectNotAssignable} expectNotAssignable`,
  )
  if (args.includes('--generate-only')) return 0

  const tsc = tscArg === undefined ? ensureTypeScript7() : path.resolve(tscArg)
  const version = spawnSync(tsc, ['--version'], { encoding: 'utf8' })
  if (version.status !== 0) throw new GenerateError(`cannot run ${tsc}: ${version.stderr || version.error}`)
  const started = Date.now()
  const run = spawnSync(tsc, ['--noEmit', '--pretty', 'false', '-p', path.relative(root, projectDir)], {
    cwd: root,
    encoding: 'utf8',
  })
  const output = `${run.stdout}${run.stderr}`.trim()
  if (output) console.log(withOriginalLines(output, lineMaps))
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`
  if (run.status !== 0) {
    console.error(`ts7 type tests FAILED on ${version.stdout.trim()} (${took})`)
    return 1
  }
  console.log(`ts7 type tests passed on ${version.stdout.trim()} (${took})`)
  return 0
}

/** Installs `typescript@7` into .tools/ts7 unless there, and returns its tsc. */
function ensureTypeScript7(): string {
  const tsc = path.join(ts7Prefix, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc')
  const manifest = path.join(ts7Prefix, 'node_modules', 'typescript', 'package.json')
  const installed = existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }) : null
  if (installed?.version.startsWith('7.') && existsSync(tsc)) return tsc
  console.log(`installing typescript@7 into ${path.relative(root, ts7Prefix)} (not node_modules: the root keeps 5.9)`)
  mkdirSync(ts7Prefix, { recursive: true })
  const pkg = path.join(ts7Prefix, 'package.json')
  if (!existsSync(pkg)) writeFileSync(pkg, '{ "private": true }\n')
  const install = spawnSync(
    'npm',
    ['install', '--prefix', ts7Prefix, '--no-audit', '--no-fund', '--loglevel=error', 'typescript@7'],
    { stdio: 'inherit', shell: process.platform === 'win32' },
  )
  if (install.status !== 0 || !existsSync(tsc)) throw new GenerateError('npm install typescript@7 failed')
  return tsc
}

/** Writes generated/ afresh; returns, per generated file, the original line of each generated line. */
function generate(): Map<string, { source: string; lines: number[] }> {
  rmSync(generatedDir, { recursive: true, force: true })
  mkdirSync(generatedDir, { recursive: true })
  const maps = new Map<string, { source: string; lines: number[] }>()
  const testFiles = readdirSync(testsDir)
    .filter((name) => name.endsWith('.test-d.ts'))
    .sort()
  if (testFiles.length === 0) throw new GenerateError(`no *.test-d.ts files in ${testsDir}`)
  for (const name of testFiles) {
    const sourcePath = path.join(testsDir, name)
    const text = readFileSync(sourcePath, 'utf8')
    const outName = name.replace(/\.test-d\.ts$/, '.ts')
    const header = `// Generated by scripts/ts7-type-tests.ts from type-tests/${name}; edit that file instead.\n`
    const { output, lines } = applyEdits(text, convert(sourcePath, text))
    writeFileSync(path.join(generatedDir, outName), header + output)
    maps.set(outName, { source: `type-tests/${name}`, lines: [0, 0, ...lines] })
    counts.files++
  }
  return maps
}

/** The edits that turn one tsd file into a plain TypeScript file. */
function convert(file: string, text: string): Edit[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const where = (node: ts.Node) =>
    `${path.relative(root, file)}:${sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1}`
  const edits: Edit[] = []
  /** Local name -> tsd's name, from `import { … } from 'tsd'`. */
  const tsdNames = new Map<string, string>()

  const repoint = (literal: ts.StringLiteralLike) => {
    const specifier = literal.text
    let target: string | undefined
    if (specifier === 'tsd') target = assertionsModule
    else if (specifier.startsWith('.')) target = path.resolve(path.dirname(file), specifier)
    if (target === undefined) return
    let relative = path.relative(generatedDir, target).split(path.sep).join('/')
    if (!relative.startsWith('.')) relative = `./${relative}`
    edits.push({ start: literal.getStart(sf), end: literal.end, text: `'${relative}'` })
  }

  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const specifier = node.moduleSpecifier
      if (ts.isStringLiteral(specifier)) {
        if (specifier.text === 'tsd' && ts.isImportDeclaration(node)) {
          const bindings = node.importClause?.namedBindings
          if (!bindings || !ts.isNamedImports(bindings)) throw new GenerateError(`${where(node)}: import tsd by name`)
          for (const element of bindings.elements) {
            tsdNames.set(element.name.text, (element.propertyName ?? element.name).text)
          }
        }
        repoint(specifier)
      }
      return
    }
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      repoint(node.argument.literal)
    }
    if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      repoint(node.arguments[0])
    }
    if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && tsdNames.has(node.expression.text)) {
      const assertion = tsdNames.get(node.expression.text)
      const [argument, ...more] = node.arguments
      if (argument === undefined || more.length > 0) throw new GenerateError(`${where(node)}: one argument expected`)
      switch (assertion) {
        case 'expectType':
        case 'expectNotAssignable': {
          if (node.typeArguments?.length !== 1) throw new GenerateError(`${where(node)}: ${assertion}<T>(…) expected`)
          // `expectType<T>(x)` -> `expectType<T>()(x)`: the call's own `(` sits right before its arguments.
          const paren = node.arguments.pos - 1
          if (text[paren] !== '(') throw new GenerateError(`${where(node)}: unexpected text before the arguments`)
          edits.push({ start: paren, end: paren, text: '()' })
          counts[assertion]++
          break
        }
        case 'expectAssignable':
          counts.expectAssignable++
          break
        case 'expectError':
          edits.push(expectErrorEdit(sf, node, argument, where(node)))
          counts.expectError++
          return // its argument is copied as it is; nested assertions would be lost
        default:
          throw new GenerateError(`${where(node)}: tsd's ${assertion} has no TypeScript 7 equivalent here yet`)
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return edits
}

/**
 * `expectError(expr)` as a statement -> `// @ts-expect-error` and `;(expr)` on the next line, with the expression
 * joined onto that one line (a directive covers only the line after it). The `;` keeps a statement that starts
 * with `(` from continuing the previous line in semicolon-free code.
 */
function expectErrorEdit(sf: ts.SourceFile, call: ts.CallExpression, argument: ts.Expression, where: string): Edit {
  const statement = call.parent
  if (
    !ts.isExpressionStatement(statement) ||
    !(ts.isBlock(statement.parent) || ts.isSourceFile(statement.parent) || ts.isModuleBlock(statement.parent))
  ) {
    throw new GenerateError(`${where}: expectError(…) must be a statement of its own`)
  }
  const text = sf.text
  const start = statement.getStart(sf)
  const lineStart = text.lastIndexOf('\n', start - 1) + 1
  const indent = text.slice(lineStart, start)
  if (!/^[ \t]*$/.test(indent)) throw new GenerateError(`${where}: expectError(…) must start its line`)
  const expression = oneLine(sf, argument, where)
  return {
    start,
    end: statement.end,
    text: `// @ts-expect-error: expectError at ${where}\n${indent};(${expression})`,
  }
}

/** The expression's text on one line; refuses what joining lines would change (comments, multi-line literals). */
function oneLine(sf: ts.SourceFile, expression: ts.Expression, where: string): string {
  const original = sf.text.slice(expression.getStart(sf), expression.end)
  if (!original.includes('\n')) return original
  const joined = original.replace(/[ \t]*\r?\n\s*/g, ' ')
  const tokens = (source: string) => {
    const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, source)
    const out: string[] = []
    for (let kind = scanner.scan(); kind !== ts.SyntaxKind.EndOfFileToken; kind = scanner.scan()) {
      if (kind === ts.SyntaxKind.WhitespaceTrivia || kind === ts.SyntaxKind.NewLineTrivia) continue
      if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) {
        throw new GenerateError(`${where}: move the comment out of the multi-line expectError(…)`)
      }
      out.push(`${kind}:${scanner.getTokenText()}`)
    }
    return out.join(' ')
  }
  // Same tokens, same text in each: only whitespace between tokens changed (a template or string spanning
  // lines would differ).
  if (tokens(original) !== tokens(joined)) {
    throw new GenerateError(`${where}: cannot join this expectError(…) onto one line; simplify it`)
  }
  return joined
}

/** Applies non-overlapping edits; `lines[i]` is the original (1-based) line of output line i + 1. */
function applyEdits(text: string, edits: Edit[]): { output: string; lines: number[] } {
  edits.sort((a, b) => a.start - b.start || a.end - b.end)
  let output = ''
  const lines: number[] = []
  let line = 1
  let at = 0
  const keep = (until: number) => {
    const chunk = text.slice(at, until)
    for (const char of chunk) {
      if (char === '\n') lines.push(line++)
    }
    output += chunk
    at = until
  }
  for (const edit of edits) {
    if (edit.start < at) throw new GenerateError('overlapping edits (an assertion inside another?)')
    keep(edit.start)
    const replaced = text.slice(edit.start, edit.end)
    const editLine = line
    for (const char of edit.text) {
      if (char === '\n') lines.push(editLine)
    }
    for (const char of replaced) {
      if (char === '\n') line++
    }
    output += edit.text
    at = edit.end
  }
  keep(text.length)
  lines.push(line)
  return { output, lines }
}

/** Adds the test file and line to each diagnostic of a generated file. */
function withOriginalLines(output: string, maps: Map<string, { source: string; lines: number[] }>): string {
  return output.replace(/type-tests[\\/]ts7[\\/]generated[\\/]([^(\s]+)\((\d+),(\d+)\)/g, (match, file, line) => {
    const map = maps.get(file)
    const original = map?.lines[Number(line)]
    return map && original ? `${match} [${map.source}:${original}]` : match
  })
}

try {
  process.exitCode = main()
} catch (error) {
  if (!(error instanceof GenerateError)) throw error
  console.error(`ts7 type tests: ${error.message}`)
  process.exitCode = 1
}

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const fixture = path.join(root, 'type-tests/messages/misuses.ts')

/** tsc's diagnostics for the fixture, by line: the first line of each message, as tsc prints it. */
function firstLines(): Map<number, string> {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'))
      },
    },
  )
  if (!config) throw new Error('tsconfig.json did not parse')
  const program = ts.createProgram([fixture], { ...config.options, noEmit: true })
  const lines = new Map<number, string>()
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    if (diagnostic.file?.fileName !== fixture || diagnostic.start === undefined) {
      throw new Error(`unexpected diagnostic: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`)
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
    const first = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n').split('\n')[0] ?? ''
    lines.set(line + 1, lines.has(line + 1) ? `${lines.get(line + 1)} | ${first}` : first)
  }
  return lines
}

const expected = readFileSync(fixture, 'utf8')
  .split('\n')
  .map((text, i) => ({ line: i + 1, code: text.trim(), hint: /\/\/ error: (.*)$/.exec(text)?.[1] }))
  .filter((entry): entry is { line: number; code: string; hint: string } => entry.hint !== undefined)

describe("a misuse's compile error says on its first line what to do", () => {
  const actual = firstLines()

  it('has a marked misuse for each case, each failing to compile', () => {
    expect(expected.length).toBeGreaterThanOrEqual(9)
    expect([...actual.keys()].sort((a, b) => a - b)).toEqual(expected.map((e) => e.line))
  })

  it.each(expected)('line $line: $hint', ({ line, hint }) => {
    expect(actual.get(line)).toContain(hint)
  })
})

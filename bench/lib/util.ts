// Small helpers shared by the benchmarks: statistics, formatting, timing.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export const execFileAsync = promisify(execFile)

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Quantile of an ascending-sorted array (linear interpolation); NaN when empty. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo] as number
  const b = sorted[hi] as number
  return a + (b - a) * (pos - lo)
}

export function quantile(values: readonly number[], q: number): number {
  return quantileSorted(
    [...values].sort((a, b) => a - b),
    q,
  )
}

export const median = (values: readonly number[]) => quantile(values, 0.5)

export function sum(values: readonly number[]): number {
  let total = 0
  for (const v of values) total += v
  return total
}

/** Fixed decimals; `—` for NaN or undefined. */
export function fmt(value: number | undefined | null, decimals = 2): string {
  if (value === undefined || value === null || Number.isNaN(value)) return '—'
  return value.toFixed(decimals)
}

export function fmtInt(value: number | undefined | null): string {
  if (value === undefined || value === null || Number.isNaN(value)) return '—'
  return Math.round(value).toLocaleString('en-US')
}

export function pct(value: number | undefined | null, decimals = 1): string {
  if (value === undefined || value === null || Number.isNaN(value)) return '—'
  return `${(value * 100).toFixed(decimals)}%`
}

/** `1.02×`; NaN as `—`. */
export function ratio(value: number | undefined | null, decimals = 3): string {
  if (value === undefined || value === null || Number.isNaN(value)) return '—'
  return `${value.toFixed(decimals)}×`
}

/** A markdown table; cells are escaped for `|`. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (cell: string) => cell.replaceAll('|', '\\|')
  const lines = [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ]
  return lines.join('\n')
}

export function goal(met: boolean): string {
  return met ? '**met**' : '**missed**'
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** Logs a progress line to stderr, prefixed with the seconds since the run started. */
const started = Date.now()
export function log(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`)
}

export async function until(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** One line of the summary table: a goal, what this run measured against it, and whether it is met. */
export interface Headline {
  readonly benchmark: string
  readonly measured: string
  readonly goal: string
  readonly met: boolean
}

// Process-wide cost (issue #12): does loading and using kysely-rw make the rest of the process slower?
// Child processes (process-child.ts) time plain Kysely's own queries on a driver that answers at once:
// two that never load kysely-rw (A1, A2), one that loads it, creates backends and uses them between its
// timed batches (B; again without escape detection), and a control (C) whose other Kysely runs over a driver
// that only wraps connections. The parent asks one child at a time for a batch, in an order that rotates,
// so that all see the same machine; each batch is timed in the child's own CPU time. A2 ÷ A1 is the
// A/A row: what the method reads between two identical processes. Fresh processes every round, since
// two processes of the same code can settle (JIT, heap layout) a little differently.
import { type ChildProcess, fork } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildRole, FromChild, ToChild } from './process-child.js'
import { errorMessage, execFileAsync, fmt, goal, type Headline, log, median, ratio, table } from './util.js'

export const PROCESS = {
  /** Awaited plain Kysely queries per timed batch. */
  batch: 200,
  /**
   * Untimed batches of each process, per query, before the timed ones. The goal is about the steady state of
   * a process that has run for a while: with 40, Node 24's first phase measured plain Kysely still settling in
   * B and C (B ÷ A 1.03-1.11 per round), which 200 or 500 no longer show (1.01-1.04).
   */
  warmupBatches: 200,
  /** Timed batches of each process per query and phase, per round. */
  alternations: 60,
  /** Rounds per Node version, each with fresh processes: one process runs a few percent faster or slower than another for its whole life (its heap layout, its compiled code), which only more processes average out. */
  rounds: 9,
  /** Node versions besides the one running the benchmark; each installed on demand by scripts/with-node.sh. */
  otherNodes: [22, 24],
  /** Plain Kysely in a process that uses kysely-rw (no transaction open): at most this multiple of A. */
  goal: 1.02,
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'process-child.ts')

/**
 * What B's kysely-rw write transactions do around the timed batches: none after the set-up's one; one
 * opened and closed in the untimed work before each batch (none open while it runs); one held open
 * across the whole phase (context: escape detection is meant to cost there).
 */
const PHASES = ['none since the set-up', 'one before each batch', 'one held open'] as const
type Phase = (typeof PHASES)[number]
const isGoalPhase = (phase: Phase) => phase !== 'one held open'
type Query = 'read' | 'write'

export interface ProcessRow {
  readonly node: string
  readonly query: Query
  readonly phase: Phase
  /** µs per plain Kysely query in A1 (the baseline), median over rounds. */
  readonly baseUs: number
  /** A2 ÷ A1 and B ÷ A1, ratio of median batch times, per round. */
  readonly aa: number[]
  readonly rw: number[]
  /** The same for B with `detectTransactionEscapes: false`. */
  readonly rwNoEscapes: number[]
  /** The same for C: a plain Kysely over a driver that only wraps the connections, instead of kysely-rw. */
  readonly passing: number[]
  readonly rwUs: number
}

export interface ProcessResult {
  readonly rows: ProcessRow[]
  /** Node versions that could not be run, and why. */
  readonly skipped: string[]
}

class Child {
  readonly #process: ChildProcess
  #pending: ((message: FromChild) => void) | undefined
  #failure: Error | undefined
  readonly ready: Promise<string>

  constructor(
    readonly name: string,
    nodeBin: string,
    root: string,
    role: ChildRole,
  ) {
    this.#process = fork(CHILD, [role], {
      execPath: nodeBin,
      execArgv: ['--import', 'tsx'],
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.#process.on('message', (message: FromChild) => {
      if (message.type === 'failed') this.#failure = new Error(`${name}: ${message.message}`)
      const pending = this.#pending
      this.#pending = undefined
      pending?.(message)
    })
    this.#process.once('exit', (code) => {
      this.#failure ??= new Error(`${name} exited with ${code}`)
      const pending = this.#pending
      this.#pending = undefined
      pending?.({ type: 'failed', message: this.#failure.message })
    })
    this.ready = this.#next().then((m) => {
      if (m.type !== 'ready') throw this.#failure ?? new Error(`${name}: unexpected ${m.type}`)
      return m.node
    })
  }

  #next(): Promise<FromChild> {
    return new Promise((resolve) => {
      this.#pending = resolve
    })
  }

  async ask(message: ToChild): Promise<FromChild> {
    if (this.#failure) throw this.#failure
    const reply = this.#next()
    this.#process.send(message)
    const answer = await reply
    if (answer.type === 'failed') throw this.#failure ?? new Error(answer.message)
    return answer
  }

  async batch(query: Query, size: number, transactions: boolean): Promise<number> {
    const answer = await this.ask({ type: 'batch', query, size, transactions })
    if (answer.type !== 'batch') throw new Error(`${this.name}: unexpected ${answer.type}`)
    return answer.ms
  }

  stop(): void {
    if (this.#process.exitCode === null && this.#process.connected) this.#process.send({ type: 'exit' })
    setTimeout(() => this.#process.kill(), 2_000).unref()
  }
}

/** The node binaries to run the children on: this one, then each of PROCESS.otherNodes when it installs. */
async function nodeBinaries(root: string): Promise<{ bins: string[]; skipped: string[] }> {
  const bins = [process.execPath]
  const skipped: string[] = []
  for (const major of PROCESS.otherNodes) {
    const bin = path.join(root, '.tools', `node${major}`, 'node_modules', '.bin', 'node')
    try {
      // With no command, with-node.sh only installs (when missing) and checks the version.
      await execFileAsync(path.join(root, 'scripts', 'with-node.sh'), [String(major)], { cwd: root })
      if (!existsSync(bin)) throw new Error(`${bin} missing after scripts/with-node.sh ${major}`)
      bins.push(bin)
    } catch (error) {
      skipped.push(`Node ${major}: ${errorMessage(error).split('\n')[0]}`)
      log(`process: Node ${major} not run: ${errorMessage(error)}`)
    }
  }
  return { bins, skipped }
}

/** Median batch CPU ms of each process, for one query and phase of one round. */
interface Cell {
  readonly a1: number
  readonly a2: number
  readonly b: number
  readonly bNoEscapes: number
  readonly c: number
}

async function round(nodeBin: string, root: string): Promise<{ node: string; cells: Map<string, Cell> }> {
  const b = new Child('B', nodeBin, root, 'rw')
  const bNoEscapes = new Child('B without escape detection', nodeBin, root, 'rw-no-escapes')
  const children = [
    new Child('A1', nodeBin, root, 'plain'),
    new Child('A2', nodeBin, root, 'plain'),
    b,
    bNoEscapes,
    new Child('C', nodeBin, root, 'passing'),
  ]
  const cells = new Map<string, Cell>()
  const holdTransactions = async (open: boolean) => {
    for (const child of [b, bNoEscapes]) {
      const answer = await child.ask({ type: 'transaction', open })
      if (answer.type !== 'transaction') throw new Error(`${child.name}: unexpected ${answer.type}`)
      // Only escape detection watches transactions: B's count says its storage is on or off.
      if (child === b && answer.watched !== (open ? 1 : 0))
        throw new Error(`B: ${answer.watched} write transactions watched, expected ${open ? 1 : 0}`)
    }
  }
  try {
    const [node] = await Promise.all(children.map((c) => c.ready))
    for (const phase of PHASES) {
      const transactions = phase === 'one before each batch'
      if (phase === 'one held open') await holdTransactions(true)
      for (const query of ['read', 'write'] as const) {
        for (let i = 0; i < PROCESS.warmupBatches; i++)
          for (const c of children) await c.batch(query, PROCESS.batch, transactions)
        const times: number[][] = children.map(() => [])
        for (let i = 0; i < PROCESS.alternations; i++) {
          for (let j = 0; j < children.length; j++) {
            const index = (i + j) % children.length
            const child = children[index] as Child
            ;(times[index] as number[]).push(await child.batch(query, PROCESS.batch, transactions))
          }
        }
        const [a1, a2, rw, rwNoEscapes, c] = times.map(median) as [number, number, number, number, number]
        cells.set(`${query}|${phase}`, { a1, a2, b: rw, bNoEscapes: rwNoEscapes, c })
      }
      if (phase === 'one held open') await holdTransactions(false)
    }
    return { node: node ?? 'unknown', cells }
  } finally {
    for (const c of children) c.stop()
  }
}

export async function runProcess(root: string): Promise<ProcessResult> {
  const { bins, skipped } = await nodeBinaries(root)
  const rows: ProcessRow[] = []
  for (const bin of bins) {
    const perRound: Map<string, Cell>[] = []
    let node = 'unknown'
    for (let r = 0; r < PROCESS.rounds; r++) {
      const result = await round(bin, root)
      node = result.node
      perRound.push(result.cells)
      log(
        `process ${node} round ${r + 1}: ` +
          [...result.cells]
            .map(
              ([key, c]) =>
                `${key} A/A ${ratio(c.a2 / c.a1)}, B ${ratio(c.b / c.a1)}, B no escapes ${ratio(c.bNoEscapes / c.a1)}, ` +
                `C ${ratio(c.c / c.a1)}`,
            )
            .join('; '),
      )
    }
    for (const phase of PHASES) {
      for (const query of ['read', 'write'] as const) {
        const cells = perRound.map((m) => m.get(`${query}|${phase}`) as Cell)
        rows.push({
          node,
          query,
          phase,
          baseUs: (median(cells.map((c) => c.a1)) * 1000) / PROCESS.batch,
          rwUs: (median(cells.map((c) => c.b)) * 1000) / PROCESS.batch,
          aa: cells.map((c) => c.a2 / c.a1),
          rw: cells.map((c) => c.b / c.a1),
          rwNoEscapes: cells.map((c) => c.bNoEscapes / c.a1),
          passing: cells.map((c) => c.c / c.a1),
        })
      }
    }
  }
  return { rows, skipped }
}

const goalRows = (result: ProcessResult) => result.rows.filter((r) => isGoalPhase(r.phase))
const met = (row: ProcessRow) => median(row.rw) <= PROCESS.goal

const queryLabel = (q: Query) => (q === 'read' ? 'read (pk select)' : 'write (insert)')

export function renderProcess(result: ProcessResult): string {
  const out: string[] = []
  out.push(
    "Plain Kysely's own CPU per query, in processes that never load kysely-rw (A1, A2) and in one that loads it and " +
      'uses it (B). B creates backends with a primary and two replicas on drivers that answer at once (defaults: guard, ' +
      'read-only sessions, escape detection, health checks every second), and before each timed batch does, untimed, ' +
      "4 `db.read` selects, a `db.write` insert and a session's write and read; A does the same on another plain Kysely. " +
      `The timed batch is ${PROCESS.batch} awaited queries on a plain Kysely on the same answering driver, timed in the ` +
      "child's own CPU time (`process.cpuUsage()`: user + system, all threads, GC included). A control, C, is A with its " +
      'other Kysely over a driver that only wraps the answering connections in a class of its own (and a compiler ' +
      "subclass that adds nothing): no kysely-rw, only other classes at Kysely's call sites, as any wrapping driver has. " +
      'Each round starts five ' +
      'fresh processes on the Node version named; the parent has them run one batch at a time, in an order that ' +
      `rotates, so that they share the machine alike: ${PROCESS.warmupBatches} untimed, then ${PROCESS.alternations} ` +
      'timed batches each, per query and phase. **B ÷ A** is the median over rounds of (median B batch ÷ median A1 ' +
      'batch); **A/A** is the same for A2 ÷ A1, two identical processes: what the method reads as a difference on this ' +
      `machine. The rounds columns show the ${PROCESS.rounds} per-round ratios.\n\n` +
      'The phases run in this order in every round. *none since the set-up*: B opened and closed one write ' +
      'transaction while setting up, none since. *one before each batch*: the untimed work before each batch ends ' +
      'with a write transaction that reads back its write (in B a kysely-rw `db.write` one, in A a plain Kysely one), ' +
      'closed before the batch starts, as in an app that writes now and then. *one held open*: B holds a kysely-rw ' +
      'write transaction open across the phase, so its escape detection is on; context, not a goal. ' +
      `Goal: with no transaction open (the first two phases), B at most ${PROCESS.goal}× A.\n`,
  )
  const rounds = (values: number[]) => values.map((v) => fmt(v, 3)).join(', ')
  out.push(
    table(
      [
        'Node',
        'plain Kysely query',
        'kysely-rw transactions',
        'A µs/query',
        'B µs/query',
        'A/A ratio',
        'A/A rounds',
        'B ÷ A ratio',
        'B ÷ A rounds',
        'B without escape detection ÷ A',
        'C (wrapping driver, no kysely-rw) ÷ A',
        'goal',
      ],
      result.rows.map((r) => [
        r.node,
        queryLabel(r.query),
        r.phase,
        fmt(r.baseUs, 2),
        fmt(r.rwUs, 2),
        ratio(median(r.aa)),
        rounds(r.aa),
        ratio(median(r.rw)),
        rounds(r.rw),
        `${ratio(median(r.rwNoEscapes))} (${rounds(r.rwNoEscapes)})`,
        `${ratio(median(r.passing))} (${rounds(r.passing)})`,
        isGoalPhase(r.phase) ? goal(met(r)) : '(context)',
      ]),
    ),
  )
  if (result.skipped.length > 0) out.push(`\nNot run: ${result.skipped.join('; ')}.`)
  return out.join('\n')
}

export function processMisses(result: ProcessResult): string[] {
  return goalRows(result)
    .filter((r) => !met(r))
    .map(
      (r) =>
        `process-wide cost on Node ${r.node}, ${queryLabel(r.query)}: plain Kysely in a kysely-rw process ${ratio(median(r.rw))} (goal ≤ ${PROCESS.goal}×; A/A ${ratio(median(r.aa))})`,
    )
}

export function processHeadlines(result: ProcessResult): Headline[] {
  const rows = goalRows(result)
  return [
    {
      benchmark:
        "process-wide cost: plain Kysely's CPU per query in a process using kysely-rw ÷ without (no transaction open)",
      measured: rows
        .map((r) => `Node ${r.node} ${r.query} ${ratio(median(r.rw))} (A/A ${ratio(median(r.aa))})`)
        .join('; '),
      goal: `≤ ${PROCESS.goal}×`,
      met: rows.length > 0 && rows.every(met),
    },
  ]
}

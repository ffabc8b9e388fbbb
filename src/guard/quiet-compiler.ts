import {
  type CompiledQuery,
  MysqlQueryCompiler,
  OPERATORS,
  type OperationNode,
  PostgresQueryCompiler,
  type QueryCompiler,
  type RootOperationNode,
} from 'kysely'
import type { Lexing } from './lexer.js'
import { PURE } from './side-effects.js'

/**
 * A SELECT compiled by a read backend's own compiler from nodes that can only produce a plain read:
 * names, parameters, Kysely's keywords and operators, calls of pure built-ins. Its verdict is reached
 * while Kysely compiles the query, so the guard needs no second look at its text: the cost of checking
 * a builder read is one brand test. Made only here; what the guard sends is read from its private
 * fields, so no text or tree can be swapped in after the verdict, and no other object passes the test.
 */
export class QuietSelect implements CompiledQuery {
  // Data properties, in the order of Kysely's own compiled queries: Kysely's code reads both kinds, and
  // getters there would slow every query of the process, plain Kysely's too. What is sent is read from
  // the private fields below, never from these.
  readonly query: RootOperationNode
  readonly queryId: CompiledQuery['queryId']
  readonly sql: string
  readonly parameters: readonly unknown[]
  readonly #sql: string
  readonly #parameters: readonly unknown[]
  readonly #query: RootOperationNode
  readonly #queryId: CompiledQuery['queryId']
  /** The server lexing the verdict was reached for: it names the functions that count as pure. */
  readonly #lexing: Lexing

  private constructor(compiled: CompiledQuery, lexing: Lexing) {
    this.query = compiled.query
    this.queryId = compiled.queryId
    this.sql = compiled.sql
    this.parameters = compiled.parameters
    this.#sql = compiled.sql
    this.#parameters = compiled.parameters
    this.#query = compiled.query
    this.#queryId = compiled.queryId
    this.#lexing = lexing
  }

  /**
   * The query to send, when `query` is a quiet SELECT compiled for servers that lex SQL as `lexing`
   * does; undefined for any other object.
   */
  static toSend(query: unknown, lexing: Lexing): CompiledQuery | undefined {
    if (typeof query !== 'object' || query === null || !(#lexing in query) || query.#lexing !== lexing) return
    // The values as they are now, copied: they are what the guard checks and what is sent.
    const parameters = query.#parameters.slice()
    return { query: query.#query, queryId: query.#queryId, sql: query.#sql, parameters }
  }

  /** For the compiler below only. */
  static seal(compiled: CompiledQuery, lexing: Lexing): QuietSelect {
    return new QuietSelect(compiled, lexing)
  }
}

const OPERATOR_SET = new Set<unknown>(OPERATORS)
const JOIN_TYPES = new Set<unknown>([
  'InnerJoin',
  'LeftJoin',
  'RightJoin',
  'FullJoin',
  'CrossJoin',
  'LateralInnerJoin',
  'LateralLeftJoin',
  'LateralCrossJoin',
])

// An allowlist, not a denylist: every visit method of Kysely's compiler not named here (raw SQL, casts,
// JSON paths, literals, lock clauses, a kind a later Kysely adds) makes the query loud, and the guard
// then reads its text as before. The methods here compile to Kysely's own keywords, quoted identifiers
// and parameter placeholders, and cost a quiet query nothing: they are Kysely's own, not wrapped.
const PLAIN_VISITS = new Set<string>([
  'visitSelectQuery',
  'visitSelection',
  'visitSelectAll',
  'visitReference',
  'visitColumn',
  'visitTable',
  'visitIdentifier',
  'visitSchemableIdentifier',
  'visitAlias',
  'visitFrom',
  'visitWhere',
  'visitHaving',
  'visitAnd',
  'visitOr',
  'visitParens',
  'visitBinaryOperation',
  'visitValueList',
  'visitPrimitiveValueList',
  'visitTuple',
  'visitOn',
  'visitGroupBy',
  'visitGroupByItem',
  'visitOrderBy',
  'visitLimit',
  'visitOffset',
  'visitCase',
  'visitWhen',
])

type Fields = OperationNode & Record<string, unknown>

const isPureCall = (node: Fields, lexing: Lexing) =>
  typeof node.func === 'string' && PURE[lexing].has(node.func.toLowerCase())

// Visits that append some fields of their node as they are: quiet only when those are known values.
const CONDITIONAL_VISITS: Readonly<Record<string, (node: Fields, lexing: Lexing) => boolean>> = {
  visitValue: (node) => node.immediate !== true,
  visitOperator: (node) => OPERATOR_SET.has(node.operator),
  visitJoin: (node) => JOIN_TYPES.has(node.joinType),
  visitOrderByItem: (node) => node.nulls === undefined || node.nulls === 'first' || node.nulls === 'last',
  // Order directions are raw nodes of one fragment: `asc` or `desc`.
  visitRaw: (node) => {
    const fragments = node.sqlFragments as readonly string[]
    const parameters = node.parameters as readonly unknown[]
    return parameters.length === 0 && fragments.length === 1 && (fragments[0] === 'asc' || fragments[0] === 'desc')
  },
  visitSelectModifier: (node) => node.modifier === 'Distinct' && node.rawModifier === undefined,
  visitFunction: isPureCall,
  visitAggregateFunction: (node, lexing) =>
    isPureCall(node, lexing) && node.filter === undefined && node.over === undefined && node.orderBy === undefined,
}

type CompilerClass = new () => QueryCompiler
type Visit = (this: { loud: boolean }, node: Fields) => unknown

/** Every visit method of a compiler class, down its prototype chain. */
function visitMethods(prototype: object): Set<string> {
  const names = new Set<string>()
  for (let p: object | null = prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name.startsWith('visit') && typeof (p as Record<string, unknown>)[name] === 'function') names.add(name)
    }
  }
  return names
}

/**
 * A subclass of one of Kysely's compilers that notes, while it compiles, whether any node outside the
 * allowlist was visited; a quiet SELECT comes out as a {@link QuietSelect}.
 */
function quietCompilerClass(Base: CompilerClass, lexing: Lexing): CompilerClass {
  class QuietCompiler extends Base {
    loud = false

    override compileQuery(node: RootOperationNode, queryId: CompiledQuery['queryId']): CompiledQuery {
      this.loud = false
      const compiled = super.compileQuery(node, queryId)
      return this.loud || node.kind !== 'SelectQueryNode' ? compiled : QuietSelect.seal(compiled, lexing)
    }
  }
  const base = Base.prototype as unknown as Record<string, Visit>
  const own = QuietCompiler.prototype as unknown as Record<string, Visit>
  for (const name of visitMethods(Base.prototype)) {
    if (PLAIN_VISITS.has(name)) continue
    const original = base[name] as Visit
    const quietWhen = CONDITIONAL_VISITS[name]
    own[name] = quietWhen
      ? function (node) {
          if (!this.loud && !quietWhen(node, lexing)) this.loud = true
          return original.call(this, node)
        }
      : function (node) {
          this.loud = true
          return original.call(this, node)
        }
  }
  return QuietCompiler
}

// Kysely's own compilers, whose visit methods were read for the lists above; a dialect's own compiler
// may compile the same nodes differently, and its queries keep the text check.
const KNOWN = new Map<unknown, { readonly lexing: Lexing; readonly quiet: CompilerClass }>([
  [PostgresQueryCompiler, { lexing: 'postgres', quiet: quietCompilerClass(PostgresQueryCompiler, 'postgres') }],
  [MysqlQueryCompiler, { lexing: 'mysql', quiet: quietCompilerClass(MysqlQueryCompiler, 'mysql') }],
])

/**
 * The read backend's query compiler: for Kysely's PostgreSQL and MySQL compilers, one of the same class
 * that reaches the quiet verdict as it compiles. Any other compiler, or a lexing its class does not
 * match, is returned as it is.
 */
export function withQuietVerdicts(compiler: QueryCompiler, lexing: Lexing): QueryCompiler {
  const known = KNOWN.get(compiler.constructor)
  return known?.lexing === lexing ? new known.quiet() : compiler
}

import type { OperationNode, RootOperationNode } from 'kysely'
import type { StatementKind } from '../errors.js'
import { KEYWORD_START } from './lexer.js'
import { isReadStatement, type Lexing } from './read-text.js'

/** What a query would do to the database, as far as its operation tree tells. */
export type Classification =
  | { readonly write: false }
  | { readonly write: true; readonly kind: StatementKind; readonly detail: string }

const READ: Classification = Object.freeze({ write: false })

type RootKind = RootOperationNode['kind']

// A Record over every root kind: a kind added by a new Kysely version breaks the build here instead of
// being routed silently.
const ROOT: Record<RootKind, StatementKind | 'select'> = {
  SelectQueryNode: 'select',
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
  MergeQueryNode: 'merge',
  RawNode: 'raw sql',
  CreateTableNode: 'ddl',
  CreateIndexNode: 'ddl',
  CreateSchemaNode: 'ddl',
  CreateViewNode: 'ddl',
  CreateTypeNode: 'ddl',
  RefreshMaterializedViewNode: 'ddl',
  DropTableNode: 'ddl',
  DropIndexNode: 'ddl',
  DropSchemaNode: 'ddl',
  DropViewNode: 'ddl',
  DropTypeNode: 'ddl',
  AlterTableNode: 'ddl',
  AlterTypeNode: 'ddl',
}

const NESTED_WRITES: Partial<Record<OperationNode['kind'], StatementKind>> = {
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
  MergeQueryNode: 'merge',
}

// In text that is not lexed (KEYWORD_START).
const MAY_WRITE = new RegExp(`${KEYWORD_START}(?:insert|update|delete|merge|share)\\b`, 'i')

const LOCKS = new Set(['ForUpdate', 'ForNoKeyUpdate', 'ForShare', 'ForKeyShare'])

// Nodes that hold names, operators or parameter values and never a query: the walk does not go into
// them (a parameter may be a large array or JSON document).
const LEAVES = new Set<string>([
  'IdentifierNode',
  'SchemableIdentifierNode',
  'TableNode',
  'ColumnNode',
  'ReferenceNode',
  'OperatorNode',
  'ValueNode',
  'PrimitiveValueListNode',
  'DefaultInsertValueNode',
  'DataTypeNode',
  'LimitNode',
  'OffsetNode',
  'SelectAllNode',
  'JSONPathLegNode',
])
const RAW_LOCK = new RegExp(
  String.raw`${KEYWORD_START}(?:for\s+(?:update|no\s+key\s+update|share|key\s+share)|lock\s+in\s+share\s+mode)\b`,
  'i',
)

/**
 * Classifies a query by its Kysely operation tree, before it is sent. A SELECT is a read unless it
 * carries a data-modifying statement at any depth (a CTE body, a subquery) or a locking clause.
 * Raw SQL as a whole query is not a read: only `readSql` declares one (and checks its text).
 */
export function classify(node: RootOperationNode, lexing: Lexing = 'postgres', sql?: string): Classification {
  const kind = ROOT[node.kind]
  if (kind === 'select') {
    // A nested INSERT/UPDATE/DELETE/MERGE or a lock clause shows in the compiled text; without any of
    // those words there is nothing to find, and the tree walk (microseconds on large queries) is skipped.
    if (sql !== undefined && !MAY_WRITE.test(sql)) return READ
    return findNestedWrite(node, lexing) ?? READ
  }
  if (kind === 'insert' && (node as { replace?: boolean }).replace) {
    return denied('replace', 'REPLACE')
  }
  return denied(kind, describe(node.kind, kind))
}

function denied(kind: StatementKind, detail: string): Classification {
  return { write: true, kind, detail }
}

const LABEL: Partial<Record<StatementKind, string>> = {
  insert: 'An INSERT',
  update: 'An UPDATE',
  delete: 'A DELETE',
  merge: 'A MERGE',
  'raw sql': 'A raw sql query (declare reads with readSql)',
}

function describe(nodeKind: RootKind, kind: StatementKind): string {
  return LABEL[kind] ?? `A DDL statement (${nodeKind.replace(/Node$/, '')})`
}

// Walks every property rather than a fixed list of child slots, so that a child slot added by a new
// Kysely version is still searched.
function findNestedWrite(root: OperationNode, lexing: Lexing): Classification | undefined {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value !== 'object' || value === null) continue
    if (Array.isArray(value)) {
      for (const item of value) stack.push(item)
      continue
    }
    const node = value as OperationNode & Record<string, unknown>
    if (typeof node.kind === 'string') {
      if (LEAVES.has(node.kind)) continue
      const write = NESTED_WRITES[node.kind]
      if (write) {
        return denied('data-modifying cte', `A SELECT carrying a nested ${write.toUpperCase()}`)
      }
      if (node.kind === 'CommonTableExpressionNode') {
        const body = node.expression as OperationNode | undefined
        if (body?.kind === 'RawNode' && !isReadStatement(rawText(body), lexing)) {
          return denied('data-modifying cte', 'A SELECT carrying a raw SQL CTE body that is not a read')
        }
      }
      if (node.kind === 'SelectModifierNode') {
        const lock = lockIn(node)
        if (lock) return denied('locking read', `A locking read (${lock})`)
      }
    }
    for (const key in node) {
      const child = node[key]
      if (typeof child === 'object' && child !== null) stack.push(child)
    }
  }
  return undefined
}

function lockIn(node: OperationNode & Record<string, unknown>): string | undefined {
  const modifier = node.modifier
  if (typeof modifier === 'string' && LOCKS.has(modifier)) {
    return modifier.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()
  }
  const raw = node.rawModifier as OperationNode | undefined
  const text = raw ? rawText(raw) : ''
  const match = RAW_LOCK.exec(text)
  return match ? match[0].toUpperCase() : undefined
}

/** The text of a raw node, its nested raw nodes spliced in and other parameters as `?`. */
function rawText(node: OperationNode): string {
  if (node.kind !== 'RawNode') return '?'
  const { sqlFragments, parameters } = node as OperationNode & {
    sqlFragments: readonly string[]
    parameters: readonly OperationNode[]
  }
  return sqlFragments.map((fragment, i) => fragment + (parameters[i] ? rawText(parameters[i]) : '')).join('')
}

// Statements that change the schema when sent as raw SQL.
const DDL_TEXT = /^\s*(?:create|alter|drop|truncate|rename|comment\s+on)\b/i

/**
 * True when a query run on the primary changes the schema: any DDL node, or raw SQL starting as DDL.
 * Only the root is looked at: this runs on every query of the write backend.
 */
export function isSchemaChange(node: RootOperationNode, sql: string): boolean {
  const kind = ROOT[node.kind]
  return kind === 'ddl' || (kind === 'raw sql' && DDL_TEXT.test(sql))
}

import type { Call, Lexing } from './lexer.js'

// Functions that a read-only transaction does not stop from changing something: the session (settings,
// session locks), objects outside the transaction's rules (large objects on PostgreSQL 15, sequences),
// other sessions, or the server. Refused by name on read backends, in the tree and in the text sent.
const POSTGRES = new Set([
  'set_config',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'lo_create',
  'lo_creat',
  'lo_import',
  'lo_export',
  'lo_unlink',
  'lo_from_bytea',
  'lo_put',
  'lo_open',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
  'pg_notify',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_emit_message',
  'pg_stat_reset',
  'pg_stat_reset_shared',
  'pg_stat_reset_single_table_counters',
  'pg_stat_reset_single_function_counters',
  'pg_stat_reset_slru',
  'pg_stat_reset_replication_slot',
  'pg_stat_statements_reset',
  'pg_stat_reset_subscription_stats',
  'pg_rotate_logfile_old',
  'pg_nextoid',
  'pg_stop_making_pinned_objects',
  // Consume a logical slot's changes (the peek_ variants only read).
  'pg_logical_slot_get_changes',
  'pg_logical_slot_get_binary_changes',
  // Index maintenance that writes index pages in a read-only transaction (the owner of the table may).
  'brin_summarize_new_values',
  'brin_summarize_range',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  // The session's random() sequence: ROLLBACK does not restore it.
  'setseed',
  'txid_current',
  'pg_current_xact_id',
  'nextval',
  'setval',
  // These run SQL given as a string, where no check can see it (ts_rewrite only in its two-argument
  // form, whose second argument is a query; see sideEffectOf).
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  'pg_file_write',
  'pg_file_rename',
  'pg_file_unlink',
  'pg_import_system_collations',
])

const MYSQL = new Set([
  'get_lock',
  'release_lock',
  'release_all_locks',
  'nextval',
  'setval',
  // last_insert_id(expr) sets what the session's next last_insert_id() returns.
  'last_insert_id',
  'sys_exec',
  'sys_eval',
  // MySQL's locking service: session locks as GET_LOCK's.
  'service_get_read_locks',
  'service_get_write_locks',
  'service_release_locks',
])

// Families of functions by prefix: dblink's persistent connections and remote writes; replication origins;
// statistics resets; binary upgrade's catalog writes. MySQL: the version_tokens plugin's locks and edits.
const POSTGRES_PREFIXES = ['dblink', 'pg_replication_origin_', 'pg_stat_reset', 'binary_upgrade_']
const MYSQL_PREFIXES = ['version_tokens_']

// Built-in functions that change nothing: a read calling only these needs no session reset. Anything
// else (a user-defined function may do anything) is reset after the read.
const PURE_COMMON = [
  'count',
  'sum',
  'min',
  'max',
  'avg',
  'coalesce',
  'nullif',
  'greatest',
  'least',
  'lower',
  'upper',
  'length',
  'char_length',
  'trim',
  'ltrim',
  'rtrim',
  'substring',
  'substr',
  'replace',
  'concat',
  'concat_ws',
  'abs',
  'round',
  'floor',
  'ceil',
  'ceiling',
  'cast',
  'now',
  'current_timestamp',
  'date',
  'extract',
  'json_object',
  'json_array',
  'json_extract',
  'row_number',
  'rank',
  'dense_rank',
  'lag',
  'lead',
  'first_value',
  'last_value',
  'exists',
  'in',
]
export const PURE: Record<Lexing, ReadonlySet<string>> = {
  postgres: new Set([
    ...PURE_COMMON,
    'array_agg',
    'string_agg',
    'json_agg',
    'jsonb_agg',
    'json_build_object',
    'jsonb_build_object',
    'json_build_array',
    'jsonb_build_array',
    'to_json',
    'to_jsonb',
    'row_to_json',
    'json_object_agg',
    'jsonb_object_agg',
    'unnest',
    'generate_series',
    'date_trunc',
    'to_char',
    'pg_is_in_recovery',
    'pg_last_wal_replay_lsn',
    'current_setting',
    'bool_and',
    'bool_or',
    // Strings, dates, numbers, arrays and JSON: values in, a value out. None runs SQL given as text.
    'date_part',
    'age',
    'position',
    'strpos',
    'split_part',
    'starts_with',
    'left',
    'right',
    'lpad',
    'rpad',
    'btrim',
    'initcap',
    'translate',
    'octet_length',
    'md5',
    'encode',
    'decode',
    'format',
    'quote_ident',
    'quote_literal',
    'quote_nullable',
    'regexp_replace',
    'regexp_match',
    'regexp_matches',
    'to_timestamp',
    'to_date',
    'to_number',
    'make_date',
    'make_interval',
    'current_date',
    'localtimestamp',
    'clock_timestamp',
    'statement_timestamp',
    'transaction_timestamp',
    'timezone',
    'array_length',
    'array_to_string',
    'string_to_array',
    'array_position',
    'array_remove',
    'array_append',
    'array_cat',
    'cardinality',
    'json_extract_path',
    'json_extract_path_text',
    'jsonb_extract_path',
    'jsonb_extract_path_text',
    'json_array_elements',
    'jsonb_array_elements',
    'json_each',
    'jsonb_each',
    'jsonb_array_length',
    'jsonb_typeof',
    'jsonb_set',
    'jsonb_strip_nulls',
    'percentile_cont',
    'percentile_disc',
    'stddev',
    'variance',
    'ntile',
    'cume_dist',
    'percent_rank',
    'nth_value',
    'every',
    'trunc',
    'mod',
    'power',
    'sqrt',
    'sign',
    'pg_typeof',
    'gen_random_uuid',
  ]),
  mysql: new Set([
    ...PURE_COMMON,
    'group_concat',
    'json_arrayagg',
    'json_objectagg',
    'ifnull',
    'if',
    'version',
    // What the session is, read and not changed (Kysely's MySQL introspector asks database()).
    'database',
    'schema',
    'current_user',
    'session_user',
    'connection_id',
    // Strings, dates, numbers and JSON: values in, a value out.
    'left',
    'right',
    'lpad',
    'rpad',
    'locate',
    'instr',
    'lcase',
    'ucase',
    'reverse',
    'repeat',
    'format',
    'hex',
    'unhex',
    'md5',
    'sha1',
    'sha2',
    'field',
    'find_in_set',
    'date_format',
    'date_add',
    'date_sub',
    'datediff',
    'timestampdiff',
    'timestampadd',
    'str_to_date',
    'unix_timestamp',
    'from_unixtime',
    'curdate',
    'curtime',
    'current_date',
    'utc_timestamp',
    'year',
    'month',
    'day',
    'dayofweek',
    'hour',
    'minute',
    'second',
    'week',
    'last_day',
    'mod',
    'pow',
    'power',
    'sqrt',
    'sign',
    'truncate',
    'json_unquote',
    'json_contains',
    'json_keys',
    'json_length',
    'json_type',
    'json_valid',
    'json_value',
    'json_set',
    'json_remove',
    // Holds the connection for a while; changes nothing.
    'sleep',
  ]),
}

/**
 * Keywords that take parentheses in SELECTs compiled by Kysely: `in (`, `exists (`, `as (` and so on
 * are no calls.
 */
export const KEYWORDS_BEFORE_PAREN = new Set([
  'in',
  'exists',
  'values',
  'as',
  'join',
  'from',
  'not',
  'and',
  'or',
  'on',
  'using',
  'over',
  'any',
  'all',
  'some',
  'lateral',
  'select',
  'where',
  'having',
  'union',
  'intersect',
  'except',
  'when',
  'then',
  'else',
  'case',
  'filter',
  'group',
  'by',
  'is',
  'like',
  'ilike',
  'between',
  'with',
  'recursive',
  'array',
  'row',
  'distinct',
  'limit',
  'offset',
  'interval',
])

/** The side-effecting function a call names, for the error; undefined when the call is harmless. */
export function sideEffectOf(
  call: Call,
  code: string,
  parameters: readonly unknown[],
  lexing: Lexing,
): string | undefined {
  const { name } = call
  if (lexing === 'mysql') {
    return MYSQL.has(name) || MYSQL_PREFIXES.some((prefix) => name.startsWith(prefix)) ? name.toUpperCase() : undefined
  }
  if (name === 'set_config') {
    // set_config(name, value, true) is local to the transaction; with false it outlives the read.
    return isTrue(lastArgument(code, call.open), parameters) ? undefined : 'set_config(…, false)'
  }
  // ts_rewrite(query, select) runs the text of its second argument; ts_rewrite(query, target, with) does not.
  if (name === 'ts_rewrite') return argumentCount(code, call.open) === 3 ? undefined : 'ts_rewrite(…, query)'
  if (POSTGRES.has(name) || POSTGRES_PREFIXES.some((prefix) => name.startsWith(prefix))) return name
  return undefined
}

/** True when the call is neither a keyword nor a built-in known to change nothing. */
export function mayLeaveState(call: Call, lexing: Lexing): boolean {
  return !KEYWORDS_BEFORE_PAREN.has(call.name) && !PURE[lexing].has(call.name)
}

/** The text of a call's last argument, from the code (literals already blanked). */
function lastArgument(code: string, open: number): string {
  let depth = 0
  let start = open + 1
  for (let i = open; i < code.length; i++) {
    const c = code[i]
    if (c === '(') depth++
    else if (c === ')') {
      depth--
      if (depth === 0) return code.slice(start, i).trim()
    } else if (c === ',' && depth === 1) start = i + 1
  }
  return ''
}

/** How many arguments a call has, from the code (literals already blanked). */
function argumentCount(code: string, open: number): number {
  let depth = 0
  let count = 1
  for (let i = open; i < code.length; i++) {
    const c = code[i]
    if (c === '(') depth++
    else if (c === ')') {
      depth--
      if (depth === 0) return count
    } else if (c === ',' && depth === 1) count++
  }
  return count
}

function isTrue(argument: string, parameters: readonly unknown[]): boolean {
  if (/^true$/i.test(argument)) return true
  const parameter = /^\$(\d+)(?:::bool(?:ean)?)?$/i.exec(argument)
  return parameter !== null && parameters[Number(parameter[1]) - 1] === true
}

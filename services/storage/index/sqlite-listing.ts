import {
  COUNT_LIMIT, decodeCursor, pageLimit, parseInstant, sortKeyOfMs,
  type RunListFilters, type RunListOrder, type RunListPaging
} from './run-index.js'
import { facetKey, fold } from './index-entry.js'

/** One listing as SQL: the page (LIMIT @limit, one more than asked, to know whether a next page exists) and the capped count. */
export interface ListingQuery {
  page: string
  count: string
  params: Record<string, string | number>
  limit: number
  order: RunListOrder
}

export const ENTRY_COLUMNS = 'r.seq, r.run_id, r.timestamp, r.updated_at, r.status, r.schema, r.execution_mode, r.user_id, r.input_text, r.transformed_text, r.output_count, r.media_types, r.backends, r.archive'


/**
 * Every listing walks one ordered structure from the cursor on and stops
 * after a page: the full-text index or the facet rows (both keyed by the
 * run's sort key) when the filters name them, else the runs table through
 * whichever index SQLite picks (each ends in the sort key, so an equality
 * filter still reads in order). A date range is a range of sort keys. So no
 * listing sorts its matches, and a page costs about the same at a million
 * runs as at a thousand, unless the filters together match almost nothing.
 */
export function listingQuery (filters: RunListFilters, paging: RunListPaging): ListingQuery {
  const limit = pageLimit(paging)
  const order: RunListOrder = paging.order ?? 'desc'
  const params: Record<string, string | number> = { limit: limit + 1 }
  const where: string[] = []
  let from = 'runs r'
  let key = 'r.seq'

  const facet = filters.media_type !== undefined || filters.backend !== undefined ? facetKey(filters.media_type, filters.backend) : undefined
  const needle = filters.q === undefined ? undefined : fold(filters.q)
  // One user's runs are few beside all runs: walked through the user index, each is checked for the text and the facet.
  // Otherwise the text index (or the facet rows) walk, since a common word would pass most runs of a large filter.
  const byUser = filters.user_id !== undefined
  if (needle !== undefined && byUser) {
    where.push('EXISTS (SELECT 1 FROM run_texts t WHERE t.rowid = r.seq AND (instr(t.input_text, @needle) > 0 OR instr(t.transformed_text, @needle) > 0))')
    params.needle = needle
  } else if (needle !== undefined) {
    // CROSS JOIN keeps the text index outside: it yields matches in key order, and SQLite never loops it per run.
    from = 'run_texts t CROSS JOIN runs r ON r.seq = t.rowid'
    key = 't.rowid'
    // FTS5 reads its query as a C string: a NUL would end it inside the quotes, so such a needle is scanned for.
    if (Array.from(needle).length >= 3 && !needle.includes('\0')) {
      // A quoted phrase of trigrams is a substring match; "" is how a quote is written inside one.
      where.push('run_texts MATCH @match')
      params.match = `"${needle.replaceAll('"', '""')}"`
    } else {
      // Trigrams cannot find one or two characters; a scan of the folded texts in key order can (instr compares bytes, NULs too).
      where.push('(instr(t.input_text, @needle) > 0 OR instr(t.transformed_text, @needle) > 0)')
      params.needle = needle
    }
  } else if (facet !== undefined && !byUser) {
    from = 'run_facets f CROSS JOIN runs r ON r.seq = f.seq'
    key = 'f.seq'
    where.push('f.facet = @facet')
  }
  if (facet !== undefined && key !== 'f.seq') where.push('EXISTS (SELECT 1 FROM run_facets f WHERE f.facet = @facet AND f.seq = r.seq)')
  if (facet !== undefined) params.facet = facet

  for (const column of ['user_id', 'schema', 'status'] as const) {
    const value = filters[column]
    if (value === undefined) continue
    where.push(`r.${column} = @${column}`)
    params[column] = value
  }
  const archived = filters.archived ?? 'exclude'
  if (archived !== 'include') where.push(archived === 'only' ? 'r.archived = 1' : 'r.archived = 0')
  if (filters.from !== undefined) { where.push(`${key} >= @from`); params.from = sortKeyOfMs(parseInstant('from', filters.from)) }
  if (filters.to !== undefined) { where.push(`${key} < @to`); params.to = sortKeyOfMs(parseInstant('to', filters.to)) }

  const matches = `FROM ${from}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`
  const count = `SELECT count(*) FROM (SELECT 1 ${matches} LIMIT ${COUNT_LIMIT + 1})`
  const cursorBound = paging.cursor === undefined ? [] : [`${key} ${order === 'asc' ? '>' : '<'} @after`]
  if (paging.cursor !== undefined) params.after = decodeCursor(paging.cursor, order)
  const pageWhere = [...where, ...cursorBound]
  const page = `SELECT ${ENTRY_COLUMNS} FROM ${from}${pageWhere.length > 0 ? ` WHERE ${pageWhere.join(' AND ')}` : ''} ORDER BY ${key} ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT @limit`
  return { page, count, params, limit, order }
}

import {
  COUNT_LIMIT, decodeCursor, pageLimit, parseInstant, sortKeyOfMs,
  type RunListFilters, type RunListOrder, type RunListPaging
} from './run-index.js'
import { facetKey, fold } from './index-entry.js'

/** One listing as SQL with positional parameters: the page (one more row than asked, to know whether a next page exists) and the capped count. */
export interface PostgresListingQuery {
  page: string
  count: string
  /** the parameters of page; count takes the first countParams of them */
  params: Array<string | number | boolean>
  countParams: number
  limit: number
  order: RunListOrder
}

/**
 * Text as PostgreSQL can hold it: it refuses NUL in text, so NUL becomes
 * U+FDD0, a noncharacter that no real text carries. Stripping NUL instead
 * would make a search for "\0" match every run; this way it matches the
 * runs whose text has one, as the SQLite index does.
 */
export function pgText (text: string): string {
  return text.replaceAll('\0', '\ufdd0')
}

/** A LIKE pattern that finds `needle` anywhere, its %, _ and \ taken literally. */
function containing (needle: string): string {
  return `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
}

/**
 * The same filters and cursor as the SQLite listing. The text search is a
 * LIKE on the folded texts, which the trigram (pg_trgm) indexes answer for
 * needles of three characters or more and a scan answers for shorter ones;
 * the facet filter uses the GIN index of the facets array; everything else
 * is b-tree indexes ending in seq, the sort key, so pages are read in order.
 */
export function postgresListingQuery (filters: RunListFilters, paging: RunListPaging): PostgresListingQuery {
  const limit = pageLimit(paging)
  const order: RunListOrder = paging.order ?? 'desc'
  const params: Array<string | number | boolean> = []
  const param = (value: string | number | boolean): string => `$${params.push(value)}`
  const where: string[] = []

  if (filters.q !== undefined) {
    const pattern = param(containing(pgText(fold(filters.q))))
    where.push(`(r.input_search LIKE ${pattern} OR r.transformed_search LIKE ${pattern})`)
  }
  if (filters.media_type !== undefined || filters.backend !== undefined) {
    where.push(`r.facets @> ARRAY[${param(pgText(facetKey(filters.media_type, filters.backend)))}]::text[]`)
  }
  for (const column of ['user_id', 'schema', 'status'] as const) {
    const value = filters[column]
    if (value !== undefined) where.push(`r.${column} = ${param(pgText(value))}`)
  }
  const archived = filters.archived ?? 'exclude'
  if (archived !== 'include') where.push(archived === 'only' ? 'r.archived' : 'NOT r.archived')
  if (filters.from !== undefined) where.push(`r.seq >= ${param(sortKeyOfMs(parseInstant('from', filters.from)))}`)
  if (filters.to !== undefined) where.push(`r.seq < ${param(sortKeyOfMs(parseInstant('to', filters.to)))}`)

  const countParams = params.length
  const matches = `FROM runs r${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`
  const count = `SELECT count(*)::int AS n FROM (SELECT 1 ${matches} LIMIT ${COUNT_LIMIT + 1}) m`
  if (paging.cursor !== undefined) where.push(`r.seq ${order === 'asc' ? '>' : '<'} ${param(decodeCursor(paging.cursor, order))}`)
  const page = `SELECT r.seq, r.entry FROM runs r${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY r.seq ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${param(limit + 1)}`
  return { page, count, params, countParams, limit, order }
}

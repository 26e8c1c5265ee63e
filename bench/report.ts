// What both benches need to read settings and print their numbers.

/** A positive whole number from the environment, or the fallback when unset. */
export function positiveInteger (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${raw}`)
  return value
}

/** How every load measurement runs: BENCH_CONNECTIONS, BENCH_SECONDS and BENCH_WARMUP_SECONDS, or their defaults. */
export function loadSettings (): { connections: number, seconds: number, warmupSeconds: number } {
  return {
    connections: positiveInteger('BENCH_CONNECTIONS', 32),
    seconds: positiveInteger('BENCH_SECONDS', 5),
    warmupSeconds: positiveInteger('BENCH_WARMUP_SECONDS', 1)
  }
}

/** The value below which a share p of the values lie (nearest rank); NaN for none. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

/** The middle value; for an even count the mean of the two middle ones. */
export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export function ms (value: number): string {
  return value.toFixed(2)
}

/** Columns padded to their widest cell; the first row is the header. */
export function printTable (rows: string[][], indent = '  '): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((r) => (r[column] ?? '').length)))
  for (const r of rows) console.log(indent + r.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd())
}

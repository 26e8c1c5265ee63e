// A reader of the Prometheus text exposition format (version 0.0.4), strict
// enough that an answer Prometheus would refuse fails here too.

export const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface MetricFamily {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  samples: Sample[]
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y
const SUFFIXES: Record<MetricFamily['type'], string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count']
}

/** The families by name; throws on any line that is not HELP, TYPE or a sample of a declared family. */
export function parseExposition (text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>()
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed')
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string]
      if (!METRIC_NAME.test(name)) throw new Error(`not a metric name: ${name}`)
      const family = families.get(name) ?? { name, help: '', type: 'untyped' as const, samples: [] }
      if (kind === 'HELP') family.help = rest
      else if (['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) family.type = rest as MetricFamily['type']
      else throw new Error(`unknown type in ${line}`)
      families.set(name, family)
      continue
    }
    if (line.startsWith('#')) continue
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const [, name, labelText = '', valueText] = match as unknown as [string, string, string | undefined, string]
    const value = parseValue(valueText)
    if (value === null) throw new Error(`not a value: ${line}`)
    const family = [...families.values()].find((f) => SUFFIXES[f.type].some((suffix) => f.name + suffix === name))
    if (family === undefined) throw new Error(`a sample of no declared family: ${line}`)
    family.samples.push({ name, labels: parseLabels(labelText, line), value })
  }
  return families
}

// As Prometheus reads them (Go's ParseFloat): NaN and Inf in any case; prom-client writes an empty histogram's mean as "Nan".
function parseValue (text: string): number | null {
  const special = text.toLowerCase()
  if (special === 'nan') return Number.NaN
  if (special === '+inf' || special === 'inf') return Infinity
  if (special === '-inf') return -Infinity
  const value = Number(text)
  return text.trim() === '' || Number.isNaN(value) ? null : value
}

function parseLabels (text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text)
    if (match === null) throw new Error(`bad labels in ${line}`)
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
  }
  return labels
}

/** The value of the one sample with exactly these labels (and any others), or undefined. */
export function sampleValue (families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = [...families.values()].find((f) => f.samples.some((s) => s.name === name))
  const found = family?.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? []
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

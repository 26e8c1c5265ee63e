import { readdir, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Static, TObject } from '@sinclair/typebox'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'

export type DataFileError = (path: string, problem: string) => Error

/**
 * Reads every `*.json` in `dir` as a definition (pipelines, output configs),
 * keyed by name and sorted by name. Any broken file fails the whole load with
 * the file and the field named, so a typo shows at startup and not in a
 * child's workshop. `check` adds rules a schema cannot say.
 */
export async function loadDataFiles<S extends TObject> (
  dir: string,
  schema: S,
  makeError: DataFileError,
  check: (definition: Static<S>, path: string) => void = () => {}
): Promise<Map<string, Static<S> & { name: string }>> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (err) {
    throw makeError(dir, `cannot read the folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
  const definitions = new Map<string, Static<S> & { name: string }>()
  for (const entry of entries.filter((e) => e.endsWith('.json')).sort()) {
    const path = join(dir, entry)
    const definition = parseDataFile(await readFile(path, 'utf8'), path, schema, makeError)
    check(definition, path)
    definitions.set(definition.name, definition)
  }
  return definitions
}

/** Validates one file's text; `path` names the file in errors and fixes the expected name. */
export function parseDataFile<S extends TObject> (text: string, path: string, schema: S, makeError: DataFileError): Static<S> & { name: string } {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw makeError(path, `not JSON (${(err as Error).message})`)
  }
  const firstError = Value.Errors(schema, value).First()
  if (firstError !== undefined) throw makeError(path, `${fieldName(firstError.path)}: ${describeError(firstError)}`)
  const definition = value as Static<S> & { name: string }
  const expectedName = basename(path, '.json')
  if (definition.name !== expectedName) {
    throw makeError(path, `name: "${definition.name}" must equal the file name "${expectedName}"`)
  }
  return definition
}

// TypeBox says only "Expected union value" of a value that fits none of a union's forms: the union's description says which there are.
function describeError (error: ValueError): string {
  const description = (error.schema as { description?: unknown }).description
  return error.type === ValueErrorType.Union && typeof description === 'string' ? `Expected ${description}` : error.message
}

// "/builtin/vocabulary/2" reads better as "builtin.vocabulary[2]".
function fieldName (pointer: string): string {
  if (pointer === '') return '(file)'
  return pointer.slice(1).split('/').map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((name, part) => /^\d+$/.test(part) ? `${name}[${part}]` : name === '' ? part : `${name}.${part}`, '')
}

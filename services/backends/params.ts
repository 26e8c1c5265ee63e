import { isRecord } from '../json.js'

// An output config's `params` are the backend's own: each backend reads them
// with the helpers below when it generates, and checks them at start with
// `checkParams` against a spec naming every parameter it takes.

export function stringParam (params: Record<string, unknown>, key: string): string | undefined {
  const value = params[key]
  return typeof value === 'string' && value !== '' ? value : undefined
}

export function numberParam (params: Record<string, unknown>, key: string): number | undefined {
  const value = params[key]
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** null when the value will do, else what it must be ("a whole number from 1 to 10"). */
export type ParamCheck = (value: unknown) => string | null

/** Every parameter a backend takes, with its check. */
export type ParamsSpec = Record<string, ParamCheck>

/**
 * Throws an Error naming the first parameter that the backend does not take
 * or that would not work, with what it must be instead.
 */
export function checkParams (backend: string, params: Record<string, unknown>, spec: ParamsSpec): void {
  for (const [key, value] of Object.entries(params)) {
    if (!Object.hasOwn(spec, key)) {
      throw new Error(`params.${key} is not a parameter of the ${backend} backend (it takes ${Object.keys(spec).join(', ')})`)
    }
    const expected = spec[key]!(value)
    if (expected !== null) throw new Error(`params.${key} must be ${expected} (got ${shortJson(value)})`)
  }
}

export const nonEmptyString: ParamCheck = (value) => typeof value === 'string' && value !== '' ? null : 'a non-empty string'

export const boolean: ParamCheck = (value) => typeof value === 'boolean' ? null : 'true or false'

export const object: ParamCheck = (value) => isRecord(value) ? null : 'an object'

export const positiveNumber: ParamCheck = (value) => typeof value === 'number' && Number.isFinite(value) && value > 0 ? null : 'a number above 0'

export function oneOf (...allowed: string[]): ParamCheck {
  return (value) => typeof value === 'string' && allowed.includes(value) ? null : `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`
}

export function integerFrom (min: number, max: number): ParamCheck {
  return (value) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max ? null : `a whole number from ${min} to ${max}`
}

/** A string matching `pattern`, described to the reader as `description`. */
export function matching (pattern: RegExp, description: string): ParamCheck {
  return (value) => typeof value === 'string' && pattern.test(value) ? null : description
}

function shortJson (value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? text.slice(0, 80) + '…' : text
}

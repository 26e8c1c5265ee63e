// Upstream answers are untrusted text: parsed without throwing, then checked by shape.

/** The parsed JSON, or null when the text is empty or not JSON. */
export function parseJson (text: string): unknown {
  if (text === '') return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

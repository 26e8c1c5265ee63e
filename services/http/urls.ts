/** Query strings may carry signatures; error messages end up in run records. */
export function describeUrl (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    return url.slice(0, 200)
  }
}

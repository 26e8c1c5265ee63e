import { PassThrough, type Readable } from 'node:stream'

/**
 * The body of an upstream answer, with the upstream's failures translated:
 * whoever reads it (the storage) sees a coded backend error when the body
 * breaks off, not a client library's own error. Destroying what it returns
 * stops the upstream body too.
 */
export function relayBody (upstream: Readable, translate: (err: unknown) => Error): Readable {
  const body = new PassThrough()
  // The reader may start a moment later (it awaits something of its own first): a body that breaks off before then
  // must not be an uncaught exception. The reader still gets the error, since pipeline() and async iteration
  // report a stream that has already failed.
  body.on('error', () => {})
  upstream.once('error', (err) => { body.destroy(translate(err)) })
  body.once('close', () => { if (!upstream.destroyed) upstream.destroy() })
  return upstream.pipe(body)
}

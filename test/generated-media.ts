import type { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import type { GenerationRequest, GeneratorBackend, MediaItem } from '../services/backends/types.js'

/** The bytes of one generated item, read whole. */
export async function bytesOf (body: MediaItem['body']): Promise<Buffer> {
  return Buffer.isBuffer(body) ? body : await buffer(body as Readable)
}

/** Everything a backend yields for a request, each item with its bytes. */
export async function collectGenerated (backend: GeneratorBackend, request: GenerationRequest): Promise<Array<{ item: MediaItem, bytes: Buffer }>> {
  const items: Array<{ item: MediaItem, bytes: Buffer }> = []
  for await (const item of backend.generate(request)) items.push({ item, bytes: await bytesOf(item.body) })
  return items
}

/** The error a generation ends with; a generation that succeeds fails the test. */
export async function generationFailure (backend: GeneratorBackend, request: GenerationRequest): Promise<unknown> {
  try {
    await collectGenerated(backend, request)
  } catch (err) {
    return err
  }
  throw new Error('expected the generation to fail')
}

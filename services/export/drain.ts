import type { Writable } from 'node:stream'

/**
 * Resolves when the stream takes more bytes; rejects when it closed first
 * (its reader went away), so a producer stops instead of waiting for ever.
 */
export async function drained (stream: Writable): Promise<void> {
  if (stream.destroyed) throw new Error('the export stream closed')
  if (!stream.writableNeedDrain) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => { stream.off('close', onClose); resolve() }
    const onClose = (): void => { stream.off('drain', onDrain); reject(new Error('the export stream closed')) }
    stream.once('drain', onDrain)
    stream.once('close', onClose)
  })
}

import type { FileHandle } from 'node:fs/promises'

const WINDOW_BYTES = 64 * 1024

/**
 * Random access to an open file through one cached window, starting with the
 * head already read. Header probes and structure walks read through it, so a
 * file of any size costs one window of memory.
 */
export class FileWindow {
  readonly #handle: FileHandle
  readonly size: number
  #window: Buffer
  #start = 0

  constructor (handle: FileHandle, size: number, head: Buffer) {
    this.#handle = handle
    this.size = size
    this.#window = head
  }

  /** `length` bytes at `position`, or null past the end of the file. The result is never overwritten. */
  async bytes (position: number, length: number): Promise<Buffer | null> {
    if (position < 0 || length < 0 || position + length > this.size) return null
    if (!this.#holds(position, length) && !(await this.#load(position, length))) return null
    return this.#window.subarray(position - this.#start, position - this.#start + length)
  }

  /**
   * The bytes from `position` to the end of the window, at least `length` of
   * them, or null when the file has fewer there: for scans that run through
   * the file window by window without a call per byte.
   */
  async from (position: number, length: number): Promise<Buffer | null> {
    if (position < 0 || position + length > this.size) return null
    if (!this.#holds(position, length) && !(await this.#load(position, length))) return null
    return this.#window.subarray(position - this.#start)
  }

  #holds (position: number, length: number): boolean {
    return position >= this.#start && position + length <= this.#start + this.#window.length
  }

  /** A new window from `position`, of at least `length` bytes; false when the file has fewer there. */
  async #load (position: number, length: number): Promise<boolean> {
    const want = Math.min(Math.max(length, WINDOW_BYTES), this.size - position)
    const buffer = Buffer.allocUnsafe(want)
    const { bytesRead } = await this.#handle.read(buffer, 0, want, position)
    this.#window = buffer.subarray(0, bytesRead)
    this.#start = position
    return bytesRead >= length
  }
}

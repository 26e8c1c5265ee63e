import { createHash } from 'node:crypto'
import { PNG } from 'pngjs'
import { BackendFailedError } from '../errors.js'
import type { GenerationRequest, GeneratorBackend, MediaItem } from './types.js'

export interface BuiltinBackendOptions {
  /** the largest width or height it paints; bigger requests are scaled down to fit, keeping their shape */
  maxSide?: number
  maxDurationSeconds?: number
}

const MODEL = 'procedural-v1'
const DEFAULT_SIDE = 512
const DEFAULT_MAX_SIDE = 2048
const MIN_SIDE = 8
export const SAMPLE_RATE = 22050
const DEFAULT_DURATION_SECONDS = 4
const DEFAULT_MAX_DURATION_SECONDS = 30
const MIN_DURATION_SECONDS = 0.5

/**
 * Makes pictures and melodies from the prompt and seed alone, so a workshop
 * without network or GPU still gets media, and tests get real files. Same
 * prompt and seed, same bytes.
 */
export class BuiltinBackend implements GeneratorBackend {
  readonly name = 'builtin'
  readonly inProcess = true
  readonly #maxSide: number
  readonly #maxDuration: number

  constructor (options: BuiltinBackendOptions = {}) {
    this.#maxSide = options.maxSide ?? DEFAULT_MAX_SIDE
    this.#maxDuration = options.maxDurationSeconds ?? DEFAULT_MAX_DURATION_SECONDS
  }

  unavailableReason (): string | null {
    return null
  }

  async * generate (request: GenerationRequest): AsyncGenerator<MediaItem> {
    request.signal?.throwIfAborted()
    const mediaType = request.params['media_type'] ?? 'image'
    if (mediaType === 'image') {
      const [width, height] = fitSize(request.width, request.height, this.#maxSide)
      yield { body: paintPicture(request.prompt, request.seed, width, height), media_type: 'image', source: { kind: 'builtin', model: MODEL } }
      return
    }
    if (mediaType === 'audio') {
      const requested = request.params['duration_seconds']
      const seconds = typeof requested === 'number' && Number.isFinite(requested)
        ? Math.min(Math.max(requested, MIN_DURATION_SECONDS), this.#maxDuration)
        : Math.min(DEFAULT_DURATION_SECONDS, this.#maxDuration)
      yield { body: composeMelody(request.prompt, request.seed, seconds), media_type: 'audio', source: { kind: 'builtin', model: MODEL } }
      return
    }
    throw new BackendFailedError(this.name, `it makes image or audio, not ${String(mediaType)}`)
  }
}

/** The requested size, scaled down to fit `max` with its shape kept; a missing side is the default. */
function fitSize (width: number, height: number, max: number): [number, number] {
  const w = Number.isFinite(width) && width > 0 ? width : DEFAULT_SIDE
  const h = Number.isFinite(height) && height > 0 ? height : DEFAULT_SIDE
  const scale = Math.min(1, max / Math.max(w, h))
  const side = (value: number): number => Math.min(Math.max(Math.round(value * scale), MIN_SIDE), max)
  return [side(w), side(h)]
}

/** sfc32 seeded from SHA-256: fast, and identical on every platform. */
function randomFrom (...parts: Array<string | number>): () => number {
  const digest = createHash('sha256').update(parts.map(String).join('\u0000')).digest()
  let a = digest.readUInt32LE(0)
  let b = digest.readUInt32LE(4)
  let c = digest.readUInt32LE(8)
  let d = digest.readUInt32LE(12)
  return () => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (a + b) | 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) | 0
    c = (c << 21) | (c >>> 11)
    d = (d + 1) | 0
    const result = (t + d) | 0
    c = (c + result) | 0
    return (result >>> 0) / 4294967296
  }
}

function wordsOf (prompt: string): string[] {
  return prompt.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
}

function hashWord (word: string): number {
  return createHash('sha256').update(word).digest().readUInt32LE(0)
}

// ---------------------------------------------------------------- pictures

type Rgb = [number, number, number]

// Children name colours; a prompt that says "blue" should look blue.
const COLOUR_WORDS: Record<string, number> = {
  red: 0, rot: 0, orange: 28, yellow: 52, gelb: 52, gold: 45, green: 120, grün: 120, gruen: 120,
  blue: 215, blau: 215, purple: 275, lila: 275, violet: 275, pink: 325, rosa: 325, turquoise: 175, türkis: 175
}
const NIGHT_WORDS = new Set(['night', 'nacht', 'moon', 'mond', 'stars', 'sterne', 'dark', 'dunkel', 'space', 'weltraum'])

function hsl (hue: number, saturation: number, lightness: number): Rgb {
  const h = ((hue % 360) + 360) % 360 / 360
  const s = Math.min(Math.max(saturation, 0), 1)
  const l = Math.min(Math.max(lightness, 0), 1)
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s
  const p = 2 * l - q
  const channel = (offset: number): number => {
    let t = h + offset
    if (t < 0) t += 1
    if (t > 1) t -= 1
    if (t < 1 / 6) return p + (q - p) * 6 * t
    if (t < 1 / 2) return q
    if (t < 2 / 3) return p + (q - p) * (2 / 3 - t) * 6
    return p
  }
  return [channel(1 / 3) * 255, channel(0) * 255, channel(-1 / 3) * 255]
}

function mix (a: Rgb, b: Rgb, amount: number): Rgb {
  return [a[0] + (b[0] - a[0]) * amount, a[1] + (b[1] - a[1]) * amount, a[2] + (b[2] - a[2]) * amount]
}

interface Hill {
  heights: Float32Array
  colour: Rgb
}

interface Disc {
  x: number
  y: number
  radius: number
  colour: Rgb
}

/** A landscape: sky, a sun or moon, layered hills, floating balloons, and a little grain. */
function paintPicture (prompt: string, seed: number, width: number, height: number): Buffer {
  const random = randomFrom('image', prompt, seed)
  const words = wordsOf(prompt)
  const named = words.map((word) => COLOUR_WORDS[word] ?? COLOUR_WORDS[word.replace(/(e|en|er|es|em)$/, '')]).find((hue) => hue !== undefined)
  const baseHue = named ?? random() * 360
  const night = words.some((word) => NIGHT_WORDS.has(word)) || random() < 0.2
  const schemes = [30, 150, 180, 210, -40]
  const accentHue = baseHue + (schemes[Math.floor(random() * schemes.length)] ?? 180)

  const skyTop = night ? hsl(accentHue, 0.55, 0.08) : hsl(accentHue, 0.6, 0.55 + random() * 0.15)
  const skyBottom = night ? hsl(accentHue + 30, 0.5, 0.25) : hsl(baseHue + 20, 0.7, 0.8)
  const sun = {
    x: (0.15 + random() * 0.7) * width,
    y: (0.12 + random() * 0.25) * height,
    radius: (0.05 + random() * 0.06) * Math.min(width, height),
    colour: night ? hsl(55, 0.3, 0.92) : hsl(35 + random() * 25, 0.95, 0.65)
  }

  const layerCount = 3 + Math.floor(random() * 3)
  const hills: Hill[] = []
  for (let layer = 0; layer < layerCount; layer++) {
    const depth = layer / Math.max(1, layerCount - 1)
    const waves = [0, 1, 2].map(() => ({
      frequency: (0.5 + random() * 2.5) * (1 + layer * 0.3) * Math.PI * 2 / width,
      phase: random() * Math.PI * 2,
      amplitude: (0.03 + random() * 0.06) * height
    }))
    const baseline = (0.45 + 0.45 * depth) * height
    const heights = new Float32Array(width)
    for (let x = 0; x < width; x++) {
      let y = baseline
      for (const wave of waves) y -= wave.amplitude * Math.sin(x * wave.frequency + wave.phase)
      heights[x] = y
    }
    const ground = hsl(baseHue + layer * 12, 0.45 + depth * 0.2, night ? 0.18 - depth * 0.1 : 0.55 - depth * 0.3)
    hills.push({ heights, colour: mix(skyBottom, ground, 0.35 + 0.65 * depth) })
  }

  const pixels = Buffer.alloc(width * height * 4)
  const glowRadius = sun.radius * 3.5
  for (let y = 0; y < height; y++) {
    const sky = mix(skyTop, skyBottom, y / Math.max(1, height - 1))
    for (let x = 0; x < width; x++) {
      let colour: Rgb = sky
      const distance = Math.hypot(x - sun.x, y - sun.y)
      if (distance < glowRadius) colour = mix(colour, sun.colour, Math.max(0, 1 - distance / glowRadius) ** 2 * 0.6)
      if (distance < sun.radius) colour = mix(colour, sun.colour, Math.min(1, sun.radius - distance))
      if (night && pixelNoise(x, y, seed) > 0.9985) colour = mix(colour, [255, 255, 240], 0.9)
      for (let layer = layerCount - 1; layer >= 0; layer--) {
        const top = hills[layer]?.heights[x] ?? height
        if (y >= top) {
          const hill = hills[layer] as Hill
          // darker towards the foot of the hill, with a soft edge on the ridge
          const shade = 1 - Math.min(0.25, (y - top) / height * 0.5)
          colour = mix(colour, [hill.colour[0] * shade, hill.colour[1] * shade, hill.colour[2] * shade], Math.min(1, y - top + 1))
          break
        }
      }
      const grain = (pixelNoise(x, y, seed + 1) - 0.5) * 10
      const offset = (y * width + x) * 4
      pixels[offset] = clampByte(colour[0] + grain)
      pixels[offset + 1] = clampByte(colour[1] + grain)
      pixels[offset + 2] = clampByte(colour[2] + grain)
      pixels[offset + 3] = 255
    }
  }

  const discCount = Math.min(12, 2 + words.length + Math.floor(random() * 3))
  for (let i = 0; i < discCount; i++) {
    const radius = (0.02 + random() * 0.05) * Math.min(width, height)
    paintDisc(pixels, width, height, {
      x: random() * width,
      y: (0.1 + random() * 0.55) * height,
      radius,
      colour: hsl(accentHue + (random() - 0.5) * 120, 0.75, night ? 0.6 : 0.5)
    })
  }

  const png = new PNG({ width, height })
  pixels.copy(png.data)
  return PNG.sync.write(png, { colorType: 2 })
}

/** A balloon: filled disc with an anti-aliased rim and a highlight. */
function paintDisc (pixels: Buffer, width: number, height: number, disc: Disc): void {
  const highlight = { x: disc.x - disc.radius * 0.35, y: disc.y - disc.radius * 0.35, radius: disc.radius * 0.3 }
  const x0 = Math.max(0, Math.floor(disc.x - disc.radius - 1))
  const x1 = Math.min(width - 1, Math.ceil(disc.x + disc.radius + 1))
  const y0 = Math.max(0, Math.floor(disc.y - disc.radius - 1))
  const y1 = Math.min(height - 1, Math.ceil(disc.y + disc.radius + 1))
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const coverage = Math.min(1, Math.max(0, disc.radius - Math.hypot(x - disc.x, y - disc.y)))
      if (coverage === 0) continue
      const shine = Math.max(0, 1 - Math.hypot(x - highlight.x, y - highlight.y) / highlight.radius) * 0.5
      const colour = mix(disc.colour, [255, 255, 255], shine)
      const offset = (y * width + x) * 4
      for (let channel = 0; channel < 3; channel++) {
        const old = pixels[offset + channel] ?? 0
        pixels[offset + channel] = clampByte(old + ((colour[channel] ?? 0) - old) * coverage * 0.9)
      }
    }
  }
}

/** A repeatable value in [0, 1) for a pixel, independent of painting order. */
function pixelNoise (x: number, y: number, seed: number): number {
  let h = Math.imul(x, 374761393) + Math.imul(y, 668265263) + Math.imul(seed | 0, 2246822519)
  h = Math.imul(h ^ (h >>> 13), 1274126177)
  h ^= h >>> 16
  return (h >>> 0) / 4294967296
}

function clampByte (value: number): number {
  return value <= 0 ? 0 : value >= 255 ? 255 : Math.round(value)
}

// ---------------------------------------------------------------- melodies

const SCALES: Array<{ name: string, steps: number[] }> = [
  { name: 'major', steps: [0, 2, 4, 5, 7, 9, 11] },
  { name: 'minor', steps: [0, 2, 3, 5, 7, 8, 10] },
  { name: 'major pentatonic', steps: [0, 2, 4, 7, 9] },
  { name: 'minor pentatonic', steps: [0, 3, 5, 7, 10] },
  { name: 'dorian', steps: [0, 2, 3, 5, 7, 9, 10] },
  { name: 'mixolydian', steps: [0, 2, 4, 5, 7, 9, 10] }
]

interface Note {
  start: number
  length: number
  midi: number
  loudness: number
}

/** A tune where every word is a note: the words pick the scale, key and pitches; the seed the tempo and ornaments. */
function composeMelody (prompt: string, seed: number, seconds: number): Buffer {
  const words = wordsOf(prompt)
  const phrase = words.length > 0 ? words : ['hum']
  const wordsHash = hashWord(phrase.join(' '))
  const scale = SCALES[wordsHash % SCALES.length] as { steps: number[] }
  const root = 57 + (Math.floor(wordsHash / SCALES.length) % 8)
  const random = randomFrom('audio', prompt, seed)
  const beat = 60 / (84 + Math.floor(random() * 56))

  const degreeToMidi = (degree: number): number => {
    const octave = Math.floor(degree / scale.steps.length)
    return root + octave * 12 + (scale.steps[degree % scale.steps.length] ?? 0)
  }

  const notes: Note[] = []
  let time = 0
  for (let i = 0; time < seconds; i++) {
    const word = phrase[i % phrase.length] as string
    const beats = word.length <= 3 ? 0.5 : word.length <= 6 ? 1 : 1.5
    const length = beats * beat
    if (random() > 0.08 || i === 0) {
      const degree = hashWord(word) % (scale.steps.length * 2) + (random() < 0.15 ? scale.steps.length : 0)
      notes.push({ start: time, length, midi: degreeToMidi(degree), loudness: 0.6 + random() * 0.3 })
    }
    time += length
  }
  // a bass note on every bar, alternating root and fifth
  const bar = beat * 4
  for (let start = 0, n = 0; start < seconds; start += bar, n++) {
    notes.push({ start, length: bar, midi: root - 24 + (n % 2 === 0 ? 0 : 7), loudness: 0.35 })
  }

  const sampleCount = Math.round(seconds * SAMPLE_RATE)
  const mixBuffer = new Float64Array(sampleCount)
  for (const note of notes) renderNote(mixBuffer, note)

  let peak = 0
  for (const sample of mixBuffer) peak = Math.max(peak, Math.abs(sample))
  const gain = peak > 0 ? 0.8 / peak : 0
  const fade = Math.min(sampleCount, Math.round(SAMPLE_RATE * 0.05))
  const pcm = Buffer.alloc(sampleCount * 2)
  for (let i = 0; i < sampleCount; i++) {
    const fadeOut = i >= sampleCount - fade ? (sampleCount - 1 - i) / fade : 1
    pcm.writeInt16LE(Math.round((mixBuffer[i] ?? 0) * gain * fadeOut * 32767), i * 2)
  }
  return Buffer.concat([wavHeader(pcm.length), pcm])
}

function renderNote (out: Float64Array, note: Note): void {
  const frequency = 440 * 2 ** ((note.midi - 69) / 12)
  const first = Math.round(note.start * SAMPLE_RATE)
  const ring = note.length * 1.3
  const count = Math.min(out.length - first, Math.round(ring * SAMPLE_RATE))
  const attack = 0.012
  const decay = 0.15 + note.length * 0.35
  for (let i = 0; i < count; i++) {
    const t = i / SAMPLE_RATE
    const envelope = (t < attack ? t / attack : Math.exp(-(t - attack) / decay)) * Math.min(1, (ring - t) / 0.02)
    const phase = 2 * Math.PI * frequency * t
    const tone = Math.sin(phase) + 0.35 * Math.sin(2 * phase) + 0.12 * Math.sin(3 * phase)
    out[first + i] = (out[first + i] ?? 0) + tone * envelope * note.loudness
  }
}

/** The 44-byte header of a mono 16-bit PCM WAV file. */
function wavHeader (dataBytes: number): Buffer {
  const header = Buffer.alloc(44)
  header.write('RIFF', 0, 'ascii')
  header.writeUInt32LE(36 + dataBytes, 4)
  header.write('WAVE', 8, 'ascii')
  header.write('fmt ', 12, 'ascii')
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(1, 22)
  header.writeUInt32LE(SAMPLE_RATE, 24)
  header.writeUInt32LE(SAMPLE_RATE * 2, 28)
  header.writeUInt16LE(2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36, 'ascii')
  header.writeUInt32LE(dataBytes, 40)
  return header
}

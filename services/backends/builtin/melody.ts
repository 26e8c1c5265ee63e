import { hashWord, randomFrom, wordsOf } from './seeded.js'

export const SAMPLE_RATE = 22050

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
export function composeMelody (prompt: string, seed: number, seconds: number): Buffer {
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

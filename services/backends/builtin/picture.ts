import { PNG } from 'pngjs'
import { randomFrom, wordsOf } from './seeded.js'

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
export function paintPicture (prompt: string, seed: number, width: number, height: number): Buffer {
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

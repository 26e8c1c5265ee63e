import { Readable } from 'node:stream'
import type { MediaOutput, RunMetadata } from '../../schemas/run.js'
import { archivePath, formatTime, outputFacts, stageSummaries } from './runs-table.js'

export interface GalleryOptions {
  title: string
  /** what was exported, e.g. the filters */
  subtitle: string
}

/**
 * index.html: an offline gallery that works opened from the unpacked
 * archive (file://). Media are linked relatively into runs/<run_id>/, the
 * texts stand beside them, and a few lines of inline script filter the runs
 * by user and pipeline. Nothing is loaded from a network: the page's own
 * policy allows only its own files. Written card by card as the runs are read.
 */
export function htmlGallery (runs: AsyncIterable<RunMetadata>, options: GalleryOptions): Readable {
  return Readable.from(galleryParts(runs, options), { objectMode: false })
}

async function * galleryParts (runs: AsyncIterable<RunMetadata>, options: GalleryOptions): AsyncGenerator<string> {
  yield head(options)
  let count = 0
  for await (const metadata of runs) {
    count++
    yield card(metadata)
  }
  if (count === 0) yield '<p class="empty">No runs match the filters.</p>\n'
  yield TAIL
}

const STYLE = `
  :root { font-family: system-ui, sans-serif; color: #222; background: #f4f4f2; }
  body { margin: 0 auto; max-width: 1200px; padding: 1rem; }
  header.page { display: flex; flex-wrap: wrap; gap: 1rem; align-items: baseline; }
  header.page h1 { font-size: 1.4rem; margin: 0; }
  [hidden] { display: none !important; }
  article.run { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1rem; background: #fff; margin: 1rem 0; padding: 1rem; border-radius: 6px; }
  article.run > h2 { grid-column: 1 / -1; font-size: 1.05rem; margin: 0; }
  article.run > h2 small { color: #666; font-weight: normal; }
  figure { margin: 0 0 1rem; }
  figure img, figure video { width: min(100%, 480px); height: auto; display: block; }
  figure audio { width: 100%; }
  figcaption, .facts { color: #555; font-size: .85rem; overflow-wrap: anywhere; }
  dl.texts dt { font-weight: bold; margin-top: .5rem; }
  dl.texts dd { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  dl.texts dd.decision { color: #555; font-size: .85rem; }
  @media (max-width: 700px) { article.run { grid-template-columns: 1fr; } }
`

// Fills the two filters from the cards and hides the cards that do not match.
const SCRIPT = `
(() => {
  const cards = [...document.querySelectorAll('article.run')];
  const filters = [...document.querySelectorAll('select[data-filter]')];
  for (const select of filters) {
    const key = select.dataset.filter;
    const values = [...new Set(cards.map((card) => card.dataset[key]))].sort((a, b) => a.localeCompare(b));
    for (const value of values) select.add(new Option(value === '' ? '(none)' : value, value));
    select.addEventListener('change', apply);
  }
  const count = document.getElementById('count');
  function apply () {
    let shown = 0;
    for (const card of cards) {
      // the first option of a filter is "all"
      const match = filters.every((select) => select.selectedIndex === 0 || card.dataset[select.dataset.filter] === select.value);
      card.hidden = !match;
      if (match) shown++;
    }
    count.textContent = shown + ' of ' + cards.length + ' runs';
  }
  apply();
})();
`

const POLICY = "default-src 'none'; img-src 'self' file: data:; media-src 'self' file:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

function head ({ title, subtitle }: GalleryOptions): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${POLICY}">
<title>${escape(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header class="page">
<h1>${escape(title)}</h1>
<span class="facts">${escape(subtitle)}</span>
<label>User <select id="user" data-filter="user"><option>all</option></select></label>
<label>Pipeline <select id="pipeline" data-filter="pipeline"><option>all</option></select></label>
<span id="count"></span>
</header>
<main>
`
}

const TAIL = `</main>
<script>${SCRIPT}</script>
</body>
</html>
`

function card (metadata: RunMetadata): string {
  const user = metadata.user_id ?? ''
  const texts: string[] = [
    `<dt>Input</dt><dd>${escape(metadata.input_text)}</dd>`,
    ...(metadata.transformed_text !== null ? [`<dt>Transformed</dt><dd>${escape(metadata.transformed_text)}</dd>`] : []),
    ...stageSummaries(metadata).map((stage) =>
      `<dt>${escape(stage.stage)}</dt>` +
      (stage.text !== '' ? `<dd>${escape(stage.text)}</dd>` : '') +
      (stage.decision !== '' ? `<dd class="decision">${escape(stage.decision)}</dd>` : '')),
    ...(metadata.errors.length > 0 ? [`<dt>Errors</dt><dd>${escape(metadata.errors.map((e) => `${e.code}: ${e.message}`).join('\n'))}</dd>`] : [])
  ]
  const media = metadata.outputs.length > 0 ? metadata.outputs.map((output) => figure(metadata, output)).join('\n') : '<p class="facts">no media</p>'
  return `<article class="run" id="run-${escape(metadata.run_id)}" data-user="${escape(user)}" data-pipeline="${escape(metadata.schema)}">
<h2>${escape(formatTime(metadata.timestamp))} · ${escape(user === '' ? '(no user)' : user)} · ${escape(metadata.schema)} <small>${escape(metadata.status)} · ${escape(metadata.execution_mode)} · ${escape(metadata.run_id)}</small></h2>
<div class="media">
${media}
</div>
<dl class="texts">
${texts.join('\n')}
</dl>
</article>
`
}

function figure (metadata: RunMetadata, output: MediaOutput): string {
  const src = escape(archivePath(metadata.run_id, encodeURIComponent(output.filename)))
  const size = output.width !== null && output.height !== null ? ` width="${output.width}" height="${output.height}"` : ''
  let element: string
  if (output.type === 'image') element = `<img src="${src}"${size} alt="${escape(metadata.input_text.slice(0, 200))}" loading="lazy" decoding="async">`
  else if (output.type === 'audio') element = `<audio controls preload="metadata" src="${src}"></audio>`
  else if (output.type === 'video') element = `<video controls preload="metadata" src="${src}"${size}></video>`
  else element = ''
  return `<figure>${element}<figcaption>${escape(outputFacts(metadata, output))} · <a href="${src}">${escape(output.filename)}</a></figcaption></figure>`
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function escape (text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!)
}

// German and English for both pages. The language comes from the browser
// until someone picks one; the pick is remembered in localStorage.

const STRINGS = {
  en: {
    'lang.name': 'English',
    'lang.switch': 'Language',
    'nav.workshop': 'Workshop',
    'nav.gallery': 'Gallery',
    'nav.main': 'Pages',
    'workshop.title': 'Workshop',
    'workshop.intro': 'Pick a style, describe your picture idea, and watch it being made.',
    'workshop.pipelines': 'Style',
    'workshop.prompt': 'Your idea',
    'workshop.prompt.placeholder': 'A flower on the meadow, bigger than the trees …',
    'workshop.aspect': 'Shape',
    'workshop.mode': 'Mode',
    'workshop.mode.eco': 'Eco (on this computer)',
    'workshop.mode.fast': 'Fast (cloud)',
    'workshop.mode.ultra': 'Ultra (several results)',
    'workshop.submit': 'Make it',
    'workshop.working': 'Working …',
    'workshop.progress': 'What happens',
    'workshop.result': 'Result',
    'workshop.loading': 'Loading the styles …',
    'workshop.nopipelines': 'No styles could be loaded. Is the service running?',
    'workshop.empty': 'Please write your idea first.',
    'stage.translation': 'Translated into English',
    'stage.safety': 'Safety check of your idea',
    'stage.interception': 'Your idea in the style of {pipeline}',
    'stage.pre_output_safety': 'Safety check before making the {media}',
    'stage.generation': 'Making the {media}',
    'stage.running': 'working …',
    'decision.ok': 'All fine.',
    'decision.blocked': 'Stopped here.',
    'decision.skipped': 'Skipped.',
    'decision.failed': 'This did not work.',
    'blocked.title': 'Let\'s try another idea',
    'blocked.text': 'Your idea was not made into a picture, and that is no problem. Change a few words and try again.',
    'error.title': 'That did not work this time',
    'error.busy': 'The picture machine is busy or switched off right now. Wait a moment, or try another mode.',
    'error.generic': 'Something went wrong. Please try again, or ask your workshop leader.',
    'media.image': 'picture',
    'media.audio': 'sound',
    'media.video': 'video',
    'media.model3d': '3D model',
    'media.download3d': 'Download the 3D model',
    'gallery.title': 'Gallery',
    'gallery.intro': 'Every run of the workshop, newest first.',
    'gallery.filters': 'Filters',
    'gallery.from': 'From',
    'gallery.to': 'To (inclusive)',
    'gallery.user': 'User',
    'gallery.pipeline': 'Style',
    'gallery.status': 'Status',
    'gallery.media': 'Media type',
    'gallery.q': 'Search text',
    'gallery.any': 'any',
    'gallery.apply': 'Show',
    'gallery.reset': 'Reset',
    'gallery.count': '{shown} of {total} runs',
    'gallery.countAtLeast': '{shown} of at least {total} runs',
    'gallery.more': 'Load more',
    'gallery.end': 'That is all.',
    'gallery.none': 'No runs match.',
    'gallery.loading': 'Loading …',
    'gallery.error': 'The runs could not be loaded.',
    'gallery.export': 'Export selection',
    'gallery.notext': '(no picture)',
    'status.created': 'created',
    'status.running': 'running',
    'status.completed': 'completed',
    'status.failed': 'failed',
    'status.blocked': 'blocked',
    'run.close': 'Close',
    'run.input': 'Input',
    'run.transformed': 'Prompt',
    'run.stages': 'Stages',
    'run.outputs': 'Outputs',
    'run.facts': 'Facts',
    'run.errors': 'Errors',
    'run.zip': 'Download run as ZIP',
    'run.nooutputs': 'No outputs.',
    'fact.run': 'Run',
    'fact.user': 'User',
    'fact.time': 'Time',
    'fact.pipeline': 'Style',
    'fact.mode': 'Mode',
    'fact.seed': 'Seed',
    'fact.status': 'Status',
    'fact.file': 'File',
    'fact.size': 'Size',
    'fact.dimensions': 'Dimensions',
    'fact.duration': 'Duration',
    'fact.backend': 'Backend',
    'fact.config': 'Output config',
    'fact.sha256': 'SHA-256',
    'fact.reason': 'Reason',
    'token.title': 'Admin token',
    'token.text': 'The export needs the service\'s ADMIN_TOKEN. It is kept in this tab only.',
    'token.label': 'ADMIN_TOKEN',
    'token.ok': 'Export',
    'token.cancel': 'Cancel',
    'export.running': 'Preparing the export …',
    'export.done': 'The export is downloaded.',
    'export.wrongToken': 'The token was not accepted.',
    'export.off': 'Exports are switched off on this service (no ADMIN_TOKEN set).',
    'export.failed': 'The export failed.'
  },
  de: {
    'lang.name': 'Deutsch',
    'lang.switch': 'Sprache',
    'nav.workshop': 'Werkstatt',
    'nav.gallery': 'Galerie',
    'nav.main': 'Seiten',
    'workshop.title': 'Werkstatt',
    'workshop.intro': 'Wähle einen Stil, beschreibe deine Bildidee und sieh zu, wie sie entsteht.',
    'workshop.pipelines': 'Stil',
    'workshop.prompt': 'Deine Idee',
    'workshop.prompt.placeholder': 'Eine Blume auf der Wiese, größer als die Bäume …',
    'workshop.aspect': 'Format',
    'workshop.mode': 'Modus',
    'workshop.mode.eco': 'Eco (auf diesem Rechner)',
    'workshop.mode.fast': 'Schnell (Cloud)',
    'workshop.mode.ultra': 'Ultra (mehrere Ergebnisse)',
    'workshop.submit': 'Los geht\'s',
    'workshop.working': 'Wird gemacht …',
    'workshop.progress': 'Was passiert',
    'workshop.result': 'Ergebnis',
    'workshop.loading': 'Die Stile werden geladen …',
    'workshop.nopipelines': 'Es konnten keine Stile geladen werden. Läuft der Dienst?',
    'workshop.empty': 'Bitte schreib zuerst deine Idee auf.',
    'stage.translation': 'Ins Englische übersetzt',
    'stage.safety': 'Sicherheitsprüfung deiner Idee',
    'stage.interception': 'Deine Idee im Stil {pipeline}',
    'stage.pre_output_safety': 'Sicherheitsprüfung vor dem {media}',
    'stage.generation': '{media} wird gemacht',
    'stage.running': 'läuft …',
    'decision.ok': 'Alles in Ordnung.',
    'decision.blocked': 'Hier angehalten.',
    'decision.skipped': 'Übersprungen.',
    'decision.failed': 'Das hat nicht geklappt.',
    'blocked.title': 'Lass uns eine andere Idee ausprobieren',
    'blocked.text': 'Aus deiner Idee wurde kein Bild gemacht, und das ist nicht schlimm. Ändere ein paar Wörter und versuch es noch einmal.',
    'error.title': 'Das hat diesmal nicht geklappt',
    'error.busy': 'Die Bildmaschine ist gerade beschäftigt oder ausgeschaltet. Warte einen Moment oder probiere einen anderen Modus.',
    'error.generic': 'Etwas ist schiefgegangen. Versuch es noch einmal oder frag die Workshopleitung.',
    'media.image': 'Bild',
    'media.audio': 'Klang',
    'media.video': 'Video',
    'media.model3d': '3D-Modell',
    'media.download3d': '3D-Modell herunterladen',
    'gallery.title': 'Galerie',
    'gallery.intro': 'Alle Durchläufe der Werkstatt, die neuesten zuerst.',
    'gallery.filters': 'Filter',
    'gallery.from': 'Von',
    'gallery.to': 'Bis (einschließlich)',
    'gallery.user': 'Person',
    'gallery.pipeline': 'Stil',
    'gallery.status': 'Status',
    'gallery.media': 'Medienart',
    'gallery.q': 'Text suchen',
    'gallery.any': 'alle',
    'gallery.apply': 'Anzeigen',
    'gallery.reset': 'Zurücksetzen',
    'gallery.count': '{shown} von {total} Durchläufen',
    'gallery.countAtLeast': '{shown} von mindestens {total} Durchläufen',
    'gallery.more': 'Mehr laden',
    'gallery.end': 'Das ist alles.',
    'gallery.none': 'Keine passenden Durchläufe.',
    'gallery.loading': 'Wird geladen …',
    'gallery.error': 'Die Durchläufe konnten nicht geladen werden.',
    'gallery.export': 'Auswahl exportieren',
    'gallery.notext': '(kein Bild)',
    'status.created': 'angelegt',
    'status.running': 'läuft',
    'status.completed': 'fertig',
    'status.failed': 'fehlgeschlagen',
    'status.blocked': 'angehalten',
    'run.close': 'Schließen',
    'run.input': 'Eingabe',
    'run.transformed': 'Prompt',
    'run.stages': 'Schritte',
    'run.outputs': 'Ergebnisse',
    'run.facts': 'Fakten',
    'run.errors': 'Fehler',
    'run.zip': 'Durchlauf als ZIP herunterladen',
    'run.nooutputs': 'Keine Ergebnisse.',
    'fact.run': 'Durchlauf',
    'fact.user': 'Person',
    'fact.time': 'Zeit',
    'fact.pipeline': 'Stil',
    'fact.mode': 'Modus',
    'fact.seed': 'Seed',
    'fact.status': 'Status',
    'fact.file': 'Datei',
    'fact.size': 'Größe',
    'fact.dimensions': 'Abmessungen',
    'fact.duration': 'Dauer',
    'fact.backend': 'Backend',
    'fact.config': 'Ausgabe-Konfiguration',
    'fact.sha256': 'SHA-256',
    'fact.reason': 'Grund',
    'token.title': 'Admin-Token',
    'token.text': 'Der Export braucht das ADMIN_TOKEN des Dienstes. Es bleibt nur in diesem Tab gespeichert.',
    'token.label': 'ADMIN_TOKEN',
    'token.ok': 'Exportieren',
    'token.cancel': 'Abbrechen',
    'export.running': 'Der Export wird vorbereitet …',
    'export.done': 'Der Export ist heruntergeladen.',
    'export.wrongToken': 'Das Token wurde nicht angenommen.',
    'export.off': 'Exporte sind bei diesem Dienst ausgeschaltet (kein ADMIN_TOKEN gesetzt).',
    'export.failed': 'Der Export ist fehlgeschlagen.'
  }
}

const KEY = 'runstore.lang'
const listeners = []

function initialLanguage () {
  try {
    const stored = localStorage.getItem(KEY)
    if (stored in STRINGS) return stored
  } catch {}
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language]
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split('-')[0]
    if (base in STRINGS) return base
  }
  return 'en'
}

let language = initialLanguage()

export function currentLanguage () {
  return language
}

/** The text for key in the current language, with {name} filled from vars. */
export function t (key, vars = {}) {
  const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key
  return text.replace(/\{(\w+)\}/g, (whole, name) => name in vars ? String(vars[name]) : whole)
}

/** Fills every [data-i18n] element's text and [data-i18n-<attr>] attribute. */
export function translatePage (root = document) {
  document.documentElement.lang = language
  for (const element of root.querySelectorAll('[data-i18n]')) element.textContent = t(element.dataset.i18n)
  for (const element of root.querySelectorAll('[data-i18n-placeholder]')) element.placeholder = t(element.dataset.i18nPlaceholder)
  for (const element of root.querySelectorAll('[data-i18n-aria-label]')) element.setAttribute('aria-label', t(element.dataset.i18nAriaLabel))
}

/** Called again after each switch, so what a page drew itself is redrawn in the new language. */
export function onLanguageChange (listener) {
  listeners.push(listener)
}

export function setLanguage (next) {
  if (!(next in STRINGS)) return
  language = next
  try { localStorage.setItem(KEY, next) } catch {}
  translatePage()
  for (const listener of listeners) listener(next)
}

/** The language switch in the header: one button per language, the current one pressed. */
export function setUpLanguageSwitch (container) {
  const draw = () => {
    container.replaceChildren(...Object.keys(STRINGS).map((code) => {
      const button = document.createElement('button')
      button.type = 'button'
      button.className = 'lang'
      button.lang = code
      button.textContent = STRINGS[code]['lang.name']
      button.setAttribute('aria-pressed', String(code === language))
      button.addEventListener('click', () => { setLanguage(code); container.querySelector(`[lang="${code}"]`)?.focus() })
      return button
    }))
  }
  draw()
  onLanguageChange(draw)
  translatePage()
}

export function formatTime (iso) {
  return new Date(iso).toLocaleString(language === 'de' ? 'de-DE' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' })
}

export function formatBytes (bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return `${value.toLocaleString(language === 'de' ? 'de-DE' : 'en-GB', { maximumFractionDigits: unit === 0 ? 0 : 1 })} ${units[unit]}`
}

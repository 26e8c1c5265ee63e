// One output as the browser shows it: a picture, a player, or a download.
import { t } from './i18n.js'

export function mediaElement (type, url, label) {
  const figure = document.createElement('figure')
  figure.className = `media ${type}`
  let element
  if (type === 'image') {
    element = document.createElement('img')
    element.src = url
    element.alt = label
  } else if (type === 'audio' || type === 'video') {
    element = document.createElement(type)
    element.controls = true
    element.preload = 'metadata'
    element.src = url
    element.setAttribute('aria-label', label)
  } else {
    element = document.createElement('a')
    element.href = `${url}?download=1`
    element.setAttribute('download', '')
    element.className = 'button'
    element.textContent = t('media.download3d')
  }
  figure.append(element)
  return figure
}

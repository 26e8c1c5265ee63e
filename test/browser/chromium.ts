import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { aptInstall } from '../apt-install.js'

export const CHROMIUM = '/usr/bin/chromium'

/**
 * Debian's Chromium, installed when missing (CI installs it in .ci/run; this
 * covers `npm test` on a fresh machine of the same kind, where we are root).
 */
export function ensureChromium (): void {
  if (existsSync(CHROMIUM)) return
  aptInstall('chromium', `the browser tests need Chromium at ${CHROMIUM}`)
}

/**
 * Headless Chromium as this machine allows it: no sandbox (root), and no
 * background connections, which the closed network would refuse.
 */
export async function launchChromium (): Promise<Browser> {
  ensureChromium()
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'
    ]
  })
}

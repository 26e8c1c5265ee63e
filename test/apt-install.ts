import { execFileSync } from 'node:child_process'

/**
 * Installs a Debian package a test needs (CI installs them in .ci/run; this
 * covers `npm test` on a fresh machine of the same kind, where we are root),
 * with a fresh package list when the first try finds none.
 */
export function aptInstall (pkg: string, needed: string): void {
  const install = (): void => {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  try {
    install()
  } catch {
    try {
      execFileSync('apt-get', ['update'], { stdio: 'ignore', timeout: 300_000 })
      install()
    } catch (err) {
      throw new Error(`${needed}; install it with "apt-get install ${pkg}" (${(err as Error).message})`)
    }
  }
}

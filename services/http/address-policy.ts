import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { isIP, BlockList } from 'node:net'
import { FetchForbiddenError } from '../errors.js'

// Addresses a URL sent by a client must not reach: the lab network behind the
// service (ComfyUI, routers, metadata endpoints) and the host itself.
const privateRanges = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]
] as const) privateRanges.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) {
  privateRanges.addSubnet(net, prefix, 'ipv6')
}

export function isPrivateAddress (address: string): boolean {
  const family = isIP(address)
  if (family === 4) return privateRanges.check(address, 'ipv4')
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
    if (mapped) return privateRanges.check(mapped[1]!, 'ipv4')
    return privateRanges.check(address, 'ipv6')
  }
  return true
}

/** Which hosts a media download may reach. */
export class FetchPolicy {
  readonly #allowed: Set<string>

  constructor (allowedHosts: Iterable<string> = []) {
    this.#allowed = new Set([...allowedHosts].map(normaliseHost))
  }

  allow (host: string): void {
    this.#allowed.add(normaliseHost(host))
  }

  isAllowedHost (host: string): boolean {
    return this.#allowed.has(normaliseHost(host))
  }

  /** Checks what is known before connecting: the scheme and a literal IP. */
  assertUrl (url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FetchForbiddenError(`${url.protocol} URLs`)
    const host = normaliseHost(url.hostname)
    if (this.#allowed.has(host)) return
    if (isIP(host) !== 0 && isPrivateAddress(host)) throw new FetchForbiddenError(`private address ${host}`)
    if (host === 'localhost' || host.endsWith('.localhost')) throw new FetchForbiddenError(`private address ${host}`)
  }

  /**
   * A dns.lookup that refuses private answers, so a public name that resolves
   * to the lab network is caught at connect time (no check-then-use gap).
   */
  readonly lookup = (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0)
      const allowedName = this.#allowed.has(normaliseHost(hostname))
      const usable = addresses.filter((a) => allowedName || this.#allowed.has(a.address) || !isPrivateAddress(a.address))
      if (usable.length === 0) {
        return callback(Object.assign(new FetchForbiddenError(`${hostname} resolves to a private address`), { errno: 0 }), '', 0)
      }
      if (options.all === true) return callback(null, usable)
      callback(null, usable[0]!.address, usable[0]!.family)
    })
  }
}

function normaliseHost (host: string): string {
  return host.trim().toLowerCase().replace(/^\[|\]$/g, '')
}

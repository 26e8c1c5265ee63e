import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { isIP, BlockList } from 'node:net'
import { FetchForbiddenError } from '../errors.js'

// Addresses a URL sent by a client must not reach: the lab network behind the
// service (ComfyUI, routers, metadata endpoints) and the host itself.
const privateRanges = new BlockList()
const PRIVATE_IPV4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]
]
for (const [net, prefix] of PRIVATE_IPV4) {
  privateRanges.addSubnet(net, prefix, 'ipv4')
  // IPv6 addresses that carry an IPv4 address reach it through a translator
  // or a tunnel (NAT64 64:ff9b::/96, 6to4 2002::/16, IPv4-compatible ::/96),
  // so the IPv4 address inside decides. (IPv4-mapped ::ffff:0:0/96 the BlockList checks itself.)
  const embedded = ipv4AsHextets(net)
  privateRanges.addSubnet(`64:ff9b::${embedded}`, 96 + prefix, 'ipv6')
  privateRanges.addSubnet(`::${embedded}`, 96 + prefix, 'ipv6')
  privateRanges.addSubnet(`2002:${embedded}::`, 16 + prefix, 'ipv6')
}
// 64:ff9b:1::/48 is NAT64 for local use (RFC 8215): whatever it embeds is the lab's own network.
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b:1::', 48]] as const) {
  privateRanges.addSubnet(net, prefix, 'ipv6')
}

/** 10.1.2.3 → "a01:203", the two hextets an IPv6 address holds it in. */
function ipv4AsHextets (address: string): string {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number]
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
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

// A trailing dot names the same host ("localhost." is localhost), so it must not get past the name checks.
function normaliseHost (host: string): string {
  return host.trim().toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '')
}

import t, { type Test } from 'tap'
import type { LookupAddress, LookupOptions } from 'node:dns'
import { isPrivateAddress, FetchPolicy } from '../../../services/http/address-policy.js'

type PolicyModule = typeof import('../../../services/http/address-policy.js')

interface LookupAnswer { err: NodeJS.ErrnoException | null, address: string | LookupAddress[] | undefined, family: number | undefined }

/** Calls policy.lookup and collects what it hands to the socket. */
async function lookup (policy: FetchPolicy, hostname: string, options: LookupOptions = {}): Promise<LookupAnswer> {
  return await new Promise((resolve) => {
    policy.lookup(hostname, options, (err, address, family) => { resolve({ err, address, family }) })
  })
}

/**
 * The policy module with a resolver that answers from a table, for names
 * that would need real DNS (a public name resolving into the lab network).
 */
async function withFakeDns (t: Test, table: Record<string, LookupAddress[] | NodeJS.ErrnoException>): Promise<PolicyModule> {
  const fakeLookup = (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void): void => {
    t.equal(options.all, true, 'the policy always asks for every address')
    const answer = table[hostname]
    process.nextTick(() => {
      if (answer === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), [])
      else if (answer instanceof Error) callback(answer, [])
      else callback(null, answer)
    })
  }
  return await t.mockImport<PolicyModule>('../../../services/http/address-policy.js', { 'node:dns': { lookup: fakeLookup } })
}

t.test('isPrivateAddress: loopback, private, link-local, CGNAT and unspecified addresses', async (t) => {
  const privateAddresses = [
    '127.0.0.1', '127.255.255.254', '10.0.0.1', '10.255.255.255',
    '172.16.0.1', '172.20.10.5', '172.31.255.255',
    '192.168.0.1', '192.168.178.20', '169.254.169.254', '169.254.0.1',
    '100.64.0.1', '100.127.255.255', '0.0.0.0', '0.1.2.3',
    '192.0.0.8', '198.18.0.1', '198.19.255.255', '224.0.0.251', '239.255.255.250', '240.0.0.1', '255.255.255.255',
    '::1', '::', 'fe80::1', 'FE80::1', 'febf::1', 'fc00::1', 'fd12:3456::1', 'ff02::1',
    '::ffff:127.0.0.1', '::FFFF:10.0.0.1', '::ffff:192.168.1.1', '::ffff:7f00:1', '::ffff:a9fe:a9fe'
  ]
  for (const address of privateAddresses) t.equal(isPrivateAddress(address), true, address)
})

t.test('isPrivateAddress: an IPv6 address that carries a private IPv4 address (NAT64, 6to4, IPv4-compatible) is private', async (t) => {
  const embedding = [
    '64:ff9b::7f00:1', '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::a00:1', '64:ff9b::c0a8:114',
    '2002:7f00:1::1', '2002:a9fe:a9fe::', '2002:c0a8:101:1::1', '::7f00:1', '::127.0.0.1', '::a00:1',
    // NAT64 for local use reaches the lab's own network, whatever it embeds
    '64:ff9b:1::808:808'
  ]
  for (const address of embedding) t.equal(isPrivateAddress(address), true, address)
  for (const address of ['64:ff9b::808:808', '64:ff9b::8.8.8.8', '2002:808:808::1', '::808:808']) {
    t.equal(isPrivateAddress(address), false, `${address} carries a public address`)
  }
})

t.test('isPrivateAddress: public addresses', async (t) => {
  const publicAddresses = [
    '8.8.8.8', '1.1.1.1', '93.184.216.34', '172.15.255.255', '172.32.0.0', '100.63.255.255', '100.128.0.0',
    '169.253.255.255', '11.0.0.1', '192.169.0.1', '198.17.255.255', '198.20.0.0', '223.255.255.255',
    '2606:4700::1111', '2001:4860:4860::8888', 'fec0::1', '::ffff:8.8.8.8', '::ffff:808:808'
  ]
  for (const address of publicAddresses) t.equal(isPrivateAddress(address), false, address)
})

t.test('isPrivateAddress: something that is not an IP address counts as private', async (t) => {
  for (const value of ['', 'localhost', 'example.com', '127.0.0.1.nip.io', '256.0.0.1', '[::1]']) {
    t.equal(isPrivateAddress(value), true, JSON.stringify(value))
  }
})

t.test('assertUrl refuses other schemes with FETCH_FORBIDDEN (400)', async (t) => {
  const policy = new FetchPolicy()
  for (const url of ['ftp://example.com/a.png', 'file:///etc/passwd', 'data:image/png;base64,AAAA', 'gopher://example.com/', 'ws://example.com/']) {
    t.throws(() => { policy.assertUrl(new URL(url)) }, { code: 'FETCH_FORBIDDEN', statusCode: 400 }, url)
  }
  // An allowed host does not make another scheme acceptable.
  const allowing = new FetchPolicy(['example.com'])
  t.throws(() => { allowing.assertUrl(new URL('ftp://example.com/a.png')) }, { code: 'FETCH_FORBIDDEN' })
})

t.test('assertUrl refuses private literal addresses and localhost names', async (t) => {
  const policy = new FetchPolicy()
  const refused = [
    'http://127.0.0.1/', 'https://127.0.0.1:8188/view?filename=x.png', 'http://[::1]/', 'http://[::1]:8080/x',
    'http://localhost/', 'http://LOCALHOST:3000/', 'http://sub.localhost/', 'http://a.b.localhost/',
    'http://10.1.2.3/', 'http://192.168.1.1/', 'http://169.254.169.254/latest/meta-data/', 'http://0.0.0.0/',
    'http://[fe80::1]/', 'http://[fc00::1]/', 'http://[::ffff:127.0.0.1]/',
    // The URL parser turns these spellings into 127.0.0.1 before the check sees them.
    'http://2130706433/', 'http://0x7f.1/', 'http://127.1/', 'http://0177.0.0.1/',
    // a trailing dot names the same host
    'http://localhost./', 'http://sub.localhost./',
    'http://[64:ff9b::127.0.0.1]/', 'http://[2002:7f00:1::1]/', 'http://[::127.0.0.1]/'
  ]
  for (const url of refused) {
    t.throws(() => { policy.assertUrl(new URL(url)) }, { code: 'FETCH_FORBIDDEN', statusCode: 400 }, url)
  }
})

t.test('assertUrl allows public literal addresses and names', async (t) => {
  const policy = new FetchPolicy()
  for (const url of ['http://8.8.8.8/a.png', 'https://1.1.1.1/', 'https://[2606:4700::1111]/x', 'https://example.com/a.png', 'http://cdn.example.org:8080/x?y=1', 'https://localhost.example.com/']) {
    t.doesNotThrow(() => { policy.assertUrl(new URL(url)) }, url)
  }
})

t.test('hosts allowed in the constructor or with allow() pass, however written', async (t) => {
  const policy = new FetchPolicy(['127.0.0.1', ' [::1] ', 'Lab-Server'])
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://127.0.0.1:8188/')) })
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://[::1]/')) })
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://lab-server/')) })
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://lab-server./')) }, 'with a trailing dot too')
  t.throws(() => { policy.assertUrl(new URL('http://127.0.0.2/')) }, { code: 'FETCH_FORBIDDEN' }, 'only the listed address')
  t.throws(() => { policy.assertUrl(new URL('http://localhost/')) }, { code: 'FETCH_FORBIDDEN' })

  policy.allow('LOCALHOST')
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://localhost/')) })
  t.throws(() => { policy.assertUrl(new URL('http://sub.localhost/')) }, { code: 'FETCH_FORBIDDEN' }, 'a subdomain is not allowed with it')

  policy.allow('[fe80::1]')
  t.doesNotThrow(() => { policy.assertUrl(new URL('http://[fe80::1]/')) })

  t.equal(policy.isAllowedHost('Localhost'), true)
  t.equal(policy.isAllowedHost('[::1]'), true)
  t.equal(policy.isAllowedHost('::1'), true)
  t.equal(policy.isAllowedHost('10.0.0.1'), false)
  t.equal(new FetchPolicy().isAllowedHost('127.0.0.1'), false, 'nothing is allowed by default')
})

t.test('lookup refuses a name that resolves to a private address', async (t) => {
  const policy = new FetchPolicy()
  for (const options of [{}, { all: true }, { family: 4 }]) {
    const { err, address } = await lookup(policy, 'localhost', options)
    t.match(err, { code: 'FETCH_FORBIDDEN', statusCode: 400, message: /localhost/ }, JSON.stringify(options))
    t.equal(address, '')
  }
})

t.test('lookup passes a name once it is allowed', async (t) => {
  const policy = new FetchPolicy()
  policy.allow('localhost')
  const all = await lookup(policy, 'localhost', { all: true })
  t.equal(all.err, null)
  t.ok(Array.isArray(all.address), 'all: true answers with an array')
  t.ok((all.address as LookupAddress[]).length > 0)
  t.ok((all.address as LookupAddress[]).every((a) => isPrivateAddress(a.address) && (a.family === 4 || a.family === 6)))

  const one = await lookup(policy, 'LocalHost', {})
  t.equal(one.err, null)
  t.equal(typeof one.address, 'string', 'without all: one address and its family')
  t.equal(one.address, (all.address as LookupAddress[])[0]!.address)
  t.equal(one.family, (all.address as LookupAddress[])[0]!.family)
})

t.test('lookup passes a private address that is allowed itself', async (t) => {
  const policy = new FetchPolicy(['127.0.0.1'])
  const { err, address, family } = await lookup(policy, 'localhost', { family: 4 })
  t.equal(err, null)
  t.equal(address, '127.0.0.1')
  t.equal(family, 4)
})

t.test('lookup of a literal address: public passes, private is refused', async (t) => {
  const policy = new FetchPolicy()
  t.match(await lookup(policy, '8.8.8.8', {}), { err: null, address: '8.8.8.8', family: 4 })
  t.match(await lookup(policy, '2606:4700::1111', { all: true }), { err: null, address: [{ address: '2606:4700::1111', family: 6 }] })
  t.match(await lookup(policy, '10.0.0.1', {}), { err: { code: 'FETCH_FORBIDDEN' } })
  t.match(await lookup(policy, '::1', { all: true }), { err: { code: 'FETCH_FORBIDDEN' } })
})

t.test('lookup with a public name that resolves into the lab network (fake resolver)', async (t) => {
  const { FetchPolicy } = await withFakeDns(t, {
    'evil.example': [{ address: '192.168.1.10', family: 4 }, { address: 'fd00::5', family: 6 }],
    'mixed.example': [{ address: '10.0.0.5', family: 4 }, { address: '93.184.216.34', family: 4 }, { address: '::1', family: 6 }, { address: '2606:2800:220:1::1', family: 6 }],
    'lab.example': [{ address: '10.0.0.7', family: 4 }],
    'empty.example': []
  })
  const policy = new FetchPolicy()
  t.match(await lookup(policy, 'evil.example', {}), { err: { code: 'FETCH_FORBIDDEN', message: /evil\.example/ }, address: '' })
  t.match(await lookup(policy, 'evil.example', { all: true }), { err: { code: 'FETCH_FORBIDDEN' } })
  t.match(await lookup(policy, 'empty.example', {}), { err: { code: 'FETCH_FORBIDDEN' } }, 'no address at all is no usable address')

  t.same(await lookup(policy, 'mixed.example', { all: true }), {
    err: null,
    address: [{ address: '93.184.216.34', family: 4 }, { address: '2606:2800:220:1::1', family: 6 }],
    family: undefined
  }, 'only the public addresses are handed on')
  t.same(await lookup(policy, 'mixed.example', {}), { err: null, address: '93.184.216.34', family: 4 }, 'the first public one')

  policy.allow('lab.example')
  t.same(await lookup(policy, 'lab.example', {}), { err: null, address: '10.0.0.7', family: 4 }, 'an allowed name may resolve anywhere')
})

t.test('lookup hands resolver errors on unchanged (fake resolver)', async (t) => {
  const refused = Object.assign(new Error('getaddrinfo EAI_AGAIN flaky.example'), { code: 'EAI_AGAIN' })
  const { FetchPolicy } = await withFakeDns(t, { 'flaky.example': refused })
  const policy = new FetchPolicy(['flaky.example'])
  const answer = await lookup(policy, 'flaky.example', { all: true })
  t.equal(answer.err, refused)
  t.match(await lookup(policy, 'missing.example', {}), { err: { code: 'ENOTFOUND' } })
})

// A second process for test/cli/maintenance.test.ts: takes the store lock of argv[2] as a service would, says so, and holds it until stdin closes.
import { StoreLock } from '../../services/storage/store-lock.js'

const lock = await StoreLock.acquire(process.argv[2]!, 'server')
process.stdout.write('held\n')
process.stdin.resume()
process.stdin.once('end', () => { void lock.release().then(() => { process.exit(0) }) })

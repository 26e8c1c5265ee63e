import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

// The child runs server.ts through the same TypeScript loader as the test (tap's), without coverage;
// `npm run test:reliability` builds first and sets RELIABILITY_SERVER=dist, since a
// compiled server starts in about a second and the long version starts it many times.
const SERVER = process.env.RELIABILITY_SERVER === 'dist'
  ? ['dist/server.js']
  : [...process.execArgv.filter((arg) => arg.includes('@tapjs/typescript')), 'server.ts']

export interface ServerProcess {
  url: string
  child: ChildProcess
  /** what the process wrote, for a failing test's message */
  output: () => string
  /** SIGKILL: no shutdown hook, no flush, like a power cut */
  kill: () => Promise<void>
  /** SIGTERM and the wait for a graceful exit */
  stop: () => Promise<number | null>
}

/** Starts the server as its own process with these settings (PORT 0) and waits for it to listen. */
export async function startServer (env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, SERVER, {
    cwd: ROOT,
    // No overload refusals unless a test asks for them (as in test/helper.ts): twenty clients running the builtin
    // generator hold the loop of a busy 2-core machine past the default limit, which is the refusal working, not a lost write.
    env: { ...process.env, NODE_OPTIONS: '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the server did not listen within ${timeoutMs} ms:\n${output.slice(-4000)}`)) }, timeoutMs)
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8')
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`the server exited (${code ?? signal}) before listening:\n${output.slice(-4000)}`)) })
  })
  const exited = once(child, 'exit')
  return {
    url,
    child,
    output: () => output,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = await exited as [number | null]
      return code
    }
  }
}

/** Waits until the service says (GET /ready) that its start's background work is done. */
export async function startupDone (url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const answer = await fetch(`${url}/ready`).then(async (r) => await r.json() as { checks?: { startup_done?: boolean } }, () => null)
    if (answer?.checks?.startup_done === true) return
    if (Date.now() > deadline) throw new Error(`the service at ${url} did not finish its start's background work within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

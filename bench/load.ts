import { fork } from 'node:child_process'

export interface LoadJob {
  url: string
  connections: number
  warmupSeconds: number
  durationSeconds: number
  /** body size every answer must have, warm-up included */
  bodyBytes: number
  /** request headers (e.g. Accept), none when not given */
  headers?: Record<string, string>
}

export interface LoadResult {
  url: string
  requests: number
  seconds: number
  requestsPerSecond: number
  /** megabytes a second received, headers included */
  megabytesPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  statusCodes: Record<string, number>
  non2xx: number
  errors: number
  timeouts: number
  /** smallest and largest body of all answers, warm-up included */
  minBodyBytes: number
  maxBodyBytes: number
  /** what went wrong, empty when every answer was a whole 2xx */
  problems: string[]
}

export interface MeasuredLoad extends LoadResult {
  /**
   * CPU time (user + system) this process spent per answer during the
   * measurement: what serving one request costs the servers living here,
   * whatever else the machine is doing.
   */
  serverCpuMicrosPerRequest: number
}

/** What the load generator tells its parent. */
export type LoadMessage = { phase: 'measuring' } | { phase: 'done', result: LoadResult }

const WORKER = new URL('./load-worker.js', import.meta.url)

/**
 * Runs autocannon in a child process, so that the load generator has its own
 * event loop (and, on a 2-core machine, its own core) instead of competing
 * with the server it measures.
 */
export async function measureLoad (job: LoadJob): Promise<MeasuredLoad> {
  // execArgv [] so that a profiled bench (node --cpu-prof) does not profile the client too
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] })
  return await new Promise<MeasuredLoad>((resolve, reject) => {
    let cpuAtStart: NodeJS.CpuUsage | undefined
    let measured: MeasuredLoad | undefined
    child.on('message', (message: LoadMessage) => {
      if (message.phase === 'measuring') {
        cpuAtStart = process.cpuUsage()
        return
      }
      const cpu = process.cpuUsage(cpuAtStart)
      const { result } = message
      measured = { ...result, serverCpuMicrosPerRequest: result.requests > 0 ? (cpu.user + cpu.system) / result.requests : 0 }
    })
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      if (measured !== undefined) resolve(measured)
      else reject(new Error(`load generator exited (code ${code ?? 'none'}, signal ${signal ?? 'none'}) without a result for ${job.url}`))
    })
    child.send(job)
  })
}

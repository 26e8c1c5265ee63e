import t, { type Test } from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { query } from './postgres.js'
import { mapLimited } from './reliability/concurrency.js'
import type { ServerProcess } from './reliability/server-process.js'
import { runsListedAt } from './reliability/store-check.js'
import { COMFYUI_CONCURRENCY, execute, findsStoppedInstances, readRun, startCluster, wholeRunProblem, type Answer } from './scale-out/cluster.js'

// The issue's "several instances, proven here": three instances over one bucket and one database, 100 executes
// spread over them, one instance killed with SIGKILL mid-run. `npm run demo:scale-out` runs this file alone and
// prints the figures (SCALE_OUT_REPORT names the file they go to).
const EXECUTES = 100
// Long enough that the ComfyUI half (one at a time across all instances) is still going when the kill falls.
const COMFYUI_RUN_MS = 150
// Generous: four server starts with the TypeScript loader and the whole load on two busy cores.
t.setTimeout(900_000)

interface Sent {
  instance: number
  comfyui: boolean
  answer?: Answer
}

const acknowledged = (s: Sent): boolean => s.answer?.kind === 'answer' && s.answer.status === 200 && typeof s.answer.body?.run_id === 'string'
const runIdOf = (s: Sent): string => (s.answer as { body: { run_id: string } }).body.run_id
const byCount = (items: string[]): string => [...new Set(items)].map((item) => `${item} ×${items.filter((i) => i === item).length}`).join(', ') || 'none'

t.test('three instances over one bucket and one database, one killed with SIGKILL mid-run', async (t) => {
  const began = Date.now()
  const cluster = await startCluster(t, COMFYUI_RUN_MS)
  const { comfyui } = cluster
  const instances: ServerProcess[] = await Promise.all([0, 1, 2].map(async () => await cluster.start()))
  const VICTIM = 2
  const survivors = instances.filter((_, i) => i !== VICTIM)
  const names = (urls: ServerProcess[]): string => urls.map((s) => s.url).join(' and ')

  const sent: Sent[] = Array.from({ length: EXECUTES }, (_, i) => ({ instance: i % instances.length, comfyui: i % 2 === 1 }))
  const loadBegan = Date.now()
  const inFlight = sent.map(async (s, i) => {
    // output_configs named in a request run as named, never replaced: the ComfyUI half reaches the fake or fails.
    const body = { schema: 'dada', input_text: `Eine Blume auf der Wiese ${i}`, ...(s.comfyui ? { output_configs: ['sd35_large'] } : {}) }
    s.answer = await execute(instances[s.instance]!.url, body)
  })

  // The kill falls once the victim has answered and the GPU queue is under way, while it still holds ComfyUI
  // runs in flight: conditions on the answers, not a timer, so a slow machine moves the moment, not the case.
  const victimsComfyuiOpen = (): number => sent.filter((s) => s.instance === VICTIM && s.comfyui && s.answer === undefined).length
  for (;;) {
    const victimAcks = sent.filter((s) => s.instance === VICTIM && acknowledged(s)).length
    const comfyuiAcks = sent.filter((s) => s.comfyui && acknowledged(s)).length
    if (victimAcks >= 1 && comfyuiAcks >= 3 && victimsComfyuiOpen() >= 2) break
    if (victimsComfyuiOpen() < 2 || sent.every((s) => s.answer !== undefined)) {
      t.fail('the load ended before the kill could fall mid-run', { answers: sent.map((s) => s.answer) })
      return
    }
    await sleep(20)
  }
  const answeredBeforeKill = sent.filter((s) => s.answer !== undefined).length
  const openAtKill = victimsComfyuiOpen()
  // Prompts on ComfyUI at the kill: one of the victim's keeps running there after its slot is free (see the README).
  const finishedAtKill = new Set(comfyui.events.filter((e) => e.type === 'executing' && e.data.node === null).map((e) => e.data.prompt_id))
  const onComfyuiAtKill = comfyui.prompts.map((p) => p.prompt_id).filter((id) => id !== undefined && !finishedAtKill.has(id))
  await instances[VICTIM]!.kill()
  await Promise.all(inFlight)
  const loadMs = Date.now() - loadBegan

  const acks = sent.filter(acknowledged)
  const refused = sent.filter((s) => s.answer?.kind === 'answer' && !acknowledged(s))
  const unanswered = sent.filter((s) => s.answer?.kind === 'none')
  // Only the killed instance may leave a request without an acknowledgement: the others had room for the whole load.
  t.same(sent.filter((s) => s.instance !== VICTIM && !acknowledged(s)).map((s) => s.answer), [], 'every request to a surviving instance was acknowledged (200 with a run_id)')
  t.ok(unanswered.length > 0, `requests in flight to the killed instance got no answer (${unanswered.length}; ${openAtKill} ComfyUI executes were open at the kill)`)
  t.ok(acks.some((s) => s.instance === VICTIM), 'the killed instance had acknowledged runs before the kill')

  const figures = {
    lost: 0,
    /** prompt ids of the acknowledged ComfyUI runs' outputs */
    ackedPrompts: new Set<string>(),
    interrupted: null as number | null,
    listed: {} as Record<string, number>
  }

  await t.test('every acknowledged run is whole on both survivors: completed, the same bytes, matching their sha256', async (t) => {
    const problems: string[] = []
    await mapLimited(acks, 8, async (s) => {
      const runId = runIdOf(s)
      const served = await Promise.all(survivors.map(async (survivor) => await readRun(survivor.url, runId)))
      const why = served.map(wholeRunProblem).find((problem) => problem !== null)
      const hashes = served.map((run) => JSON.stringify(run.media.map((m) => m.sha256)))
      if (why !== undefined) problems.push(`${runId} (acknowledged by instance ${s.instance}): ${why}`)
      else if (new Set(hashes).size !== 1) problems.push(`${runId}: the survivors serve different bytes (${hashes.join(' / ')})`)
      else if (served[0]!.metadata!.outputs[0]!.backend !== (s.comfyui ? 'comfyui' : 'builtin')) problems.push(`${runId}: made by ${served[0]!.metadata!.outputs[0]!.backend}`)
      for (const output of served[0]!.metadata?.outputs ?? []) if (output.source.prompt_id !== undefined) figures.ackedPrompts.add(output.source.prompt_id)
    })
    figures.lost = problems.length
    t.same(problems, [], `${acks.length} acknowledged runs read from ${names(survivors)}`)
  })

  await t.test(`the ComfyUI fake never held more than COMFYUI_CONCURRENCY=${COMFYUI_CONCURRENCY} prompts at once`, async (t) => {
    const comfyuiAcks = acks.filter((s) => s.comfyui).length
    t.ok(comfyui.prompts.length >= comfyuiAcks, `it received ${comfyui.prompts.length} prompts for ${comfyuiAcks} acknowledged ComfyUI runs`)
    t.ok(comfyui.maxQueued <= COMFYUI_CONCURRENCY, `at most ${comfyui.maxQueued} queued or running at once`)
  })

  // The victim's runs that were in flight say `running` in the shared store until someone ends them.
  const interruptedTest = 'the runs the killed instance left running end as failed with RUN_INTERRUPTED, while the survivors run'
  if (findsStoppedInstances) {
    await t.test(interruptedTest, async (t) => {
      const deadline = Date.now() + 60_000
      let running: string[] = []
      for (;;) {
        running = [...new Set((await Promise.all(survivors.map(async (survivor) => [...(await runsListedAt(survivor.url, { status: 'running' })).keys()]))).flat())]
        if (running.length === 0 || Date.now() > deadline) break
        await sleep(250)
      }
      t.same(running, [], 'no run says running on either survivor', running.length === 0 ? {} : await whyRunning(cluster.databaseUrl, survivors, running))
      figures.interrupted = await countInterrupted(t, survivors[0]!.url, new Set(acks.map(runIdOf)))
      t.ok(figures.interrupted > 0, `${figures.interrupted} runs ended as RUN_INTERRUPTED`)
    })
  } else {
    // Not run: without that check nothing ends them before the next start, so polling would only wait out its deadline.
    await t.test(interruptedTest, { todo: 'needs STOPPED_INSTANCE_CHECK_MS (instances ending the runs of an instance that stopped without closing), not on this branch yet' }, () => {})
  }

  await t.test('GET /api/runs lists the same runs on both survivors, every acknowledged one among them', async (t) => {
    const listings = await Promise.all(survivors.map(async (survivor) => await runsListedAt(survivor.url)))
    survivors.forEach((survivor, i) => { figures.listed[survivor.url] = listings[i]!.size })
    t.same([...listings[1]!.keys()].sort(), [...listings[0]!.keys()].sort(), 'the same run ids')
    if (findsStoppedInstances) t.same(Object.fromEntries(listings[1]!), Object.fromEntries(listings[0]!), 'with the same status')
    t.same(acks.map(runIdOf).filter((id) => !listings[0]!.has(id)), [], `every acknowledged run is listed (${listings[0]!.size} runs in all)`)
    t.ok(listings[0]!.size <= EXECUTES, 'no more runs than executes sent')
    // The listing is the shared index, the metadata the store: an index row left behind by the kill shows here.
    const stale: string[] = []
    await mapLimited([...listings[0]!], 8, async ([runId, status]) => {
      const run = await readRun(survivors[0]!.url, runId)
      if (run.metadata?.status !== status) stale.push(`${runId}: listed as ${status}, its metadata says ${run.metadata?.status ?? run.status}`)
    })
    t.same(stale, [], 'each run is listed with the status its metadata has')
  })

  await t.test('a new instance started over the same bucket and database lists and serves the same', async (t) => {
    const before = await runsListedAt(survivors[0]!.url)
    const fresh = await cluster.start()
    const listed = await runsListedAt(fresh.url)
    figures.listed[`${fresh.url} (new)`] = listed.size
    t.same([...listed.keys()].sort(), [...before.keys()].sort(), 'the same run ids as the survivors')
    const problems: string[] = []
    await mapLimited(acks, 8, async (s) => {
      const [fromFresh, fromSurvivor] = await Promise.all([readRun(fresh.url, runIdOf(s)), readRun(survivors[0]!.url, runIdOf(s))])
      const why = wholeRunProblem(fromFresh)
      if (why !== null) problems.push(`${runIdOf(s)}: ${why}`)
      else if (JSON.stringify(fromFresh.media) !== JSON.stringify(fromSurvivor.media)) problems.push(`${runIdOf(s)}: other bytes than the survivor's`)
    })
    t.same(problems, [], `${acks.length} acknowledged runs whole on the new instance, the same bytes`)
    // Without the survivors' check, a start is what ends the killed instance's runs.
    figures.interrupted ??= await countInterrupted(t, fresh.url, new Set(acks.map(runIdOf)))
  })

  const lines = [
    `scale-out: 3 instances (one PostgreSQL database, one S3 bucket, one ComfyUI fake with ${COMFYUI_RUN_MS} ms per prompt), ${EXECUTES} executes (${sent.filter((s) => s.comfyui).length} ComfyUI, ${sent.filter((s) => !s.comfyui).length} builtin), instance ${VICTIM + 1} killed with SIGKILL after ${answeredBeforeKill} answers`,
    `acknowledged: ${acks.length} (${acks.filter((s) => s.comfyui).length} ComfyUI, ${acks.filter((s) => s.instance === VICTIM).length} by the killed instance before the kill)`,
    `refused: ${refused.length} (${byCount(refused.map((s) => `${(s.answer as { status: number }).status} ${String((s.answer as { body: { code?: string } }).body?.code)}`))}); unanswered (in flight to the killed instance): ${unanswered.length}`,
    `lost: ${figures.lost} of the acknowledged`,
    `ComfyUI: ${comfyui.prompts.length} prompts, at most ${comfyui.maxQueued} queued or running at once (COMFYUI_CONCURRENCY=${COMFYUI_CONCURRENCY}); a prompt of the killed instance was on ComfyUI at the kill: ${onComfyuiAtKill.some((id) => !figures.ackedPrompts.has(id!)) ? 'yes' : 'no'}`,
    `runs listed: ${Object.entries(figures.listed).map(([url, n]) => `${n} on ${url}`).join(', ')}`,
    `interrupted: ${figures.interrupted ?? 'not counted'} runs of the killed instance ended as RUN_INTERRUPTED${findsStoppedInstances ? ' by the survivors' : ' by the new instance\'s start'}`,
    `time: load ${(loadMs / 1000).toFixed(1)} s, whole test ${((Date.now() - began) / 1000).toFixed(1)} s; starts (to startup_done) ${cluster.starts.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ')}`
  ]
  t.comment(lines.join('\n'))
  const report = process.env.SCALE_OUT_REPORT
  if (report !== undefined && report !== '') {
    await mkdir(dirname(report), { recursive: true })
    await writeFile(report, lines.join('\n') + '\n')
  }
})

/** Runs the listing names that nobody acknowledged: each ended as RUN_INTERRUPTED, or completed with its answer cut off by the kill. */
async function countInterrupted (t: Test, url: string, acked: Set<string>): Promise<number> {
  let interrupted = 0
  const others: string[] = []
  for (const runId of (await runsListedAt(url)).keys()) {
    if (acked.has(runId)) continue
    const run = await readRun(url, runId)
    if (run.metadata?.status === 'failed' && run.metadata.errors.some((e) => e.code === 'RUN_INTERRUPTED')) interrupted++
    else if (run.metadata?.status !== 'completed') others.push(`${runId}: ${run.metadata?.status ?? run.status} ${JSON.stringify(run.metadata?.errors ?? [])}`)
  }
  t.same(others, [], 'every run nobody acknowledged ended as RUN_INTERRUPTED or completed')
  return interrupted
}

/** What a failing check of the running runs shows: the index's rows, the store's metadata as served, the survivors' warnings. */
async function whyRunning (databaseUrl: string, survivors: ServerProcess[], running: string[]): Promise<Record<string, unknown>> {
  const rows = await query(databaseUrl, 'SELECT run_id, status, updated_at, session FROM runs WHERE run_id = ANY($1)', [running])
  const journal = await query(databaseUrl, 'SELECT * FROM run_journal')
  const sessions = await query(databaseUrl, 'SELECT * FROM run_index_sessions')
  const served = await Promise.all(running.map(async (id) => (await readRun(survivors[0]!.url, id)).metadata))
  const warnings = survivors.map((s) => s.output().split('\n').filter((line) => /"level":(40|50|60)/.test(line)).slice(-20))
  return { rows, journal, sessions, served: served.map((m) => ({ run_id: m?.run_id, status: m?.status, updated_at: m?.updated_at, errors: m?.errors })), warnings }
}

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { PassThrough } from 'node:stream'
import { errorResponses, STORAGE_FAILURES } from '../schemas/common.js'
import { BlockedAnswer, ExecuteBody, ExecuteOkResponse, PipelineList } from '../schemas/pipeline.js'
import { EXECUTION_MODES } from '../schemas/run.js'
import type { PipelineEvent } from '../services/pipeline/events.js'
import type { PipelineRunner } from '../services/pipeline/pipeline-runner.js'
import type { PreparedRun } from '../services/pipeline/prepare-run.js'

// Proxies close connections that stay silent; a comment line keeps a long generation's stream open.
const HEARTBEAT_MS = 15_000

const EXECUTE_DESCRIPTION = `Creates the run first, then runs the stages: pre-interception (translation to English, safety check of the input),
interception (the pipeline transforms the prompt), pre-output safety (the prompt checked again for each media type),
generation (each output config on its backend, through the backend's queue; every result is stored in the run).
metadata.json records every stage with its output, provider, model, duration and decision.

Answers 403 \`{status: "blocked", run_id, stage, reason, codes}\` when a safety check blocks (the run is kept with status "blocked");
404 for an unknown schema or output config; 503 when a backend is not configured, or with \`Retry-After\` when its queue is full
(nothing is written then); 502 or 504 when a backend or the LLM failed or timed out (the run is "failed", with the error recorded,
and outputs stored before the failure stay); 507 \`INSUFFICIENT_STORAGE\` when the disk is full, 503 \`STORAGE_UNAVAILABLE\` when it
takes no writes (read-only or failing): before the run exists nothing is written, after that the run is "failed" with the error
recorded when its metadata can still be written. The \`X-Run-Id\` header names the run on every answer once it exists.

With \`Accept: text/event-stream\` the same request answers 200 with Server-Sent Events: \`run_created\` (first, with the run_id),
\`stage_started\`, \`stage_completed\` (the stage record), \`media_stored\` (with its url), then one of \`completed\` (the JSON answer),
\`blocked\` (the 403 body) or \`error\` (\`{run_id, stage, statusCode, error, code, message}\`). A client that disconnects does not stop the run.`

const pipelineRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { pipeline } = app

  app.post('/api/schema/pipeline/execute', {
    schema: {
      tags: ['pipeline'],
      summary: 'run a pipeline on a prompt and store what it makes',
      description: EXECUTE_DESCRIPTION,
      body: ExecuteBody,
      response: {
        200: ExecuteOkResponse,
        403: BlockedAnswer,
        ...errorResponses(400, 404, 500, 502, 504, ...STORAGE_FAILURES)
      }
    }
  }, async (request, reply) => {
    // A refusal (QUEUE_FULL carries its Retry-After) goes to the error handler, before anything is written or streamed.
    const prepared = pipeline.prepare(request.body)
    if (wantsEventStream(request.headers.accept)) return await streamRun(pipeline, prepared, reply)

    const outcome = await pipeline.execute(prepared)
    if (outcome.run_id !== null) void reply.header('X-Run-Id', outcome.run_id)
    if (outcome.status === 'completed') return outcome.answer
    if (outcome.status === 'blocked') return await reply.code(403).send(outcome.answer)
    throw outcome.error
  })

  app.get('/api/schema/pipelines', {
    schema: {
      tags: ['pipeline'],
      summary: 'the pipelines ("schemas") and output configs there are',
      description: 'Each pipeline with its default output configs per execution mode; each output config with its media type and whether its backend is configured (and why not); what runs the text stages in each execution mode.',
      response: { 200: PipelineList }
    }
  }, async () => {
    const modes = Object.fromEntries(EXECUTION_MODES.map((mode) => {
      const providers = pipeline.textProviders(mode)
      return [mode, { provider: providers.kind, model: providers.model, llm_steps: providers.llmSteps }]
    })) as PipelineList['execution_modes']
    return {
      pipelines: pipeline.listPipelines(),
      output_configs: app.backends.listOutputConfigs(),
      execution_modes: modes
    }
  })
}

function wantsEventStream (accept: string | undefined): boolean {
  return accept !== undefined && accept.toLowerCase().includes('text/event-stream')
}

/**
 * Answers with the run's events as they happen. The run goes on when the
 * client disconnects (Fastify then destroys the stream, and events are
 * dropped); it ends stored either way.
 */
async function streamRun (pipeline: PipelineRunner, prepared: PreparedRun, reply: FastifyReply): Promise<FastifyReply> {
  const stream = new PassThrough()
  const write = (frame: string): void => {
    if (!stream.destroyed && !stream.writableEnded) stream.write(frame)
  }
  const send = (event: PipelineEvent): void => { write(`event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`) }
  const heartbeat = setInterval(() => { write(': keep-alive\n\n') }, HEARTBEAT_MS)
  heartbeat.unref()
  void pipeline.execute(prepared, send).finally(() => {
    clearInterval(heartbeat)
    if (!stream.destroyed) stream.end()
  })
  return await reply
    .code(200)
    .header('Content-Type', 'text/event-stream; charset=utf-8')
    .header('Cache-Control', 'no-cache, no-transform')
    .header('X-Accel-Buffering', 'no')
    .send(stream)
}

export default pipelineRoutes

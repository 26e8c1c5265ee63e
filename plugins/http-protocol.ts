import fp from 'fastify-plugin'
import type { ConnectionError, FastifyError, FastifyInstance } from 'fastify'
import { maxHeaderSize, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import {
  BadRequestSyntaxError, ChunkExtensionsTooLargeError, describeError, ExpectationFailedError, HeadersTooLargeError,
  MissingHostError, RequestTimeoutError, type ErrorBody
} from '../services/errors.js'

/**
 * Requests Node's HTTP layer would refuse on its own, with an empty body or
 * one without a code, answered in the contract's shape instead, before any
 * route sees them (so no route's OpenAPI description has to list them). What
 * the parser cannot read never becomes a request (clientErrorHandler, a
 * server option of buildApp). An HTTP/1.1 request without Host (buildApp turns
 * Node's requireHostHeader off) and an Expect other than 100-continue (Node
 * emits checkExpectation for it) are refused here.
 */
export default fp(async function httpProtocolPlugin (app) {
  const { server } = app
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    refuse(app, res, new ExpectationFailedError(JSON.stringify(String(req.headers.expect).slice(0, 60))))
  })
  // Fastify's router is the server's request listener; the Host check goes in front of it.
  if (!server.listeners('request').includes(app.routing)) throw new Error('the HTTP server does not route with app.routing: the Host check cannot be put in front of it')
  server.removeListener('request', app.routing)
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.host === undefined && req.httpVersion === '1.1') refuse(app, res, new MissingHostError())
    else app.routing(req, res)
  })
}, { name: 'http-protocol' })

/** The answer is the connection's last: a body that may follow is not read. */
function refuse (app: FastifyInstance, res: ServerResponse, err: FastifyError): void {
  const { body, headers, json } = refusal(app, err)
  res.writeHead(body.statusCode, headers)
  res.end(json)
}

function refusal (app: FastifyInstance, err: FastifyError): { body: ErrorBody, headers: Record<string, string>, json: string } {
  const body = describeError(err)
  app.log.info({ code: body.code, message: body.message }, 'request refused')
  const json = JSON.stringify(body)
  return {
    body,
    json,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(json)),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'close'
    }
  }
}

/**
 * Fastify's clientErrorHandler: the parser failed (bad syntax, headers too
 * large, a request too slow), so there is no request, only the socket. The
 * answer is written raw and the connection closed: the parser cannot go on.
 */
export function clientErrorHandler (this: FastifyInstance, err: ConnectionError, socket: Socket): void {
  // A reset connection has no one left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // As Node does: an answer written into an earlier request's answer that has begun would corrupt it.
  const inFlight = (socket as Socket & { _httpMessage?: { _headerSent?: boolean } | null })._httpMessage
  const parserRefusal = refusalOfParser(err)
  if (parserRefusal === undefined || !socket.writable || inFlight?._headerSent === true) {
    socket.destroy()
    return
  }
  const { body, headers, json } = refusal(this, parserRefusal)
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.end(`HTTP/1.1 ${body.statusCode} ${body.error}\r\n${head}\r\n${json}`, () => socket.destroy())
}

/** What a client is told of a parser error; undefined for a failure of the connection itself (nothing to answer). */
function refusalOfParser (err: ConnectionError & { reason?: string }): FastifyError | undefined {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW': return new HeadersTooLargeError(maxHeaderSize)
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW': return new ChunkExtensionsTooLargeError()
    case 'ERR_HTTP_REQUEST_TIMEOUT': return new RequestTimeoutError()
  }
  // llhttp's reasons are fixed phrases ("Duplicate Content-Length"), never request bytes.
  return typeof err.code === 'string' && err.code.startsWith('HPE_') ? new BadRequestSyntaxError(err.reason ?? err.code) : undefined
}

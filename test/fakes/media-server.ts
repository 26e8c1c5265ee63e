import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Route = (request: IncomingMessage, response: ServerResponse) => void

/**
 * A plain file host on 127.0.0.1 (what a CDN or a delivery host is to us),
 * with routes a test sets up: bytes, errors, slow or endless answers, redirects.
 */
export async function startMediaServer (routes: Record<string, Route> = {}): Promise<{ url: string, routes: Record<string, Route>, requests: string[], close: () => Promise<void> }> {
  const requests: string[] = []
  const server = createServer((request, response) => {
    requests.push(request.url ?? '')
    const route = routes[(request.url ?? '').split('?')[0]!]
    if (route === undefined) {
      response.writeHead(404).end()
      return
    }
    route(request, response)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export const serveBytes = (bytes: Buffer, contentType = 'application/octet-stream'): Route => (_request, response) => {
  response.writeHead(200, { 'Content-Type': contentType, 'Content-Length': bytes.length }).end(bytes)
}

export const serveStatus = (status: number, body = ''): Route => (_request, response) => {
  response.writeHead(status, { 'Content-Type': 'text/plain' }).end(body)
}

/** Sends the headers and part of the body, then never finishes. */
export const serveStall = (bytes: Buffer): Route => (_request, response) => {
  response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': bytes.length })
  response.write(bytes.subarray(0, Math.floor(bytes.length / 2)))
}

/** Claims a length, sends less, and closes the connection. */
export const serveTruncated = (bytes: Buffer): Route => (_request, response) => {
  response.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': bytes.length })
  response.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => response.socket?.destroy())
}

export const redirectTo = (location: string): Route => (_request, response) => {
  response.writeHead(302, { Location: location }).end()
}

/** No Content-Length: the size is only known by counting. */
export const serveChunked = (bytes: Buffer, chunkSize = 16 * 1024): Route => (_request, response) => {
  response.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' })
  for (let i = 0; i < bytes.length; i += chunkSize) response.write(bytes.subarray(i, i + chunkSize))
  response.end()
}

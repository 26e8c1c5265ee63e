import { connect } from 'node:net'

// HTTP spoken byte by byte: app.inject and every HTTP client build well-formed
// requests, and malformed ones are what the server's parser must answer.

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

export interface RawExchange {
  /** the answers in the order they came, interim ones (100 Continue) included */
  responses: RawResponse[]
  /** the server closed the connection (it was still open after waitMs otherwise) */
  closedByServer: boolean
}

/**
 * Sends the bytes on a fresh connection and reads until the server closes it,
 * or until waitMs passes (then the client closes it: a connection kept alive).
 */
export async function rawExchange (port: number, request: string | Buffer, waitMs = 5000): Promise<RawExchange> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let closedByServer = true
    const timer = setTimeout(() => { closedByServer = false; socket.destroy() }, waitMs)
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      try {
        resolve({ responses: parseResponses(Buffer.concat(chunks)), closedByServer })
      } catch (err) {
        reject(err)
      }
    })
    socket.write(request)
  })
}

function parseResponses (bytes: Buffer): RawResponse[] {
  const responses: RawResponse[] = []
  let rest = bytes
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    if (end < 0) throw new Error(`an incomplete response head: ${JSON.stringify(rest.toString('latin1').slice(0, 200))}`)
    const [statusLine, ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n')
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)
    if (status === null) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`)
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    rest = rest.subarray(end + 4)
    let body: Buffer = Buffer.alloc(0)
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'])
      body = rest.subarray(0, length)
      rest = rest.subarray(length)
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = []
      for (;;) {
        const lineEnd = rest.indexOf('\r\n')
        const size = Number.parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16)
        parts.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size))
        rest = rest.subarray(lineEnd + 2 + size + 2)
        if (size === 0) break
      }
      body = Buffer.concat(parts)
    }
    responses.push({ status: Number(status[1]), headers, body: body.toString('utf8') })
  }
  return responses
}

import { execFile } from 'node:child_process'
import { access, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** openapi-client/: its own package.json, since openapi-typescript 7 wants TypeScript 5 and runstore builds with 6. */
export const CLIENT_DIR = fileURLToPath(new URL('../../openapi-client/', import.meta.url))

/** Installs openapi-client/'s tools from its lock file when they are not there yet. */
export async function installClientTools (): Promise<void> {
  const installed = await access(join(CLIENT_DIR, 'node_modules', '.package-lock.json')).then(() => true, () => false)
  if (!installed) await run('npm', ['ci', '--prefix', CLIENT_DIR, '--no-audit', '--no-fund'], { timeout: 300_000 })
}

async function importFromClient (path: string): Promise<any> {
  return await import(pathToFileURL(join(CLIENT_DIR, path)).href)
}

/**
 * Writes openapi-client/generated/runstore.ts, the types openapi-typescript
 * makes of `document`, with binary strings as Blob (the transform its
 * documentation gives for file uploads).
 */
export async function generateTypes (document: unknown): Promise<string> {
  const { default: openapiTS, astToString } = await importFromClient('node_modules/openapi-typescript/dist/index.mjs')
  const { default: ts } = await importFromClient('node_modules/typescript/lib/typescript.js')
  const blob = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier('Blob'))
  const ast = await openapiTS(document, {
    transform: (schema: { format?: string }) => schema.format === 'binary' ? blob : undefined
  })
  const source = astToString(ast) as string
  await mkdir(join(CLIENT_DIR, 'generated'), { recursive: true })
  await writeFile(join(CLIENT_DIR, 'generated', 'runstore.ts'), source)
  return source
}

/** Type-checks openapi-client/client.ts against the generated types with its own TypeScript and compiles it to dist/; the compiler's report when it fails. */
export async function compileClient (): Promise<{ ok: boolean, report: string }> {
  try {
    await run(process.execPath, [join(CLIENT_DIR, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', CLIENT_DIR], { timeout: 300_000 })
    return { ok: true, report: '' }
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string, stderr?: string }
    return { ok: false, report: `${stdout}${stderr}` }
  }
}

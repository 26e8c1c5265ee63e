import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { aptInstall } from './apt-install.js'
import { chmod, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import root, { type Test } from 'tap'
import { LOCK_SPACE } from '../services/postgres/lock-keys.js'

export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin'

/**
 * Debian's PostgreSQL 15, installed when missing (as test/browser/chromium.ts
 * does for Chromium: CI installs it in .ci/run, this covers `npm test` on a
 * fresh machine of the same kind, where we are root).
 */
function ensurePostgres (): void {
  if (existsSync(join(POSTGRES_BIN, 'initdb'))) return
  aptInstall('postgresql-15', `the PostgreSQL tests need ${POSTGRES_BIN}`)
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => { resolve(port) })
    })
  })
}

interface Cluster {
  port: number
  admin: pg.Pool
}

const PREFIX = 'runstore-pg-'
let cluster: Promise<Cluster> | undefined
let databases = 0

/**
 * A PostgreSQL cluster of this test process in a temporary folder, on a
 * free port and a unix socket in that folder, stopped when the process's
 * tests end. PostgreSQL refuses to run as root: then it runs as the
 * postgres user that Debian's package creates.
 */
function as (command: string, args: string[]): void {
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', join(POSTGRES_BIN, command), ...args]] : [join(POSTGRES_BIN, command), args]
  execFileSync(file, argv, { stdio: 'pipe', timeout: 120_000 })
}

/** Clusters whose test process was killed (a timeout) before it could stop them. */
async function stopOrphans (): Promise<void> {
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue
    const dir = join(tmpdir(), name)
    const owner = Number(await readFile(join(dir, 'owner'), 'utf8').catch(() => 'NaN'))
    if (Number.isInteger(owner) && isAlive(owner)) continue
    try {
      as('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', 'stop'])
    } catch {
      // not running
    }
    await rm(dir, { recursive: true, force: true })
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function startCluster (): Promise<Cluster> {
  ensurePostgres()
  await stopOrphans()
  const dir = await mkdtemp(join(tmpdir(), PREFIX))
  await writeFile(join(dir, 'owner'), String(process.pid))
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString())
    await chown(dir, uid, gid)
  }
  await chmod(dir, 0o700)
  const data = join(dir, 'data')
  as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '-N'])
  const port = await freePort()
  // fsync off: a test cluster is thrown away, and durability is PostgreSQL's, not what these tests check.
  as('pg_ctl', ['-D', data, '-w', '-t', '60', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start'])
  const stop = (): void => {
    try {
      as('pg_ctl', ['-D', data, '-m', 'immediate', 'stop'])
    } catch {
      // already gone
    }
    execFileSync('rm', ['-rf', dir])
  }
  process.once('exit', stop)
  const admin = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, max: 2 })
  root.teardown(async () => {
    await admin.end()
    process.removeListener('exit', stop)
    stop()
    await rm(dir, { recursive: true, force: true })
  })
  return { port, admin }
}

/** The URL of a new, empty database of this process's cluster, dropped after the test. */
export async function freshDatabase (t: Test): Promise<string> {
  cluster ??= startCluster()
  const { port, admin } = await cluster
  const name = `runstore_${process.pid}_${++databases}`
  await admin.query(`CREATE DATABASE ${name}`)
  t.teardown(async () => { await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) })
  return `postgres://postgres@127.0.0.1:${port}/${name}`
}

/** The rows of one statement on a connection of its own. */
export async function query<T extends pg.QueryResultRow> (url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql, params)).rows
  } finally {
    await client.end()
  }
}

/**
 * Ends the session connections of the run indexes open on this database (only the one opened last, with
 * `newest`), as the server does when their host dies; resolves once they are gone.
 */
export async function killIndexSessions (url: string, newest = false): Promise<void> {
  const [{ id }] = await query<{ id: number }>(url, 'SELECT max(id)::integer AS id FROM run_index_sessions') as [{ id: number }]
  const pids = (await query<{ pid: number }>(url, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::integer::oid
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND (NOT $3 OR objid = $2::integer::oid)`,
  [LOCK_SPACE.indexSession, id, newest])).map((row) => row.pid)
  await query(url, 'SELECT pg_terminate_backend(pid) FROM unnest($1::integer[]) pid', [pids])
  while ((await query(url, 'SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::integer[])', [pids])).length > 0);
}

import t from 'tap'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, stringify } from 'yaml'
import { ConfigSchema, loadConfig } from '../config.js'
import { checkCompose, checkComposeFiles, environmentNames, type ComposeCheckInput } from '../deploy/compose-check.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const settings = Object.keys(ConfigSchema.properties)

t.test('the committed compose.yaml passes the check', async (t) => {
  t.same(await checkComposeFiles(root, settings), [])
})

t.test('the committed compose.yaml is the scale-out setup, and its runstore settings load', async (t) => {
  const compose = parse(await readFile(join(root, 'compose.yaml'), 'utf8'))
  const services = compose.services
  t.same(Object.keys(services).sort(), ['create-bucket', 'lb', 'minio', 'postgres', 'runstore'])
  t.equal(services.runstore.build, '.')
  t.equal(services.runstore.deploy.replicas, 3)
  t.match(services.postgres.image, /^postgres:15/)
  t.same(services.postgres.volumes, ['pgdata:/var/lib/postgresql/data'])
  t.match(services.minio.image, /^minio\/minio:RELEASE\./)
  t.equal(services.runstore.depends_on['create-bucket'].condition, 'service_completed_successfully')
  t.same(Object.keys(compose.volumes).sort(), ['miniodata', 'pgdata'])

  // The values as compose would pass them with nothing set in the shell: ${NAME:-default} → default.
  const env = Object.fromEntries(Object.entries(services.runstore.environment as Record<string, unknown>)
    .map(([name, value]) => [name, String(value).replace(/\$\{[A-Za-z0-9_]+:-([^}]*)\}/g, '$1')]))
  const config = loadConfig(env)
  t.equal(config.STORAGE_DRIVER, 's3')
  t.equal(config.S3_BUCKET, 'runstore')
  t.equal(config.S3_ENDPOINT, 'http://minio:9000')
  t.equal(config.S3_FORCE_PATH_STYLE, true)
  t.equal(config.DATABASE_URL, 'postgres://runstore:change-me-postgres@postgres:5432/runstore')
  t.equal(config.HOST, '0.0.0.0')
  t.equal(config.ADMIN_TOKEN, undefined, 'an empty ADMIN_TOKEN is unset')
  t.equal(config.COMFYUI_URL, undefined)
  // The bucket the one-shot service makes is the one runstore uses.
  t.equal(services['create-bucket'].environment.S3_BUCKET, services.runstore.environment.S3_BUCKET)
})

// A small valid compose file and documentation for it; each test breaks one thing.
function baseCompose (): Record<string, any> {
  return {
    services: {
      app: {
        build: '.',
        environment: { PORT: 3000, STORAGE_DRIVER: 's3' },
        volumes: ['data:/data/runs', './deploy/nginx.conf:/etc/x.conf:ro', '/tmp/anonymous'],
        depends_on: { db: { condition: 'service_healthy' } }
      },
      db: { image: 'postgres:15', healthcheck: { test: ['CMD', 'true'] }, environment: ['POSTGRES_DB=x', 'POSTGRES_USER'] }
    },
    volumes: { data: null }
  }
}

function input (compose: unknown, over: Partial<ComposeCheckInput> = {}): ComposeCheckInput {
  return {
    compose: typeof compose === 'string' ? compose : stringify(compose),
    composeName: 'compose.yaml',
    settings: ['PORT', 'STORAGE_DRIVER', 'HOST'],
    readme: '| `PORT` | … |\n| `STORAGE_DRIVER` | … |\n| `HOST` | … |',
    envExample: 'PORT=3000\n# STORAGE_DRIVER=local\nHOST=127.0.0.1\n',
    exists: (path) => ['Dockerfile', 'deploy/nginx.conf', 'other/Containerfile'].includes(path),
    ...over
  }
}

t.test('a valid file has no problems', async (t) => {
  t.same(checkCompose(input(baseCompose())), [])
})

t.test('a variable of a runstore service that README.md or .env.example does not document is reported', async (t) => {
  const compose = baseCompose()
  compose.services.app.environment.HOST = '0.0.0.0'
  t.same(checkCompose(input(compose, { readme: '`PORT` `STORAGE_DRIVER`' })), ['service app: HOST is not in README.md'])
  t.same(checkCompose(input(compose, { envExample: 'PORT=1\nSTORAGE_DRIVER=local\n# HOSTS=x\n' })), ['service app: HOST is not in .env.example'])
})

t.test('a variable config.ts does not define is reported, in either environment syntax', async (t) => {
  const compose = baseCompose()
  compose.services.app.environment = ['PORT=3000', 'STORAGE_DIRVER=s3', 'RUNSTORE_SECRET']
  t.same(checkCompose(input(compose)), [
    'service app: STORAGE_DIRVER is not a setting of config.ts',
    'service app: RUNSTORE_SECRET is not a setting of config.ts'
  ])
  // The variables of services that are not runstore (images) are theirs.
  t.same(checkCompose(input(baseCompose())).length, 0)
})

t.test('env_file and odd variable names are reported', async (t) => {
  const compose = baseCompose()
  compose.services.app.env_file = '.env'
  compose.services.db.environment = { 'BAD-NAME': 1 }
  t.same(checkCompose(input(compose)), [
    'service app: env_file cannot be checked; set the variables under environment',
    'service db: "BAD-NAME" is not a variable name'
  ])
})

t.test('anchors and merge keys are followed', async (t) => {
  const text = [
    'x-runstore: &runstore',
    '  build: .',
    '  environment:',
    '    PORT: 3000',
    '    UNDOCUMENTED: 1',
    'services:',
    '  one:',
    '    <<: *runstore',
    '  two:',
    '    <<: *runstore',
    ''
  ].join('\n')
  t.same(checkCompose(input(text)), [
    'service one: UNDOCUMENTED is not a setting of config.ts',
    'service two: UNDOCUMENTED is not a setting of config.ts'
  ])
})

t.test('structure problems are reported', async (t) => {
  t.test('not YAML', async (t) => {
    const problems = checkCompose(input('services:\n  app: [unclosed\n'))
    t.ok(problems.length > 0)
    t.match(problems[0], /^compose\.yaml: /)
    t.match(checkCompose(input('a: 1\na: 2\n'))[0], /^compose\.yaml: .*[Uu]nique/)
  })
  t.test('no services', async (t) => {
    t.same(checkCompose(input('services: {}\n')), ['compose.yaml: no services'])
    t.same(checkCompose(input('- a\n')), ['compose.yaml: no services'])
    t.same(checkCompose(input('volumes: {}\n')), ['compose.yaml: no services'])
  })
  t.test('a service that is not a mapping, or has neither image nor build', async (t) => {
    const compose = baseCompose()
    compose.services.odd = 'nginx'
    compose.services.empty = { ports: ['80:80'] }
    t.same(checkCompose(input(compose)), ['service odd: not a mapping', 'service empty: neither image nor build'])
  })
  t.test('no service built from the repository', async (t) => {
    const compose = baseCompose()
    compose.services.app.build = undefined
    compose.services.app.image = 'runstore:latest'
    t.same(checkCompose(input(compose)), ['compose.yaml: no service is built from the repository (build:)'])
  })
  t.test('builds: a context is needed and its Dockerfile must exist', async (t) => {
    const compose = baseCompose()
    compose.services.app.build = { context: 'other', dockerfile: 'Containerfile' }
    t.same(checkCompose(input(compose)), [])
    compose.services.app.build = { context: 'other' }
    t.same(checkCompose(input(compose)), ['service app: other/Dockerfile does not exist'])
    compose.services.app.build = { dockerfile: 'Dockerfile' }
    t.same(checkCompose(input(compose)), ['service app: build needs a context'])
  })
  t.test('depends_on names services, known conditions, and healthchecks for service_healthy', async (t) => {
    const compose = baseCompose()
    compose.services.app.depends_on = ['db', 'cache']
    t.same(checkCompose(input(compose)), ['service app: depends on cache, which is not a service'])
    compose.services.app.depends_on = { db: { condition: 'service_ready' } }
    t.same(checkCompose(input(compose)), ['service app: unknown condition service_ready for db'])
    compose.services.app.depends_on = { db: { condition: 'service_healthy' } }
    compose.services.db.healthcheck = undefined
    t.same(checkCompose(input(compose)), ['service app: waits for db to be healthy, but db declares no healthcheck'])
    compose.services.app.depends_on = { db: null }
    t.same(checkCompose(input(compose)), [])
    compose.services.app.depends_on = 'db'
    t.same(checkCompose(input(compose)), [], 'not a list or mapping: nothing to follow')
  })
  t.test('volumes: named ones declared, bind sources present', async (t) => {
    const compose = baseCompose()
    compose.volumes = undefined
    compose.services.app.volumes = [
      'data:/data/runs',
      './missing.conf:/etc/y.conf',
      { type: 'volume', source: 'cache', target: '/cache' },
      { type: 'bind', source: './deploy/nginx.conf', target: '/etc/z.conf' },
      { type: 'tmpfs', target: '/tmp' }
    ]
    t.same(checkCompose(input(compose)), [
      'service app: volume data is not declared under volumes',
      'service app: mounts ./missing.conf, which does not exist',
      'service app: volume cache is not declared under volumes'
    ])
  })
})

t.test('environmentNames takes both syntaxes and ignores anything else', async (t) => {
  t.same(environmentNames({ A: 1, B: null }), ['A', 'B'])
  t.same(environmentNames(['A=1=2', 'B']), ['A', 'B'])
  t.same(environmentNames(undefined), [])
  t.same(environmentNames(null), [])
  t.same(environmentNames('A=1'), [])
})

t.test('checkComposeFiles reads the compose file, README.md and .env.example of a folder', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'runstore-compose-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'deploy'))
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n')
  await writeFile(join(dir, 'deploy', 'nginx.conf'), '')
  await writeFile(join(dir, 'README.md'), '`PORT` `STORAGE_DRIVER`')
  await writeFile(join(dir, '.env.example'), 'PORT=3000\n')
  await writeFile(join(dir, 'docker-compose.yml'), stringify(baseCompose()))
  t.same(await checkComposeFiles(dir, settings, 'docker-compose.yml'), ['service app: STORAGE_DRIVER is not in .env.example'])
  await t.rejects(checkComposeFiles(dir, settings), { code: 'ENOENT' })
})

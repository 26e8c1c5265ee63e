import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, normalize, resolve } from 'node:path'
import { parseDocument } from 'yaml'

// A static check of compose.yaml (no Docker engine where runstore is
// developed, so the file is never run here): it must parse, hang together
// (every service has an image or a build, depends_on names services, named
// volumes are declared, files it mounts or builds from exist), and every
// variable it sets for a runstore service must be a setting of config.ts that
// README.md and .env.example document, so the compose file cannot drift into
// names the service silently ignores.

export interface ComposeCheckInput {
  // The compose file's text and the name used in messages.
  compose: string
  composeName: string
  // The setting names config.ts defines (the keys of ConfigSchema).
  settings: Iterable<string>
  readme: string
  envExample: string
  // Whether a path relative to the compose file's folder exists (build contexts, bind mounts).
  exists: (relativePath: string) => boolean
}

type Mapping = Record<string, unknown>

const CONDITIONS = new Set(['service_started', 'service_healthy', 'service_completed_successfully'])
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

function isMapping (value: unknown): value is Mapping {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

// `environment:` as a mapping (KEY: value) or a list (KEY=value, or KEY alone to pass the shell's).
export function environmentNames (environment: unknown): string[] {
  if (environment === undefined || environment === null) return []
  if (Array.isArray(environment)) return environment.map((entry) => String(entry).split('=', 1)[0]!)
  if (isMapping(environment)) return Object.keys(environment)
  return []
}

function dependsOnTargets (dependsOn: unknown): Array<{ name: string, condition: unknown }> {
  if (Array.isArray(dependsOn)) return dependsOn.map((name) => ({ name: String(name), condition: undefined }))
  if (isMapping(dependsOn)) {
    return Object.entries(dependsOn).map(([name, spec]) => ({ name, condition: isMapping(spec) ? spec.condition : undefined }))
  }
  return []
}

// Short syntax "source:target[:mode]" or long syntax { type, source, target }.
function volumeSource (volume: unknown): { source: string, bind: boolean } | undefined {
  if (typeof volume === 'string') {
    const parts = volume.split(':')
    if (parts.length < 2) return undefined // an anonymous volume: just a target
    const source = parts[0]!
    return { source, bind: /^[./~]/.test(source) }
  }
  if (isMapping(volume) && typeof volume.source === 'string') {
    return { source: volume.source, bind: volume.type === 'bind' }
  }
  return undefined
}

function checkBuild (name: string, build: unknown, exists: ComposeCheckInput['exists'], problems: string[]): void {
  const context = typeof build === 'string' ? build : isMapping(build) && typeof build.context === 'string' ? build.context : undefined
  if (context === undefined) {
    problems.push(`service ${name}: build needs a context`)
    return
  }
  const dockerfile = isMapping(build) && typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile'
  if (!exists(join(context, dockerfile))) problems.push(`service ${name}: ${join(context, dockerfile)} does not exist`)
}

function checkDocumented (service: string, variable: string, input: ComposeCheckInput, settings: Set<string>, problems: string[]): void {
  if (!settings.has(variable)) {
    problems.push(`service ${service}: ${variable} is not a setting of config.ts`)
    return
  }
  if (!input.readme.includes('`' + variable + '`')) problems.push(`service ${service}: ${variable} is not in README.md`)
  if (!new RegExp(`^#?\\s*${escapeRegExp(variable)}=`, 'm').test(input.envExample)) {
    problems.push(`service ${service}: ${variable} is not in .env.example`)
  }
}

// Every problem found, as one line each; none: the file passes.
export function checkCompose (input: ComposeCheckInput): string[] {
  const document = parseDocument(input.compose, { merge: true })
  if (document.errors.length > 0) {
    return document.errors.map((error) => `${input.composeName}: ${error.message.split('\n')[0]!.replace(/:$/, '')}`)
  }
  const root: unknown = document.toJS()
  if (!isMapping(root) || !isMapping(root.services) || Object.keys(root.services).length === 0) {
    return [`${input.composeName}: no services`]
  }
  const services = root.services
  const declaredVolumes = isMapping(root.volumes) ? new Set(Object.keys(root.volumes)) : new Set<string>()
  const settings = new Set(input.settings)
  const problems: string[] = []
  let runstoreServices = 0

  for (const [name, service] of Object.entries(services)) {
    if (!isMapping(service)) {
      problems.push(`service ${name}: not a mapping`)
      continue
    }
    if (service.image === undefined && service.build === undefined) problems.push(`service ${name}: neither image nor build`)
    if (service.build !== undefined) checkBuild(name, service.build, input.exists, problems)

    for (const { name: target, condition } of dependsOnTargets(service.depends_on)) {
      const dependency = services[target]
      if (dependency === undefined) {
        problems.push(`service ${name}: depends on ${target}, which is not a service`)
        continue
      }
      if (condition !== undefined && !CONDITIONS.has(String(condition))) {
        problems.push(`service ${name}: unknown condition ${String(condition)} for ${target}`)
      }
      // The image's own HEALTHCHECK may be gone (OCI-format builds drop it): the compose file must declare one.
      if (condition === 'service_healthy' && !(isMapping(dependency) && dependency.healthcheck !== undefined)) {
        problems.push(`service ${name}: waits for ${target} to be healthy, but ${target} declares no healthcheck`)
      }
    }

    for (const volume of Array.isArray(service.volumes) ? service.volumes : []) {
      const mount = volumeSource(volume)
      if (mount === undefined) continue
      if (mount.bind) {
        if (!input.exists(normalize(mount.source))) problems.push(`service ${name}: mounts ${mount.source}, which does not exist`)
      } else if (!declaredVolumes.has(mount.source)) {
        problems.push(`service ${name}: volume ${mount.source} is not declared under volumes`)
      }
    }

    const variables = environmentNames(service.environment)
    for (const variable of variables) {
      if (!NAME.test(variable)) problems.push(`service ${name}: ${JSON.stringify(variable)} is not a variable name`)
    }
    // A runstore service is one built from this repository's Dockerfile.
    if (service.build === undefined) continue
    runstoreServices++
    if (service.env_file !== undefined) problems.push(`service ${name}: env_file cannot be checked; set the variables under environment`)
    for (const variable of variables) checkDocumented(name, variable, input, settings, problems)
  }
  if (runstoreServices === 0) problems.push(`${input.composeName}: no service is built from the repository (build:)`)
  return problems
}

// The check of a checkout: <root>/compose.yaml against README.md and .env.example there.
export async function checkComposeFiles (root: string, settings: Iterable<string>, composeName = 'compose.yaml'): Promise<string[]> {
  const base = resolve(root)
  const read = async (name: string): Promise<string> => await readFile(join(base, name), 'utf8')
  return checkCompose({
    compose: await read(composeName),
    composeName,
    settings,
    readme: await read('README.md'),
    envExample: await read('.env.example'),
    exists: (relativePath) => existsSync(resolve(base, relativePath))
  })
}

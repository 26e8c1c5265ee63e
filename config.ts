import { envSchema } from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'

// Every setting of the service: its name is the environment variable, its
// default makes `npm start` work on a fresh clone, its description is what
// .env.example and the README say about it.
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535, description: 'port to listen on' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'address to listen on (0.0.0.0 in a container)' }),
  RUNS_DIR: Type.String({ default: './runs', description: 'storage root: one folder per run' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino log level' }),
  MAX_UPLOAD_BYTES: Type.Integer({ default: 100 * 1024 * 1024, minimum: 1, description: 'largest media file accepted from an upload, data URI or URL' }),
  PUBLIC_BASE_URL: Type.Optional(Type.String({ description: 'absolute base URL for links in answers (e.g. https://runstore.lab.example); relative links when unset' })),
  CORS_ORIGINS: Type.String({ default: '', description: 'comma-separated origins allowed to call the API from a browser, or * for any; empty: no CORS headers' }),
  MEDIA_CACHE_BYTES: Type.Integer({ default: 256 * 1024 * 1024, minimum: 0, description: 'memory for serving hot media files; 0 turns the cache off' }),
  MEDIA_CACHE_MAX_FILE_BYTES: Type.Integer({ default: 8 * 1024 * 1024, minimum: 0, description: 'larger media files are always streamed from disk' }),
  METADATA_CACHE_ENTRIES: Type.Integer({ default: 10000, minimum: 0, description: 'how many runs\' metadata are kept in memory' }),
  FETCH_TIMEOUT_MS: Type.Integer({ default: 60000, minimum: 1, description: 'time allowed to download media from a URL' }),
  FETCH_MAX_REDIRECTS: Type.Integer({ default: 5, minimum: 0, description: 'redirects followed when downloading media from a URL' }),
  ALLOWED_FETCH_HOSTS: Type.String({ default: '', description: 'comma-separated host names or IPs that URL downloads may reach although they are private or loopback' })
})

export type Config = Static<typeof ConfigSchema>

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  return envSchema<Config>({ schema: ConfigSchema, data: env, dotenv: false })
}

export function listSetting (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

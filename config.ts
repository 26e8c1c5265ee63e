import { envSchema } from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'

// Every setting of the service: its name is the environment variable, its
// default makes `npm start` work on a fresh clone, its description is what
// .env.example and the README say about it.
const HTTP_URL = '^https?://[^\\s/?#]+'

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535, description: 'port to listen on' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'address to listen on (0.0.0.0 in a container)' }),
  RUNS_DIR: Type.String({ default: './runs', description: 'storage root: one folder per run' }),
  RUN_INDEX_PATH: Type.Optional(Type.String({ description: 'SQLite index behind GET /api/runs, derived from the run folders and rebuilt from them when missing or damaged; default <RUNS_DIR>/.index.sqlite. Keep it on a local disk (SQLite WAL does not work on network file systems)' })),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL (postgres://user:password@host:port/database): when set, the run index lives there, shared by every instance over the same store, instead of RUN_INDEX_PATH. Its tables come from SQL migrations applied at start' })),
  DATABASE_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 1000, description: 'connections to DATABASE_URL that the run index keeps at most, per instance (one more is held while it is open)' }),
  STOPPED_INSTANCE_CHECK_MS: Type.Integer({ default: 30000, minimum: 0, maximum: 86400000, description: 'with DATABASE_URL: how often (ms) an instance looks for instances that stopped without closing (a crash, a killed container) and ends the runs they left running (failed, RUN_INTERRUPTED); 0: only at start' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino log level' }),
  MAX_UPLOAD_BYTES: Type.Integer({ default: 100 * 1024 * 1024, minimum: 1, description: 'largest media file accepted from an upload, data URI or URL, and from a generator' }),
  MAX_IMAGE_PIXELS: Type.Integer({ default: 50_000_000, minimum: 1, description: 'largest image accepted, in pixels (width × height; 50 000 000 is about 8660 × 5773): a small file can claim a size whose decoding takes a thumbnailer or an export down' }),
  PUBLIC_BASE_URL: Type.Optional(Type.String({ pattern: HTTP_URL, description: 'absolute base URL for links in answers (e.g. https://runstore.lab.example); relative links when unset' })),
  CORS_ORIGINS: Type.String({ default: '', description: 'comma-separated origins allowed to call the API from a browser, or * for any; empty: no CORS headers' }),
  MEDIA_CACHE_BYTES: Type.Integer({ default: 256 * 1024 * 1024, minimum: 0, description: 'memory for serving hot media files; 0 turns the cache off' }),
  MEDIA_CACHE_MAX_FILE_BYTES: Type.Integer({ default: 8 * 1024 * 1024, minimum: 0, description: 'larger media files are always streamed from disk' }),
  THUMBNAIL_CACHE_DIR: Type.Optional(Type.String({ description: 'folder for thumbnails and posters (GET /api/media/<type>/:run_id/:index?width=N), each made once; default <RUNS_DIR>/.thumbnails, whose name no run id can have, so run folders stay exactly as stored. Derived data: it may be deleted at any time' })),
  METADATA_CACHE_ENTRIES: Type.Integer({ default: 10000, minimum: 0, description: 'how many runs\' metadata are kept in memory' }),
  FETCH_TIMEOUT_MS: Type.Integer({ default: 60000, minimum: 1, description: 'time allowed to download media from a URL' }),
  FETCH_MAX_REDIRECTS: Type.Integer({ default: 5, minimum: 0, description: 'redirects followed when downloading media from a URL' }),
  ALLOWED_FETCH_HOSTS: Type.String({ default: '', description: 'comma-separated host names or IPs that URL downloads may reach although they are private or loopback' }),
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'bearer token for admin routes (deleting runs, bulk exports); admin routes are off when unset' })),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'bearer token GET /metrics asks for (a Prometheus scrape config\'s authorization credentials); open when unset, as Prometheus endpoints usually are: keep the port in the lab network then' })),
  OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 1000, minimum: 0, description: 'how long the event loop was held at a stretch in the last sample, weighted by time (what a request arriving then ran into), above which requests get 503 SERVICE_OVERLOADED with Retry-After (GET /health and /metrics still answer); 0: not checked' }),
  OVERLOAD_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ default: 0, minimum: 0, maximum: 1, description: 'share of the last sample the event loop was busy (e.g. 0.98) above which requests get 503 SERVICE_OVERLOADED; 0: not checked (a loop that is busy but still answers quickly is working, not overloaded)' }),
  OVERLOAD_SAMPLE_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 10, description: 'how often the event loop is measured for the OVERLOAD_MAX_* checks' }),
  OVERLOAD_RETRY_AFTER_SECONDS: Type.Integer({ default: 10, minimum: 1, description: 'Retry-After of a 503 SERVICE_OVERLOADED answer' }),
  CONFIGS_DIR: Type.String({ default: './configs', description: 'data folder with pipelines/*.json and outputs/*.json' }),
  AUTO_EXPORT_FORMATS: Type.String({ default: '', pattern: '^\\s*((csv|xlsx|html|pdf|zip)\\s*(,\\s*(csv|xlsx|html|pdf|zip)\\s*)*)?$', description: 'what is written into EXPORT_DIR/<YYYY-MM-DD>/<run_id>/ when a run ends (completed, failed or blocked), a comma list of csv, xlsx, html, pdf (runs.csv, runs.xlsx, index.html with the run folder, report.pdf: the views of GET /api/exports for that one run) and zip (<run_id>.zip: the run folder and the views named); empty: no auto export' }),
  EXPORT_DIR: Type.String({ default: './exports', description: 'folder the auto export writes into (AUTO_EXPORT_FORMATS); unfinished exports are noted in its .pending folder and done again at the next start' }),
  TRASH_DAYS: Type.Integer({ default: 30, minimum: 0, description: 'days a deleted run stays restorable in the trash (RUNS_DIR/.trash) before emptying the trash removes it; 0: DELETE removes a run at once, with no way back' }),
  ARCHIVE_AFTER_DAYS: Type.Integer({ default: 0, minimum: 0, description: 'finished runs older than this many days are packed into monthly ZIP archives (ARCHIVE_DIR) and leave the live store when archiving runs (runstore archive, POST /api/maintenance/archive, the schedule); 0: nothing is archived' }),
  ARCHIVE_DIR: Type.Optional(Type.String({ description: 'folder of the monthly run archives (runs-YYYY-MM.zip, with a manifest of every file and its sha256); default <RUNS_DIR>/archive, whose name no run id can have; never inside a run folder' })),
  RETENTION_DAYS: Type.Integer({ default: 0, minimum: 0, description: 'archives whose month ended more than this many days ago are removed for good when pruning (runstore prune, POST /api/maintenance/prune, the schedule), which also empties the trash of runs deleted more than TRASH_DAYS ago; 0: archives are kept for ever' }),
  MAINTENANCE_INTERVAL_HOURS: Type.Number({ default: 0, minimum: 0, maximum: 576, description: 'the service archives (ARCHIVE_AFTER_DAYS) and prunes (RETENTION_DAYS, the trash) every this many hours, the first time one interval after its start, never two at once; 0: only when asked (CLI, admin routes); at most 576 (24 days)' }),

  STORAGE_DRIVER: Type.Union([Type.Literal('local'), Type.Literal('s3')], { default: 'local', description: 'where runs are stored: local (folders in RUNS_DIR) or s3 (an S3-compatible bucket; RUNS_DIR then holds only the index, the thumbnail cache and media on their way in)' }),
  S3_BUCKET: Type.Optional(Type.String({ minLength: 3, description: 'bucket of the runs (STORAGE_DRIVER=s3; required there)' })),
  S3_PREFIX: Type.String({ default: '', description: 'key prefix of the runs in the bucket (runs → runs/<run_id>/metadata.json); empty: the bucket\'s root' }),
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: HTTP_URL, description: 'endpoint of an S3-compatible server (MinIO, Ceph, Garage, a cloud\'s S3 API); AWS S3 when unset' })),
  S3_REGION: Type.String({ default: 'us-east-1', description: 'region of the bucket (self-hosted servers mostly take any)' }),
  S3_ACCESS_KEY_ID: Type.Optional(Type.String({ description: 'access key; with S3_SECRET_ACCESS_KEY, else the SDK\'s default chain (AWS_* variables, shared files, instance or container roles)' })),
  S3_SECRET_ACCESS_KEY: Type.Optional(Type.String({ description: 'secret key belonging to S3_ACCESS_KEY_ID' })),
  S3_FORCE_PATH_STYLE: Type.Boolean({ default: false, description: 'address the bucket in the path (http://host/bucket/key) instead of the host name; most self-hosted servers need true' }),
  S3_MEDIA_REDIRECT: Type.Boolean({ default: false, description: 'media answers (without Range, conditional headers or ?width) redirect (302) to a presigned URL valid for 10 minutes, so the bytes come from the bucket or its CDN; clients must follow redirects' }),

  COMFYUI_URL: Type.Optional(Type.String({ pattern: HTTP_URL, description: 'ComfyUI server, e.g. http://gpu-host:8188; the ComfyUI output configs are unavailable without it' })),
  COMFYUI_TIMEOUT_MS: Type.Integer({ default: 600000, minimum: 1, description: 'longest a ComfyUI job may take, queueing and model loading included' }),
  COMFYUI_REQUEST_TIMEOUT_MS: Type.Integer({ default: 30000, minimum: 1, description: 'longest one ComfyUI request may wait (POST /prompt, a /history poll, the first bytes and each pause of a /view download)' }),
  OPENAI_API_KEY: Type.Optional(Type.String({ description: 'key for OpenAI images; gpt_image is unavailable without it' })),
  OPENAI_BASE_URL: Type.String({ pattern: HTTP_URL, default: 'https://api.openai.com/v1', description: 'OpenAI API base URL' }),
  OPENROUTER_API_KEY: Type.Optional(Type.String({ description: 'key for OpenRouter; openrouter_image is unavailable without it' })),
  OPENROUTER_BASE_URL: Type.String({ pattern: HTTP_URL, default: 'https://openrouter.ai/api/v1', description: 'OpenRouter API base URL' }),
  REPLICATE_API_TOKEN: Type.Optional(Type.String({ description: 'token for Replicate; replicate_flux is unavailable without it' })),
  REPLICATE_BASE_URL: Type.String({ pattern: HTTP_URL, default: 'https://api.replicate.com/v1', description: 'Replicate API base URL' }),
  BACKEND_TIMEOUT_MS: Type.Integer({ default: 300000, minimum: 1, description: 'longest a cloud generation (OpenAI, OpenRouter, Replicate) may take, waits for rate limits included' }),

  LLM_ECO_BASE_URL: Type.Optional(Type.String({ pattern: HTTP_URL, description: 'OpenAI-compatible chat server for the text stages in eco mode, e.g. Ollama at http://localhost:11434/v1; builtin providers when unset' })),
  LLM_ECO_MODEL: Type.Optional(Type.String({ description: 'model for eco mode, e.g. llama3.2' })),
  LLM_FAST_BASE_URL: Type.Optional(Type.String({ pattern: HTTP_URL, description: 'OpenAI-compatible chat server for fast and ultra mode; builtin providers when unset' })),
  LLM_FAST_MODEL: Type.Optional(Type.String({ description: 'model for fast and ultra mode' })),
  LLM_FAST_API_KEY: Type.Optional(Type.String({ description: 'bearer key for the fast-mode server' })),
  LLM_STEPS: Type.String({ default: 'translation,safety,interception', pattern: '^\\s*(translation|safety|interception)\\s*(,\\s*(translation|safety|interception)\\s*)*$', description: 'text steps that use the configured LLM (translation, safety, interception); the others stay builtin, e.g. safety to keep the deterministic word lists' }),
  LLM_TIMEOUT_MS: Type.Integer({ default: 120000, minimum: 1, description: 'longest one text-stage call may take (the first call of a local model includes loading it)' }),

  COMFYUI_CONCURRENCY: Type.Integer({ default: 1, minimum: 1, description: 'ComfyUI jobs at once (one GPU: 1-2)' }),
  BACKEND_CONCURRENCY: Type.Integer({ default: 4, minimum: 1, description: 'generation calls at once per other backend' }),
  GENERATION_QUEUE_LIMIT: Type.Integer({ default: 100, minimum: 0, description: 'waiting generation calls per backend before new executes get 503 with Retry-After; with DATABASE_URL, COMFYUI_CONCURRENCY, BACKEND_CONCURRENCY and this limit hold across all instances' }),
  BACKEND_DOWN_MS: Type.Integer({ default: 60000, minimum: 0, description: 'how long a backend whose generation failed (502/504) is passed over by the default outputs\' preference lists, which then take their next entry; 0: never passed over' })
})

export type Config = Static<typeof ConfigSchema>

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  // `COMFYUI_URL=` (a line of .env.example uncommented as it is) means "not set", not "set to nothing".
  const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''))
  return envSchema<Config>({ schema: ConfigSchema, data: given, dotenv: false })
}

export function listSetting (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

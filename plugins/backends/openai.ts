import { OpenaiImageBackend } from '../../services/backends/openai.js'
import { backendPlugin } from '../backends.js'

export default backendPlugin('openai', (config) => new OpenaiImageBackend({
  apiKey: config.OPENAI_API_KEY, baseUrl: config.OPENAI_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS
}))

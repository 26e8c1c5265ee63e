import { OpenrouterImageBackend } from '../../services/backends/openrouter.js'
import { backendPlugin } from '../backends.js'

export default backendPlugin('openrouter', (config) => new OpenrouterImageBackend({
  apiKey: config.OPENROUTER_API_KEY, baseUrl: config.OPENROUTER_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS
}))

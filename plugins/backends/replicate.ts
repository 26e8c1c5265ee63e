import { ReplicateBackend } from '../../services/backends/replicate.js'
import { backendPlugin } from '../backends.js'

export default backendPlugin('replicate', (config) => new ReplicateBackend({
  apiToken: config.REPLICATE_API_TOKEN, baseUrl: config.REPLICATE_BASE_URL, timeoutMs: config.BACKEND_TIMEOUT_MS
}))

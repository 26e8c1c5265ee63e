import { ComfyuiBackend } from '../../services/backends/comfyui.js'
import { backendPlugin } from '../backends.js'

export default backendPlugin('comfyui', (config, app) => {
  // The lab's own ComfyUI is the one private host media may always come from.
  if (config.COMFYUI_URL !== undefined) app.fetchPolicy.allow(new URL(config.COMFYUI_URL).hostname)
  return new ComfyuiBackend({ baseUrl: config.COMFYUI_URL, timeouts: { overall: config.COMFYUI_TIMEOUT_MS, request: config.COMFYUI_REQUEST_TIMEOUT_MS } })
})

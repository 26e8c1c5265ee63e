import { BuiltinBackend } from '../../services/backends/builtin.js'
import { backendPlugin } from '../backends.js'

export default backendPlugin('builtin', () => new BuiltinBackend())

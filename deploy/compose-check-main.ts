// `.ci/compose-check`: checks compose.yaml against config.ts's settings, the
// README and .env.example; prints each problem and exits 1 when there is one.
import { fileURLToPath } from 'node:url'
import { ConfigSchema } from '../config.js'
import { checkComposeFiles } from './compose-check.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const problems = await checkComposeFiles(root, Object.keys(ConfigSchema.properties))
for (const problem of problems) console.log(`compose check: ${problem}`)
if (problems.length > 0) process.exit(1)
console.log('compose check: compose.yaml parses, hangs together and sets only documented settings')

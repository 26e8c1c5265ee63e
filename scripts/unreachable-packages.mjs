// Prints the production packages of a node_modules that nothing reaches from
// the project's own dependencies once the named dependency edges are left
// out ("parent>child"). Reads npm's lock of what is installed
// (node_modules/.package-lock.json). Used by slim-node-modules.sh.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const [nodeModules, ...edges] = process.argv.slice(2)
const left = new Set(edges)
const { packages } = JSON.parse(readFileSync(join(nodeModules, '.package-lock.json'), 'utf8'))
const installed = (path) => packages[path] !== undefined && packages[path].dev !== true

// Node's lookup: the nearest node_modules folder upwards that has the package.
function resolveFrom (from, name) {
  for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
    const path = `${base === '' ? '' : base + '/'}node_modules/${name}`
    if (installed(path)) return path
    if (base === '') return null
  }
}

const root = JSON.parse(readFileSync(join(nodeModules, '..', 'package.json'), 'utf8'))
const reached = new Set()
const stack = Object.keys({ ...root.dependencies, ...root.optionalDependencies }).map((name) => resolveFrom('', name)).filter((p) => p !== null)
while (stack.length > 0) {
  const path = stack.pop()
  if (reached.has(path)) continue
  reached.add(path)
  const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)
  const meta = packages[path]
  for (const dep of Object.keys({ ...meta.dependencies, ...meta.optionalDependencies })) {
    if (left.has(`${name}>${dep}`)) continue
    const found = resolveFrom(path, dep)
    if (found !== null) stack.push(found)
  }
}
for (const path of Object.keys(packages)) {
  if (path !== '' && installed(path) && !reached.has(path)) console.log(path)
}

// How tap's TypeScript loader (ts-node, transpile only) turns the tests and the code they import into
// JavaScript: with swc instead of the TypeScript compiler, which every test process loaded and ran anew
// (about 3 s of CPU more per test file). swc is told to keep import attributes (`with { type: 'json' }`),
// which Node needs and ts-node's options for swc drop, and the syntax level of Node 20 (ts-node maps
// tsconfig's ES2023 to nothing swc knows).
const swc = require('@swc/core')
const { create } = require('@isaacs/ts-node-temp-fork-for-pr-2009/transpilers/swc')

const forNode20 = {
  ...swc,
  transformSync: (code, options) => swc.transformSync(code, {
    ...options,
    jsc: { ...options.jsc, target: 'es2022', experimental: { ...options.jsc?.experimental, keepImportAttributes: true } }
  })
}

exports.create = (options) => create({ ...options, swc: forNode20 })

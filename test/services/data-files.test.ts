import t from 'tap'
import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { loadOutputConfigs } from '../../services/backends/output-configs.js'
import { tempRunsDir } from '../helper.js'

t.test('output config files: the shipped ones load, broken ones are named with their field', async (t) => {
  const shipped = await loadOutputConfigs(new URL('../../configs/outputs', import.meta.url).pathname)
  t.ok(shipped.size >= 7)
  for (const [name, config] of shipped) t.equal(config.name, name)

  const dir = await tempRunsDir(t)
  await mkdir(join(dir, 'bad'))
  const write = async (name: string, value: unknown) => { await writeFile(join(dir, 'bad', name), typeof value === 'string' ? value : JSON.stringify(value)) }
  const good = { name: 'x', description: '', media_type: 'image', backend: 'builtin', params: {} }
  await write('x.json', good)
  t.same([...(await loadOutputConfigs(join(dir, 'bad'))).keys()], ['x'])
  await write('y.json', { ...good, name: 'y', media_type: 'hologram' })
  await t.rejects(loadOutputConfigs(join(dir, 'bad')), { code: 'INVALID_OUTPUT_CONFIG', message: /y\.json.*media_type/ })
  await write('y.json', { ...good, name: 'z' })
  await t.rejects(loadOutputConfigs(join(dir, 'bad')), { message: /must equal the file name/ })
  await write('y.json', '{ not json')
  await t.rejects(loadOutputConfigs(join(dir, 'bad')), { message: /not JSON/ })
  await t.rejects(loadOutputConfigs(join(dir, 'missing')), { code: 'INVALID_OUTPUT_CONFIG', message: /cannot read the folder/ })
})

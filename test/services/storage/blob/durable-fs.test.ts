import t from 'tap'
import { mkdir, readdir, readFile, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { TEMP_PREFIX, tempName, fsyncPath, writeFileDurably, writeFilesDurably, linkWithoutOverwrite } from '../../../../services/storage/blob/durable-fs.js'
import { tempRunsDir } from '../../../helper.js'

t.test('tempName carries the sweep prefix and is different every time', async (t) => {
  const names = Array.from({ length: 100 }, tempName)
  t.ok(names.every((n) => n.startsWith(TEMP_PREFIX)), 'all start with the prefix')
  t.equal(new Set(names).size, 100)
  t.ok(names.every((n) => /^\.tmp-[0-9a-f]{8}-[0-9a-f]{12}$/.test(n)), 'no path separators or odd characters')
})

t.test('writeFileDurably creates a file with exactly the given content', async (t) => {
  const dir = await tempRunsDir(t)
  const path = join(dir, 'metadata.json')
  await writeFileDurably(path, '{"a":1}')
  t.equal(await readFile(path, 'utf8'), '{"a":1}')
  t.same(await readdir(dir), ['metadata.json'], 'no temp file left')
})

t.test('writeFileDurably replaces the whole content, longer or shorter', async (t) => {
  const dir = await tempRunsDir(t)
  const path = join(dir, 'metadata.json')
  await writeFile(path, 'x'.repeat(10_000))
  await writeFileDurably(path, 'short')
  t.equal(await readFile(path, 'utf8'), 'short', 'no tail of the old content')

  const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256))
  await writeFileDurably(path, bytes)
  t.same(await readFile(path), bytes, 'Buffers are written byte for byte')

  await writeFileDurably(path, '')
  t.equal((await stat(path)).size, 0, 'an empty file is a valid content')

  await writeFileDurably(path, 'Blume ✿ über')
  t.equal(await readFile(path, 'utf8'), 'Blume ✿ über', 'strings are UTF-8')
  t.same(await readdir(dir), ['metadata.json'], 'no temp file left after several writes')
})

t.test('concurrent writes to one file leave one whole version and no temp files', async (t) => {
  const dir = await tempRunsDir(t)
  const path = join(dir, 'metadata.json')
  const versions = Array.from({ length: 20 }, (_, i) => String(i).repeat(1000 + i))
  await Promise.all(versions.map(async (v) => { await writeFileDurably(path, v) }))
  t.ok(versions.includes(await readFile(path, 'utf8')), 'content is one of the versions, never a mix')
  t.same(await readdir(dir), ['metadata.json'])
})

t.test('writeFileDurably into a missing folder fails and creates nothing', async (t) => {
  const dir = await tempRunsDir(t)
  await t.rejects(writeFileDurably(join(dir, 'nope', 'metadata.json'), 'x'), { code: 'ENOENT' })
  t.same(await readdir(dir), [])
})

t.test('when the file cannot be replaced, the error reaches the caller and the temp file is removed', async (t) => {
  const dir = await tempRunsDir(t)
  // A folder with content where the file should go: rename() refuses.
  const target = join(dir, 'metadata.json')
  await mkdir(target)
  await writeFile(join(target, 'inside'), 'keep')
  await t.rejects(writeFileDurably(target, 'new'), { code: /^(EISDIR|ENOTEMPTY|EEXIST)$/ })
  t.same(await readdir(dir), ['metadata.json'], 'only the folder, no temp file')
  t.equal(await readFile(join(target, 'inside'), 'utf8'), 'keep')
})

t.test('when writing the data fails, the temp file is removed and the old file kept', async (t) => {
  const dir = await tempRunsDir(t)
  const path = join(dir, 'metadata.json')
  await writeFile(path, 'old')
  // Not a string or Buffer: the write itself throws after the temp file exists.
  await t.rejects(writeFileDurably(path, 12345 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' })
  t.equal(await readFile(path, 'utf8'), 'old')
  t.same(await readdir(dir), ['metadata.json'])
})

t.test('writeFilesDurably writes several files of one folder, metadata.json last', async (t) => {
  const dir = await tempRunsDir(t)
  await writeFile(join(dir, 'metadata.json'), 'old')
  await writeFilesDurably(dir, [['transformed_text.txt', 'Eine Blume'], ['metadata.json', '{"new":true}']])
  t.equal(await readFile(join(dir, 'transformed_text.txt'), 'utf8'), 'Eine Blume')
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), '{"new":true}')
  t.same((await readdir(dir)).sort(), ['metadata.json', 'transformed_text.txt'], 'no temp files')
})

t.test('writeFilesDurably renames nothing when a write it stands for fails, and leaves no temp file', async (t) => {
  const dir = await tempRunsDir(t)
  await writeFile(join(dir, 'metadata.json'), 'old')
  const mediaSync = Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))
  await t.rejects(writeFilesDurably(dir, [['transformed_text.txt', 'x'], ['metadata.json', 'new']], [mediaSync]), { code: 'EIO' })
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), 'old')
  t.same(await readdir(dir), ['metadata.json'])
})

t.test('writeFilesDurably: one file that cannot be written stops all, the others\' temp files are removed', async (t) => {
  const dir = await tempRunsDir(t)
  await writeFile(join(dir, 'metadata.json'), 'old')
  await t.rejects(writeFilesDurably(dir, [['a.txt', 'fine'], ['b.txt', 42 as unknown as string], ['metadata.json', 'new']]), { code: 'ERR_INVALID_ARG_TYPE' })
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), 'old')
  t.same(await readdir(dir), ['metadata.json'])
})

t.test('fsyncPath syncs files and folders and reports a missing path', async (t) => {
  const dir = await tempRunsDir(t)
  const file = join(dir, 'f')
  await writeFile(file, 'x')
  await t.resolves(fsyncPath(file))
  await t.resolves(fsyncPath(dir))
  await t.rejects(fsyncPath(join(dir, 'missing')), { code: 'ENOENT' })
})

t.test('linkWithoutOverwrite gives the temp file its name when the name is free, and keeps the temp name', async (t) => {
  const dir = await tempRunsDir(t)
  const temp = join(dir, `${tempName()}-output_image.png`)
  const bytes = Buffer.from('\x89PNG fake but exact bytes')
  await writeFile(temp, bytes)
  await linkWithoutOverwrite(temp, join(dir, 'output_image.png'))
  t.same(await readFile(join(dir, 'output_image.png')), bytes)
  t.same((await readdir(dir)).sort(), [temp.slice(dir.length + 1), 'output_image.png'].sort(), 'both names, one file, until the caller lists it')
  t.equal((await stat(join(dir, 'output_image.png'))).nlink, 2)
})

t.test('linkWithoutOverwrite never replaces an existing file', async (t) => {
  const dir = await tempRunsDir(t)
  const final = join(dir, 'output_image.png')
  const stored = Buffer.from('the stored image')
  await writeFile(final, stored)
  const temp = join(dir, `${tempName()}-output_image.png`)
  await writeFile(temp, 'an intruder, longer than the stored image')
  await t.rejects(linkWithoutOverwrite(temp, final), { code: 'EEXIST' })
  t.same(await readFile(final), stored, 'stored bytes unchanged')
  // The caller still owns the temp file (and the startup sweep finds it by prefix).
  t.same((await readdir(dir)).sort(), [temp.slice(dir.length + 1), 'output_image.png'].sort())
})

t.test('two publishes racing for one name: exactly one wins', async (t) => {
  const dir = await tempRunsDir(t)
  const final = join(dir, 'output_audio.mp3')
  const temps = await Promise.all(['one', 'two', 'three'].map(async (content) => {
    const temp = join(dir, `${tempName()}-${content}`)
    await writeFile(temp, content)
    return { temp, content }
  }))
  const results = await Promise.allSettled(temps.map(async ({ temp }) => { await linkWithoutOverwrite(temp, final) }))
  const won = results.flatMap((r, i) => r.status === 'fulfilled' ? [temps[i]!.content] : [])
  t.equal(won.length, 1)
  t.ok(results.every((r) => r.status === 'fulfilled' || (r.reason as NodeJS.ErrnoException).code === 'EEXIST'))
  t.equal(await readFile(final, 'utf8'), won[0], 'the file holds the winner\'s bytes')
})

t.test('linkWithoutOverwrite with a missing temp file creates nothing', async (t) => {
  const dir = await tempRunsDir(t)
  await t.rejects(linkWithoutOverwrite(join(dir, '.tmp-missing'), join(dir, 'output_image.png')), { code: 'ENOENT' })
  t.same(await readdir(dir), [])
})

t.test('when only the folder\'s fsync fails, the files are in place and the error says so', async (t) => {
  const dir = await tempRunsDir(t)
  const real = await import('node:fs/promises')
  const durable = await t.mockImport<typeof import('../../../../services/storage/blob/durable-fs.js')>('../../../../services/storage/blob/durable-fs.js', {
    'node:fs/promises': {
      ...real,
      open: async (path: string, flags?: string) => {
        if (path === dir && flags === 'r') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })
        return await real.open(path, flags)
      }
    }
  })
  await writeFile(join(dir, 'metadata.json'), 'old')
  const err = await durable.writeFilesDurably(dir, [['metadata.json', 'new']]).catch((e: unknown) => e)
  t.ok(err instanceof durable.FolderNotSyncedError)
  t.match(err, { message: /could not be synced/, cause: { code: 'EIO' } })
  t.equal(await readFile(join(dir, 'metadata.json'), 'utf8'), 'new', 'the new file is what readers see: nothing may be undone')
  t.same(await readdir(dir), ['metadata.json'])
})

import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describeError } from '../../../services/errors.js'
import { diskWriteError, isDiskRefusal, writingToDisk } from '../../../services/storage/disk-errors.js'
import { tempRunsDir } from '../../helper.js'

// Node's errors of a refused write, as fs reports them (test/reliability/full-disk.test.ts meets the real ones on a tmpfs).
const errno = (code: string, path = '/data/runs/0193f1e2-7c4a-7b9e-8d2f-4c1a2b3c4d5e/.tmp-1a2b'): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: refused, write '${path}'`), { code, errno: -1, syscall: 'write', path })

t.test('a full disk or quota is 507, a read-only or failing disk 503, in plain words with the errno kept as the cause', async (t) => {
  for (const [code, status, answer] of [['ENOSPC', 507, 'INSUFFICIENT_STORAGE'], ['EDQUOT', 507, 'INSUFFICIENT_STORAGE'], ['EROFS', 503, 'STORAGE_UNAVAILABLE'], ['EIO', 503, 'STORAGE_UNAVAILABLE']] as const) {
    const cause = errno(code)
    const mapped = diskWriteError(cause)
    t.match(mapped, { code: answer, statusCode: status, cause }, code)
    const body = describeError(mapped)
    t.match(body, { statusCode: status, code: answer }, `${code}: what a client is told`)
    t.notMatch(body.message, new RegExp(`${code}|/data|\\.tmp-`), `${code}: no errno, no path`)
    t.equal(diskWriteError(mapped), mapped, `${code}: mapping twice changes nothing`)
  }
})

t.test('other failures are not the disk\'s and pass unchanged', async (t) => {
  for (const err of [errno('ENOENT'), errno('EEXIST'), new Error('no code'), 'a string', undefined, null]) {
    t.equal(diskWriteError(err), err, String(err))
  }
})

t.test('writingToDisk gives the write\'s result, or its failure as diskWriteError makes it', async (t) => {
  const dir = await tempRunsDir(t)
  t.equal(await writingToDisk(async () => 42), 42)
  await t.rejects(writingToDisk(async () => { throw errno('ENOSPC') }), { code: 'INSUFFICIENT_STORAGE', statusCode: 507 })
  await t.rejects(writingToDisk(async () => { await writeFile(join(dir, 'missing', 'file'), 'x') }), { code: 'ENOENT' }, 'a missing folder is no disk failure')
})

t.test('isDiskRefusal: a write the disk refused, as fs or SQLite says it (the run index then starts in memory)', async (t) => {
  for (const code of ['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE', 'SQLITE_IOERR_WRITE', 'SQLITE_READONLY']) {
    t.equal(isDiskRefusal(errno(code)), true, code)
  }
  // A path that cannot hold a database, or a damaged file, is a mistake to fix, not a disk to wait for.
  for (const err of [errno('SQLITE_CANTOPEN'), errno('SQLITE_CORRUPT'), errno('ENOENT'), new Error('no code'), undefined]) {
    t.equal(isDiskRefusal(err), false, String(err))
  }
})

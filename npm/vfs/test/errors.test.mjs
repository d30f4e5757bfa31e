// Errors are `Error`s with node:fs-style `code`, `errno`, `path` and `syscall`.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Mirage, memory, isMirageError } from '@mirage/vfs'
import { setup, rejectsWith } from './helpers.mjs'

test('each error kind arrives with its code, path and syscall', async () => {
  const { mirage, main } = setup()
  mirage.mount('/ro', memory(), { readOnly: true })
  await main.writeFile('/data/file', 'x')
  await main.mkdir('/data/dir')
  await main.writeFile('/data/dir/inner', 'y')
  await main.symlink('loop2', '/data/loop1')
  await main.symlink('loop1', '/data/loop2')

  const missing = await rejectsWith(main.readFile('/data/missing'), 'ENOENT')
  assert.equal(missing.path, '/data/missing')
  assert.equal(missing.syscall, 'read')
  assert.equal(missing.errno, 2)
  assert.ok(isMirageError(missing))
  assert.match(missing.message, /^ENOENT: .*'\/data\/missing'/)

  await rejectsWith(main.mkdir('/data/dir'), 'EEXIST')
  await rejectsWith(main.readFile('/data/file/below'), 'ENOTDIR')
  await rejectsWith(main.readFile('/data/dir'), 'EISDIR')
  await rejectsWith(main.rmdir('/data/dir'), 'ENOTEMPTY')
  const ro = await rejectsWith(main.writeFile('/ro/x', 'no'), 'EROFS')
  assert.equal(ro.mount, '/ro')
  await rejectsWith(main.readlink('/data/file'), 'EINVAL')
  await rejectsWith(main.readFile('/data/loop1'), 'ELOOP')
  await rejectsWith(main.writeFile('/data/' + 'n'.repeat(256), 'x'), 'ENAMETOOLONG')
  await rejectsWith(main.rename('/data/dir', '/data/dir/inside'), 'EINVAL')
  await rejectsWith(main.writeFile('/outside', 'x'), 'EROFS')
  assert.throws(() => main.readFileSync('/data/missing'), (e) => e.code === 'ENOENT' && e.syscall === 'read')
  assert.throws(() => mirage.createSession('main'), { code: 'EEXIST' })
  assert.throws(() => mirage.session('nobody'), { code: 'ENOENT' })
  assert.throws(() => Mirage.open('/proc/no/such/dir'), (e) => typeof e.code === 'string')
})

test('a lost commit race is ECONFLICT naming the paths', async () => {
  const { main } = setup()
  const [a, b] = [main.fork(), main.fork()]
  await a.writeFile('/data/x', 'a')
  await b.writeFile('/data/x', 'b')
  await a.commit()
  const e = await rejectsWith(b.commit(), 'ECONFLICT')
  assert.deepEqual(e.conflicts, ['/data/x'])
  assert.equal(e.syscall, 'commit')
})

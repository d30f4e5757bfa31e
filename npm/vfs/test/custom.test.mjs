// Resources written in JavaScript: mounted, read, written through sessions, committed to, and
// their errors arrive with the right codes.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Mirage } from '@mirage/vfs'
import { rejectsWith } from './helpers.mjs'

function fsError(code, message) {
  return Object.assign(new Error(message), { code })
}

/** A flat in-memory map resource, recording every primitive called. */
function mapResource(initial = {}) {
  const files = new Map(Object.entries(initial).map(([k, v]) => [k, Buffer.from(v)]))
  const calls = []
  return {
    files,
    calls,
    name: 'map',
    async stat(path) {
      calls.push(['stat', path])
      if (path === '/') return { kind: 'directory', size: 0 }
      const f = files.get(path)
      if (!f) throw fsError('ENOENT', `no ${path}`)
      return { kind: 'file', size: f.length, mtimeMs: 1000 }
    },
    async read(path, offset, length) {
      calls.push(['read', path, offset, length])
      if (path === '/secret') throw fsError('EACCES', 'not for you')
      return files.get(path).subarray(offset, offset + length)
    },
    async list() {
      return [...files.keys()].map((k) => ({ name: k.slice(1), kind: 'file' }))
    },
    async create(path) {
      files.set(path, Buffer.alloc(0))
    },
    async write(path, offset, data) {
      const old = files.get(path)
      const next = Buffer.alloc(Math.max(old.length, offset + data.length))
      old.copy(next)
      data.copy(next, offset)
      files.set(path, next)
    },
    async truncate(path, length) {
      const next = Buffer.alloc(length)
      files.get(path).copy(next, 0, 0, length)
      files.set(path, next)
    },
    async remove(path) {
      files.delete(path)
    },
  }
}

test('a TypeScript resource is read through a session and committed to', async () => {
  const resource = mapResource({ '/a.txt': 'alpha', '/secret': 'x' })
  const mirage = new Mirage()
  mirage.mount('/js', resource)
  const s = mirage.createSession('main')
  assert.equal(await s.readFile('/js/a.txt', 'utf8'), 'alpha')
  assert.equal((await s.read('/js/a.txt', { offset: 1, length: 3 })).toString(), 'lph')
  assert.ok(resource.calls.some(([op, , offset, length]) => op === 'read' && offset === 1 && length === 3), 'ranged')
  assert.deepEqual(await s.readdir('/js'), ['a.txt', 'secret'])
  await s.writeFile('/js/b.txt', 'beta')
  await s.rm('/js/a.txt')
  assert.equal(resource.files.has('/b.txt'), false, 'nothing reaches the resource before commit')
  const report = await s.commit()
  assert.deepEqual(report.applied.sort(), ['/js/a.txt', '/js/b.txt'])
  assert.deepEqual([...resource.files.keys()].sort(), ['/b.txt', '/secret'])
  assert.equal(resource.files.get('/b.txt').toString(), 'beta')
})

test('errors thrown by a TypeScript resource keep their codes', async () => {
  const mirage = new Mirage()
  mirage.mount('/js', mapResource({ '/secret': 'x' }))
  const s = mirage.createSession('main')
  const denied = await rejectsWith(s.readFile('/js/secret'), 'EACCES')
  assert.match(denied.message, /not for you/)
  assert.equal(denied.path, '/js/secret')
  await rejectsWith(s.readFile('/js/missing'), 'ENOENT')
  const broken = new Mirage()
  broken.mount('/b', {
    async stat() {
      throw new Error('backend exploded')
    },
    async read() {
      return new Uint8Array()
    },
    async list() {
      return []
    },
  })
  const e = await rejectsWith(broken.createSession('x').stat('/b/anything'), 'EIO')
  assert.match(e.message, /backend exploded/)
})

test('a resource without write primitives is mounted read-only', async () => {
  const mirage = new Mirage()
  mirage.mount('/ro', {
    async stat(path) {
      return path === '/' ? { kind: 'directory', size: 0 } : { kind: 'file', size: 2 }
    },
    async read() {
      return Buffer.from('ok')
    },
    async list() {
      return [{ name: 'f', kind: 'file' }]
    },
  })
  assert.deepEqual(mirage.mounts(), [{ path: '/ro', readOnly: true }])
  const s = mirage.createSession('main')
  assert.equal(await s.readFile('/ro/f', 'utf8'), 'ok')
  await rejectsWith(s.writeFile('/ro/f', 'no'), 'EROFS')
})

test('sync calls refuse mounts that must wait for JavaScript; async calls wait', async () => {
  const mirage = new Mirage()
  mirage.mount('/js', mapResource({ '/a': 'a', '/b': 'bb' }))
  const s = mirage.createSession('main')
  for (const call of [
    () => s.readFileSync('/js/a'),
    () => s.writeFileSync('/js/c', 'c'),
    () => s.statSync('/js/a'),
    () => s.lstatSync('/js/a'),
    () => s.existsSync('/js/a'),
  ]) {
    assert.throws(call, { code: 'ENOTSUP' })
  }
  assert.equal(await s.exists('/js/c'), false, 'the refused write changed nothing')
  assert.equal(await s.readFile('/js/a', 'utf8'), 'a')
  assert.equal((await s.stat('/js/b')).size, 2)
  assert.equal((await s.lstat('/js/b')).kind, 'file')
  assert.equal(await s.exists('/js/a'), true)
  await s.writeFile('/js/c', 'ccc')
  assert.equal(await s.readFile('/js/c', 'utf8'), 'ccc')
  assert.deepEqual((await s.readMany(['/js/a', '/js/b'])).map(String), ['a', 'bb'])
  assert.deepEqual((await s.statMany(['/js/a', '/js/b'])).map((st) => st.size), [1, 2])
})

test('many concurrent calls on a TypeScript resource all settle with the right content', async () => {
  const files = {}
  for (let i = 0; i < 200; i++) files[`/f${i}`] = `content ${i}`
  const resource = mapResource(files)
  const slow = {
    ...resource,
    async read(path, offset, length) {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5))
      return resource.read(path, offset, length)
    },
  }
  const mirage = new Mirage()
  mirage.mount('/js', slow)
  const s = mirage.createSession('main')
  const names = Object.keys(files)
  const contents = await Promise.all(names.map((n) => s.readFile(`/js${n}`, 'utf8')))
  assert.deepEqual(contents, names.map((n) => files[n]))
  const fork = s.fork()
  await Promise.all(names.slice(0, 50).map((n, i) => fork.writeFile(`/js${n}`, `changed ${i}`)))
  assert.equal(await fork.readFile('/js/f7', 'utf8'), 'changed 7')
  assert.equal(await s.readFile('/js/f7', 'utf8'), 'content 7')
})

test('each call reaches a TypeScript resource once: no attempt is dropped and made again', async () => {
  const resource = mapResource({ '/a.txt': 'alpha' })
  const mirage = new Mirage()
  mirage.mount('/js', resource)
  const s = mirage.createSession('main')
  const since = () => resource.calls.splice(0).map(([op, path]) => `${op} ${path}`)
  await s.readFile('/js/a.txt')
  assert.deepEqual(since(), ['stat /a.txt', 'read /a.txt'])
  await s.stat('/js/a.txt')
  assert.deepEqual(since(), ['stat /a.txt'])
  await s.lstat('/js/a.txt')
  assert.deepEqual(since(), ['stat /a.txt'])
  assert.equal(await s.exists('/js/a.txt'), true)
  assert.deepEqual(since(), ['stat /a.txt'])
  await s.writeFile('/js/b.txt', 'beta')
  assert.deepEqual(since(), ['stat /b.txt'])
})

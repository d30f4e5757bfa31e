// Every Session and Mirage call, on a memory mount and a local directory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

import { Mirage, memory, local, Stats, Dirent } from '@mirage/vfs'
import { setup, tempDir } from './helpers.mjs'

test('files: write, read, append, ranged read, write at offset, truncate', async () => {
  const { main } = setup()
  assert.equal(await main.writeFile('/data/a.txt', 'hello world'), undefined)
  assert.deepEqual(await main.readFile('/data/a.txt'), Buffer.from('hello world'))
  assert.equal(await main.readFile('/data/a.txt', 'utf8'), 'hello world')
  assert.equal(await main.readFile('/data/a.txt', { encoding: 'utf8' }), 'hello world')
  await main.appendFile('/data/a.txt', '!')
  await main.appendFile('/data/new.txt', new Uint8Array([104, 105]))
  assert.equal(await main.readFile('/data/new.txt', 'utf8'), 'hi')
  assert.equal((await main.read('/data/a.txt', { offset: 6, length: 5 })).toString(), 'world')
  await main.write('/data/a.txt', 0, 'HELLO')
  assert.equal(await main.readFile('/data/a.txt', 'utf8'), 'HELLO world!')
  await main.truncate('/data/a.txt', 5)
  assert.equal(await main.readFile('/data/a.txt', 'utf8'), 'HELLO')
  await main.truncate('/data/a.txt')
  assert.equal((await main.stat('/data/a.txt')).size, 0)
  assert.deepEqual(await main.readMany(['/data/new.txt', '/data/a.txt']), [Buffer.from('hi'), Buffer.alloc(0)])
  await main.writeFile('/data/b.txt', 'bee')
  assert.deepEqual((await main.readMany(['/data/b.txt', '/data/new.txt', '/data/b.txt'])).map(String), ['bee', 'hi', 'bee'])
  await assert.rejects(main.readMany(['/data/b.txt', '/data/none']), { code: 'ENOENT', path: '/data/none' })
  assert.deepEqual(await main.readMany([]), [])
  assert.deepEqual(await main.statMany([]), [])
  await assert.rejects(main.readMany(['/data/b.txt\0/data/new.txt']), { code: 'EINVAL' })
  await assert.rejects(main.statMany(['/data/b.txt', '/data\0']), { code: 'EINVAL' })
})

test('directories: mkdir (recursive), readdir (with file types), rm, rmdir, rename, copyFile', async () => {
  const { main } = setup()
  await main.mkdir('/data/a/b/c', { recursive: true })
  await main.mkdir('/data/a/b/c', { recursive: true })
  await main.mkdir('/data/flat')
  await main.writeFile('/data/a/b/c/f.txt', 'f')
  assert.deepEqual(await main.readdir('/data'), ['a', 'flat'])
  const entries = await main.readdir('/data/a/b/c', { withFileTypes: true })
  assert.ok(entries[0] instanceof Dirent)
  assert.equal(entries[0].name, 'f.txt')
  assert.equal(entries[0].parentPath, '/data/a/b/c')
  assert.ok(entries[0].isFile() && !entries[0].isDirectory())
  await main.copyFile('/data/a/b/c/f.txt', '/data/flat/g.txt')
  await main.rename('/data/a', '/data/moved')
  assert.equal(await main.readFile('/data/moved/b/c/f.txt', 'utf8'), 'f')
  assert.equal(await main.exists('/data/a'), false)
  await main.rmdir('/data/flat').then(
    () => assert.fail('not empty'),
    (e) => assert.equal(e.code, 'ENOTEMPTY'),
  )
  await main.unlink('/data/flat/g.txt')
  await main.rmdir('/data/flat')
  await main.rm('/data/moved', { recursive: true })
  await main.rm('/data/never', { force: true })
  assert.deepEqual(await main.readdir('/data'), [])
})

test('metadata: stat, lstat, chmod (exec bit), utimes, symlinks, realpath', async () => {
  const { main } = setup()
  await main.writeFile('/data/run.sh', '#!/bin/sh\n')
  await main.chmod('/data/run.sh', 0o755)
  const st = await main.stat('/data/run.sh')
  assert.ok(st instanceof Stats)
  assert.equal(st.mode, 0o100755)
  assert.ok(st.isFile() && !st.isDirectory() && !st.isSymbolicLink())
  assert.equal(st.size, 10)
  assert.equal(typeof st.version, 'string')
  await main.utimes('/data/run.sh', 1_000_000, new Date(2_000_000_000))
  const times = await main.stat('/data/run.sh')
  assert.equal(times.atimeMs, 1_000_000_000)
  assert.equal(times.mtime.getTime(), 2_000_000_000)
  await main.symlink('run.sh', '/data/link')
  assert.equal(await main.readlink('/data/link'), 'run.sh')
  assert.ok((await main.lstat('/data/link')).isSymbolicLink())
  assert.ok((await main.stat('/data/link')).isFile())
  assert.equal(await main.realpath('/data/link'), '/data/run.sh')
  assert.ok((await main.stat('/data')).isDirectory())
  assert.deepEqual(
    (await main.statMany(['/data/run.sh', '/data'])).map((s) => s.kind),
    ['file', 'directory'],
  )
  const one = [await main.stat('/data/link'), await main.stat('/data')]
  assert.deepEqual(await main.statMany(['/data/link', '/data']), one, 'a batch describes as stat does')
  await assert.rejects(main.statMany(['/data', '/data/none']), { code: 'ENOENT', path: '/data/none' })
})

test('cwd, chdir and env', async () => {
  const { main } = setup()
  assert.equal(main.cwd(), '/')
  await main.mkdir('/data/work')
  await main.chdir('/data/work')
  assert.equal(main.cwd(), '/data/work')
  await main.writeFile('notes.md', 'relative')
  assert.equal(await main.readFile('/data/work/notes.md', 'utf8'), 'relative')
  assert.equal(await main.readFile('../work/notes.md', 'utf8'), 'relative')
  main.setEnv('AGENT', 'codex')
  assert.deepEqual(main.env, { AGENT: 'codex' })
  const fork = main.fork()
  assert.equal(fork.cwd(), '/data/work', 'a fork inherits cwd')
  assert.deepEqual(fork.env, { AGENT: 'codex' })
  main.setEnv('AGENT', undefined)
  assert.deepEqual(main.env, {})
})

test('sync variants of cheap calls', () => {
  const { main } = setup()
  main.writeFileSync('/data/s.txt', 'sync')
  assert.equal(main.readFileSync('/data/s.txt', 'utf8'), 'sync')
  assert.deepEqual(main.readFileSync('/data/s.txt'), Buffer.from('sync'))
  assert.ok(main.statSync('/data/s.txt').isFile())
  assert.ok(main.lstatSync('/data/s.txt').isFile())
  assert.equal(main.existsSync('/data/s.txt'), true)
  assert.equal(main.existsSync('/data/nope'), false)
  assert.deepEqual(main.readdirSync('/data'), ['s.txt'])
  assert.equal(main.readdirSync('/data', { withFileTypes: true })[0].kind, 'file')
  assert.throws(() => main.readFileSync('/data/nope'), { code: 'ENOENT' })
})

test('promises of operations that need no I/O are already settled', async () => {
  const { main } = setup()
  await main.writeFile('/data/x', 'x')
  let settled = false
  const read = main.readFile('/data/x').then(() => {
    settled = true
  })
  await Promise.resolve()
  await Promise.resolve()
  assert.equal(settled, true, 'resolved within two microtask turns, without a thread hop')
  await read
})

test('mounts, unmount, sessions, local directories and read-only mounts', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'host.txt'), 'on disk')
  const mirage = new Mirage()
  mirage.mount('/w', local(dir))
  mirage.mount('/ro', local(dir, { readOnly: true }))
  mirage.mount('/mem', memory(), { readOnly: true })
  assert.deepEqual(mirage.mounts(), [
    { path: '/mem', readOnly: true },
    { path: '/ro', readOnly: true },
    { path: '/w', readOnly: false },
  ])
  const s = mirage.createSession('main')
  assert.equal(await s.readFile('/ro/host.txt', 'utf8'), 'on disk')
  assert.deepEqual(await s.readdir('/'), ['mem', 'ro', 'w'])
  await s.writeFile('/w/host.txt', 'changed')
  assert.equal(readFileSync(join(dir, 'host.txt'), 'utf8'), 'on disk', 'nothing on disk before commit')
  await s.chmod('/w/host.txt', 0o700)
  const report = await s.commit()
  assert.deepEqual(report.applied, ['/w/host.txt'])
  assert.equal(readFileSync(join(dir, 'host.txt'), 'utf8'), 'changed')
  assert.equal(statSync(join(dir, 'host.txt')).mode & 0o777, 0o700)
  s.fork('named')
  assert.deepEqual(
    mirage.sessions().map((x) => [x.name, x.parent]),
    [
      ['main', undefined],
      ['named', 'main'],
    ],
  )
  assert.equal(mirage.session('named').name, 'named')
  assert.equal(mirage.session('named').parent().name, 'main')
  mirage.unmount('/mem')
  assert.deepEqual(await s.readdir('/'), ['ro', 'w'])
})

test('paths in any script, with unpaired surrogates, and long ones cross intact', async () => {
  const { mirage, main } = setup()
  // Deep enough to pass 512 UTF-16 units, the length read without an allocation.
  const deep = `/data/${'d'.repeat(200)}/${'é'.repeat(120)}`
  await main.mkdir(deep, { recursive: true })
  const names = ['/data/ünïcödé-文件-😀.txt', '/data/lone-\uD800-surrogate', `/data/${'é'.repeat(120)}`, `${deep}/${'f'.repeat(200)}`]
  for (const [i, name] of names.entries()) {
    await main.writeFile(name, `file ${i}`)
    main.writeFileSync(`${name}.sync`, `sync ${i}`)
  }
  // Another handle on the session: its reads cross into the native layer (no cached copy).
  const other = mirage.session('main')
  for (const [i, name] of names.entries()) {
    assert.equal(await other.readFile(name, 'utf8'), `file ${i}`)
    assert.equal(other.readFileSync(`${name}.sync`, 'utf8'), `sync ${i}`)
    assert.equal((await other.stat(name)).size, `file ${i}`.length)
    assert.equal(other.existsSync(`${name}.sync`), true)
  }
  const listed = await other.readdir('/data')
  assert.ok(listed.includes('ünïcödé-文件-😀.txt'), 'the name lists as written')
  assert.ok(listed.includes('lone-\uFFFD-surrogate'), 'an unpaired surrogate becomes U+FFFD')
  assert.equal(await other.exists('/data/lone-\uFFFD-surrogate'), true)
})

test('small reads stay intact when their read slab fills up and a new one starts', async () => {
  const { mirage, main } = setup()
  const count = 300
  for (let i = 0; i < count; i++) main.writeFileSync(`/data/f${i}`, Buffer.alloc(1000, i % 251))
  // Another handle has no cached copies: every read is copied into its slabs of 64 KiB.
  const other = mirage.session('main')
  const reads = []
  for (let i = 0; i < count; i++) reads.push(await other.readFile(`/data/f${i}`))
  for (let i = 0; i < count; i++) reads.push(other.readFileSync(`/data/f${i}`))
  for (let i = 0; i < count; i++) reads.push(await main.readFile(`/data/f${i}`))
  reads.forEach((content, n) => {
    const i = n % count
    assert.equal(content.length, 1000, `read ${n}`)
    assert.ok(content.every((byte) => byte === i % 251), `read ${n} holds file ${i}'s bytes`)
  })
})

// Fork isolation, first-winner commits, winner-takes-all, diffs, root commits and the store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

import { Mirage, local, memory } from '@mirage/vfs'
import { setup, tempDir, rejectsWith } from './helpers.mjs'

test('classic fork isolation on a RAM mount', async () => {
  const { main } = setup()
  const [a1, a2] = [main.fork(), main.fork()]
  await a1.writeFile('/data/scratch.txt', 'a1 was here')
  assert.equal(await a1.readFile('/data/scratch.txt', 'utf8'), 'a1 was here')
  assert.equal(await a2.exists('/data/scratch.txt'), false)
  assert.equal(await main.exists('/data/scratch.txt'), false)
  await a1.commit()
  assert.equal(await main.readFile('/data/scratch.txt', 'utf8'), 'a1 was here')
  assert.equal(await a2.exists('/data/scratch.txt'), false, 'a sibling still does not see it')
})

test('first winner commits; the loser keeps every change; disjoint forks both commit', async () => {
  const { main } = setup()
  const [a, b, c] = [main.fork(), main.fork(), main.fork()]
  await a.writeFile('/data/x', 'a')
  await b.writeFile('/data/x', 'b')
  await b.writeFile('/data/y', 'only b')
  await c.writeFile('/data/z', 'c')
  await a.commit()
  await rejectsWith(b.commit(), 'ECONFLICT')
  assert.equal(await b.readFile('/data/x', 'utf8'), 'b')
  assert.equal(await b.readFile('/data/y', 'utf8'), 'only b')
  await c.commit()
  assert.deepEqual(await main.readdir('/data'), ['x', 'z'])
})

test('winner takes all aborts the siblings in the same step', async () => {
  const { mirage, main } = setup()
  const [a, b] = [main.fork(), main.fork()]
  const bChild = b.fork()
  const losers = [b.name, bChild.name].sort()
  await a.writeFile('/data/win', '1')
  const report = await a.commit({ winnerTakesAll: true })
  assert.deepEqual(report.applied, ['/data/win'])
  assert.deepEqual(report.aborted.sort(), losers)
  await rejectsWith(b.readFile('/data/win'), 'ENOENT')
  assert.deepEqual(
    mirage.sessions().map((s) => s.name),
    ['main', a.name],
  )
})

test('diff and diffText describe a fork against its parent', async () => {
  const { main } = setup()
  await main.writeFile('/data/edit.txt', 'one\ntwo\n')
  await main.writeFile('/data/gone.txt', 'bye')
  const fork = main.fork()
  await fork.writeFile('/data/edit.txt', 'one\n2\n')
  await fork.rm('/data/gone.txt')
  await fork.writeFile('/data/new.txt', 'hello')
  assert.deepEqual(await fork.diff(), [
    { path: '/data/edit.txt', change: 'modified', kind: 'file', oldSize: 8, newSize: 6 },
    { path: '/data/gone.txt', change: 'deleted', kind: 'file', oldSize: 3 },
    { path: '/data/new.txt', change: 'added', kind: 'file', newSize: 5 },
  ])
  const text = await fork.diffText('/data/edit.txt')
  assert.match(text, /^-two$/m)
  assert.match(text, /^\+2$/m)
})

test('a root commit refuses to overwrite a file changed on disk, then applies', async () => {
  const dir = tempDir()
  writeFileSync(join(dir, 'a.txt'), 'original')
  const mirage = new Mirage()
  mirage.mount('/w', local(dir))
  const s = mirage.createSession('main')
  await s.writeFile('/w/a.txt', 'mine')
  await s.writeFile('/w/b.txt', 'new')
  writeFileSync(join(dir, 'a.txt'), 'someone else')
  const e = await rejectsWith(s.commit(), 'ECONFLICT')
  assert.deepEqual(e.conflicts, ['/w/a.txt'])
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'someone else')
  assert.equal(existsSync(join(dir, 'b.txt')), false, 'nothing written')
  await s.rm('/w/a.txt')
  await s.writeFile('/w/a.txt', 'mine, again')
  await rejectsWith(s.commit(), 'ECONFLICT')
})

test('a persistent store restores sessions and forks in a new process', async () => {
  const store = tempDir()
  const script = `
    const { Mirage, memory } = require('@mirage/vfs')
    const m = Mirage.open(${JSON.stringify(store)})
    m.mount('/data', memory())
    const main = m.createSession('main')
    main.writeFileSync('/data/base', 'base')
    const fork = main.fork('agent')
    fork.writeFileSync('/data/agent.txt', 'from the fork')
    m.flush()
  `
  execFileSync(process.execPath, ['-e', script], { cwd: import.meta.dirname })
  const mirage = Mirage.open(store)
  mirage.mount('/data', memory())
  assert.deepEqual(
    mirage.sessions().map((s) => s.name),
    ['main', 'agent'],
  )
  const agent = mirage.session('agent')
  assert.equal(await agent.readFile('/data/agent.txt', 'utf8'), 'from the fork')
  assert.equal(await mirage.session('main').exists('/data/agent.txt'), false)
  await agent.commit()
  assert.equal(await mirage.session('main').readFile('/data/base', 'utf8'), 'base')
  assert.equal(await mirage.session('main').readFile('/data/agent.txt', 'utf8'), 'from the fork')
})

test('a fork of a session holding 20,000 files shares them and stays isolated', async () => {
  const mirage = new Mirage()
  mirage.mount('/data', memory())
  const main = mirage.createSession('main')
  for (let i = 0; i < 20_000; i++) main.writeFileSync(`/data/${i}`, 'x')
  const fork = main.fork()
  assert.equal(await fork.readFile('/data/19999', 'utf8'), 'x')
  await fork.writeFile('/data/0', 'changed')
  assert.equal(await main.readFile('/data/0', 'utf8'), 'x')
})

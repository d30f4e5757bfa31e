// The content cache of a session handle (src/cache.ts): reading back what a handle wrote never
// shows stale or shared bytes, whatever else changed the session in between.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Mirage, memory } from '@mirage/vfs'
import { setup, rejectsWith } from './helpers.mjs'

test('bytes written and bytes read are private copies', async () => {
  const { main } = setup()
  const content = Buffer.from('original')
  await main.writeFile('/data/f', content)
  content.fill(0x78)
  const first = await main.readFile('/data/f')
  assert.equal(first.toString(), 'original')
  first.fill(0x79)
  assert.equal((await main.readFile('/data/f')).toString(), 'original')
  assert.equal(main.readFileSync('/data/f', 'utf8'), 'original')
  const view = new Uint8Array([1, 2, 3, 4]).subarray(1, 3)
  main.writeFileSync('/data/g', view)
  view[0] = 9
  assert.deepEqual([...(await main.readFile('/data/g'))], [2, 3])
})

test('text comes back in any encoding', async () => {
  const { main } = setup()
  await main.writeFile('/data/t', 'héllo')
  assert.equal(await main.readFile('/data/t', 'utf8'), 'héllo')
  assert.equal(await main.readFile('/data/t', { encoding: 'base64' }), Buffer.from('héllo').toString('base64'))
  assert.deepEqual(await main.readFile('/data/t'), Buffer.from('héllo'))
  await main.writeFile('/data/b', Buffer.from('bytes'))
  assert.equal(await main.readFile('/data/b', 'hex'), Buffer.from('bytes').toString('hex'))
})

test('a write through another handle of the same session is seen', async () => {
  const { mirage, main } = setup()
  await main.writeFile('/data/f', 'one')
  assert.equal(await main.readFile('/data/f', 'utf8'), 'one')
  const other = mirage.session('main')
  await other.writeFile('/data/f', 'two')
  assert.equal(await main.readFile('/data/f', 'utf8'), 'two')
  await main.writeFile('/data/g', 'three')
  await other.rm('/data/g')
  await rejectsWith(main.readFile('/data/g'), 'ENOENT')
})

test('a fork committed into the session is seen', async () => {
  const { main } = setup()
  await main.writeFile('/data/f', 'parent')
  assert.equal(await main.readFile('/data/f', 'utf8'), 'parent')
  const child = main.fork()
  await child.writeFile('/data/f', 'child')
  await child.commit()
  assert.equal(await main.readFile('/data/f', 'utf8'), 'child')
})

test('another root commit to the same resource is seen after this session committed', async () => {
  const mirage = new Mirage()
  mirage.mount('/data', memory())
  const [a, b] = [mirage.createSession('a'), mirage.createSession('b')]
  await a.writeFile('/data/f', 'from a')
  await a.commit()
  assert.equal(await a.readFile('/data/f', 'utf8'), 'from a')
  await b.writeFile('/data/f', 'from b')
  await b.commit()
  assert.equal(await a.readFile('/data/f', 'utf8'), 'from b')
})

test('own renames, removals and truncations are seen', async () => {
  const { main } = setup()
  await main.writeFile('/data/a', 'a')
  await main.writeFile('/data/b', 'b')
  await main.rename('/data/b', '/data/a')
  assert.equal(await main.readFile('/data/a', 'utf8'), 'b')
  await rejectsWith(main.readFile('/data/b'), 'ENOENT')
  await main.truncate('/data/a', 0)
  assert.equal(await main.readFile('/data/a', 'utf8'), '')
  await main.appendFile('/data/a', 'more')
  assert.equal(await main.readFile('/data/a', 'utf8'), 'more')
  await main.rm('/data/a')
  await rejectsWith(main.readFile('/data/a'), 'ENOENT')
})

test('writes through links never leave a stale alias', async () => {
  const { main } = setup()
  await main.mkdir('/data/dir')
  await main.writeFile('/data/dir/f', 'first')
  await main.symlink('/data/dir/f', '/data/link')
  await main.symlink('/data/dir', '/data/dirlink')
  await main.writeFile('/data/link', 'through the link')
  await main.writeFile('/data/dirlink/f', 'through the directory link')
  assert.equal(await main.readFile('/data/link', 'utf8'), 'through the directory link')
  await main.writeFile('/data/dir/f', 'direct')
  assert.equal(await main.readFile('/data/link', 'utf8'), 'direct')
  assert.equal(await main.readFile('/data/dirlink/f', 'utf8'), 'direct')
  await main.writeFile('/data/dir//g', 'unnormalised')
  await main.writeFile('/data/dir/g', 'normalised')
  assert.equal(await main.readFile('/data/dir//g', 'utf8'), 'normalised')
})

test('relative paths follow the working directory', async () => {
  const { main } = setup()
  await main.mkdir('/data/x')
  await main.mkdir('/data/y')
  await main.chdir('/data/x')
  await main.writeFile('f', 'in x')
  await main.chdir('/data/y')
  await main.writeFile('f', 'in y')
  assert.equal(await main.readFile('f', 'utf8'), 'in y')
  await main.chdir('/data/x')
  assert.equal(await main.readFile('f', 'utf8'), 'in x')
})

test('an aborted session reads nothing', async () => {
  const { main } = setup()
  const child = main.fork()
  await child.writeFile('/data/f', 'doomed')
  assert.equal(await child.readFile('/data/f', 'utf8'), 'doomed')
  child.abort()
  await rejectsWith(child.readFile('/data/f'), 'ENOENT')
})

test('a sibling aborted by winner-takes-all reads nothing', async () => {
  const { main } = setup()
  const [winner, loser] = [main.fork(), main.fork()]
  await loser.writeFile('/data/f', 'loser')
  assert.equal(loser.readFileSync('/data/f', 'utf8'), 'loser')
  await winner.writeFile('/data/g', 'winner')
  await winner.commit({ winnerTakesAll: true })
  assert.throws(() => loser.readFileSync('/data/f'), { code: 'ENOENT' })
})

test('many files stay correct past the cache budget', async () => {
  const { main } = setup()
  const big = Buffer.alloc(60 * 1024)
  for (let i = 0; i < 400; i++) {
    big.writeUInt32LE(i, 0)
    await main.writeFile(`/data/${i}`, big)
  }
  for (let i = 0; i < 400; i++) assert.equal((await main.readFile(`/data/${i}`)).readUInt32LE(0), i)
  await main.writeFile('/data/huge', Buffer.alloc(128 * 1024, 1))
  assert.equal((await main.readFile('/data/huge')).length, 128 * 1024)
})

test('text stays correct past the cache budget, and bytes written over text replace it', async () => {
  const { main } = setup()
  const text = (i) => `${i}:`.padEnd(60 * 1024, 'x')
  for (let i = 0; i < 100; i++) await main.writeFile(`/data/t${i}`, text(i))
  for (let i = 0; i < 100; i++) assert.equal(await main.readFile(`/data/t${i}`, 'utf8'), text(i))
  await main.writeFile('/data/t99', Buffer.from('bytes now'))
  assert.equal(await main.readFile('/data/t99', 'utf8'), 'bytes now')
  main.writeFileSync('/data/t98', new Uint8Array([0x41]))
  assert.equal(main.readFileSync('/data/t98', 'utf8'), 'A')
})

test('paths that name one file through unpaired surrogates never leave a stale copy', async () => {
  const { main } = setup()
  // Both strings name the file '/data/x\uFFFD', as the native layer converts them.
  await main.writeFile('/data/x\uD800', 'first')
  assert.equal(await main.readFile('/data/x\uD800', 'utf8'), 'first')
  await main.writeFile('/data/x\uDBFF', 'second')
  assert.equal(await main.readFile('/data/x\uD800', 'utf8'), 'second')
  main.writeFileSync('/data/x\uD801', 'third')
  assert.equal(main.readFileSync('/data/x\uDBFF', 'utf8'), 'third')
})

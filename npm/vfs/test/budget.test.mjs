// The limit on the content sessions hold in memory. It is process-wide, and node --test runs
// each file in a process of its own, so this file holds the only test that sets it.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { Mirage, memory, setContentLimit, contentUsage } from '@mirage/vfs'
import { rejectsWith } from './helpers.mjs'

const KIB = 1024
// What an entry counts for: 1 KiB, and its path three times.
const entry = (path) => 1024 + 3 * path.length

test('writes past the content limit fail with ENOSPC, and room comes back', async () => {
  assert.deepEqual(contentUsage(), { held: 0, limit: null, refused: 0 })
  setContentLimit(256 * KIB)
  const mirage = new Mirage()
  mirage.mount('/m', memory())
  const main = mirage.createSession('main')

  await main.writeFile('/m/a', Buffer.alloc(200 * KIB, 1))
  assert.equal(contentUsage().held, 200 * KIB + entry('/m/a'))
  const fork = main.fork()
  assert.equal(contentUsage().held, 200 * KIB + 2 * entry('/m/a'), 'a fork shares content, and counts its entries')

  const full = await rejectsWith(fork.writeFile('/m/b', Buffer.alloc(100 * KIB, 2)), 'ENOSPC')
  assert.equal(full.path, '/m/b')
  assert.equal(full.errno, 28)
  assert.equal(await fork.exists('/m/b'), false, 'a refused write changes nothing')
  assert.throws(() => main.writeFileSync('/m/c', Buffer.alloc(100 * KIB)), { code: 'ENOSPC' })
  assert.deepEqual(contentUsage(), { held: 200 * KIB + 2 * entry('/m/a'), limit: 256 * KIB, refused: 2 })

  await main.writeFile('/m/a', 'small')
  fork.abort()
  await main.writeFile('/m/b', Buffer.alloc(100 * KIB, 2))
  assert.equal((await main.readFile('/m/b')).length, 100 * KIB, 'overwriting gave the room back')

  assert.throws(() => setContentLimit(-1), { code: 'EINVAL' })
  assert.throws(() => setContentLimit(1.5), { code: 'EINVAL' })
  assert.throws(() => setContentLimit(2 ** 64), { code: 'EINVAL' })
  setContentLimit(null)
  assert.equal(contentUsage().limit, null)
})

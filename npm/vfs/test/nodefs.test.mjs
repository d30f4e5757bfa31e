// @mirage/vfs on a memory mount answers like node:fs/promises on a real directory: the same
// random operations, the same results and the same error codes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as fsp from 'node:fs/promises'
import { join } from 'node:path'

import { Mirage, memory } from '@mirage/vfs'
import { tempDir } from './helpers.mjs'

const PATHS = ['a', 'b', 'd', 'd/x', 'd/y', 'e', 'e/x', 'e/d', 'loop']

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The operations, each written once against an fs/promises-like object. */
const OPS = [
  (fs, p, q, n) => fs.writeFile(p, `content ${n}`),
  (fs, p, q, n) => fs.appendFile(p, `+${n}`),
  (fs, p) => fs.readFile(p, 'utf8'),
  (fs, p) => fs.mkdir(p),
  (fs, p) => fs.mkdir(p, { recursive: true }).then(() => undefined),
  (fs, p) => fs.rm(p, { recursive: true, force: true }),
  (fs, p) => fs.rm(p),
  (fs, p) => fs.rmdir(p),
  (fs, p) => fs.unlink(p),
  (fs, p, q) => fs.rename(p, q),
  // libuv removes the target when copying a directory fails; Mirage leaves it alone, so that
  // case is left out.
  async (fs, p, q) => ((await fs.stat(p).catch(() => null))?.isDirectory() ? 'skipped' : fs.copyFile(p, q)),
  (fs, p) => fs.stat(p).then((s) => [s.isFile(), s.isDirectory(), s.isFile() ? s.size : 0]),
  (fs, p) => fs.readdir(p).then((names) => names.sort()),
  (fs, p, q, n) => fs.truncate(p, n % 5),
  // Links with relative targets mean the same in both trees.
  (fs, p, q, n) => fs.symlink(LINK_TARGETS[n % LINK_TARGETS.length], p),
  (fs, p) => fs.readlink(p),
  (fs, p) => fs.lstat(p).then((s) => [s.isSymbolicLink(), s.isFile(), s.isDirectory()]),
  (fs, p, q, n, root) => fs.realpath(p).then((real) => real.slice(root.length)),
  (fs, p, q, n) => fs.chmod(p, n % 2 ? 0o755 : 0o600).then(() => fs.stat(p)).then((s) => s.mode & 0o777),
  // Ranged reads and writes at an offset (node:fs needs a FileHandle for those).
  (fs, p, q, n) => (fs === fsp ? nodeRead(p, n % 7, 5) : fs.read(p, { offset: n % 7, length: 5 })).then(String),
  (fs, p, q, n) => (fs === fsp ? nodeWrite(p, n % 9, `w${n}`) : fs.write(p, n % 9, `w${n}`)),
  (fs, p) => fs.readFile(p, 'utf8'),
]

async function nodeRead(path, offset, length) {
  const handle = await fsp.open(path, 'r')
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(length), 0, length, offset)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

async function nodeWrite(path, offset, text) {
  const handle = await fsp.open(path, 'r+')
  try {
    await handle.write(Buffer.from(text), 0, text.length, offset)
  } finally {
    await handle.close()
  }
}

// Relative and inside the tree: a target that climbs out, or whose '..' follows a link, means
// something else on the host (Mirage resolves '..' lexically, inside its tree).
const LINK_TARGETS = ['a', 'd', 'x', 'd/x', 'loop', '.']

test('random operations answer like node:fs/promises', async () => {
  for (let seed = 1; seed <= 400; seed++) {
    const next = random(seed)
    const dir = tempDir('mirage-nodefs-')
    const mirage = new Mirage()
    mirage.mount('/m', memory())
    const s = mirage.createSession('main')
    const pick = () => PATHS[Math.floor(next() * PATHS.length)]
    for (let step = 0; step < 80; step++) {
      const opIndex = Math.floor(next() * OPS.length)
      const [p, q, n] = [pick(), pick(), Math.floor(next() * 100)]
      const outcome = (promise) => promise.then((value) => ({ value }), (e) => ({ code: e.code }))
      const want = await outcome(OPS[opIndex](fsp, join(dir, p), join(dir, q), n, dir))
      const got = await outcome(OPS[opIndex](s, `/m/${p}`, `/m/${q}`, n, '/m'))
      assert.deepEqual(got, want, `seed ${seed}, step ${step}: ${OPS[opIndex].toString()} on ${p}, ${q}`)
    }
  }
})

// The package as users get it: ESM and CommonJS entry points, the packed tarballs installed
// into a fresh directory without network, and the binary's glibc requirement.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { readdirSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

import * as esm from '@mirage/vfs'
import { tempDir } from './helpers.mjs'

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)))
const platformDir = join(packageDir, '..', 'vfs-linux-x64-gnu')

test('ESM and CommonJS load the same classes', () => {
  const cjs = createRequire(import.meta.url)('@mirage/vfs')
  assert.equal(esm.Mirage, cjs.Mirage)
  assert.equal(typeof esm.memory, 'function')
  assert.equal(typeof esm.default.local, 'function')
})

test('packed tarballs install into a fresh directory offline and work', () => {
  const out = tempDir('mirage-pack-')
  for (const dir of [packageDir, platformDir]) {
    execFileSync('npm', ['pack', '--pack-destination', out, '--silent'], { cwd: dir, stdio: 'pipe' })
  }
  const tarballs = readdirSync(out).filter((f) => f.endsWith('.tgz'))
  assert.equal(tarballs.length, 2, tarballs.join(', '))
  const app = tempDir('mirage-app-')
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs.map((t) => join(out, t))], {
    cwd: app,
    stdio: 'pipe',
  })
  writeFileSync(
    join(app, 'main.mjs'),
    `import { Mirage, memory } from '@mirage/vfs'
     const m = new Mirage(); m.mount('/d', memory())
     const s = m.createSession('s'); await s.writeFile('/d/x', 'packed')
     console.log(await s.readFile('/d/x', 'utf8'))`,
  )
  writeFileSync(join(app, 'main.cjs'), `const { Mirage } = require('@mirage/vfs'); console.log(typeof new Mirage().createSession)`)
  assert.equal(execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' }).trim(), 'packed')
  assert.equal(execFileSync(process.execPath, ['main.cjs'], { cwd: app, encoding: 'utf8' }).trim(), 'function')
})

test('the binary needs glibc 2.17 at most', () => {
  const symbols = execFileSync('objdump', ['-T', join(platformDir, 'mirage.linux-x64-gnu.node')], { encoding: 'utf8' })
  const versions = [...symbols.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])])
  assert.ok(versions.length > 0, 'the binary links against glibc')
  const [major, minor] = versions.reduce((a, b) => (a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]) ? a : b))
  assert.ok(major === 2 && minor <= 17, `needs GLIBC_${major}.${minor}`)
})

test("the allocator's settings reach it, a user's value wins, and children do not inherit them", () => {
  // mimalloc prints its options on stderr when verbose; the probe prints the variable after
  // the addon loaded.
  const probe = "require('@mirage/vfs'); console.log('after load:', process.env.MIMALLOC_PURGE_DELAY ?? 'unset')"
  const run = (value) => {
    const env = { ...process.env, MIMALLOC_VERBOSE: '1' }
    delete env.MIMALLOC_PURGE_DELAY
    if (value !== undefined) env.MIMALLOC_PURGE_DELAY = value
    const out = spawnSync(process.execPath, ['-e', probe], { cwd: packageDir, env, encoding: 'utf8' })
    assert.equal(out.status, 0, out.stderr)
    return { options: out.stderr, after: out.stdout.trim() }
  }
  const ours = run(undefined)
  assert.match(ours.options, /option 'purge_delay': 10000\b/)
  assert.equal(ours.after, 'after load: unset', 'the variable is removed once the addon has loaded')
  const theirs = run('5')
  assert.match(theirs.options, /option 'purge_delay': 5\b/)
  assert.equal(theirs.after, 'after load: 5', "the user's variable stays")
})

// remote(url): an S3 prefix on a real server (moto, which the test command installs into the
// workspace's .venv) and a GitHub repository on the project's GitHub API server, mounted and
// used through sessions like any other resource.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import { Mirage, remote } from '@mirage/vfs'
import { rejectsWith, tempDir } from './helpers.mjs'

const AUTH = 'AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0'
const venv = fileURLToPath(new URL('../../../.venv/bin/moto_server', import.meta.url))
const MOTO = process.env.MIRAGE_MOTO_SERVER ?? (existsSync(venv) ? venv : 'moto_server')

let server
let endpoint

function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function reachable(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket.end() && true)).on('error', () => resolve(false))
  })
}

/** One request to the server, unsigned (moto accepts any credentials). */
async function s3(method, path, body) {
  const response = await fetch(`${endpoint}${path}`, { method, body, headers: { authorization: AUTH } })
  return { status: response.status, text: await response.text() }
}

before(async () => {
  const port = await freePort()
  server = spawn(MOTO, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  endpoint = `http://127.0.0.1:${port}`
  const start = Date.now()
  while (!(await reachable(port))) {
    if (Date.now() - start > 30_000) throw new Error(`${MOTO} did not start (run tests/run.sh, which installs it)`)
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal((await s3('PUT', '/vfs-tests')).status, 200)
  assert.equal((await s3('PUT', '/vfs-tests/project/README.md', '# on the server\n')).status, 200)
})

after(() => server?.kill())

const url = (extra = '') =>
  `s3://vfs-tests/project?endpoint=${endpoint}&region=us-east-1&access_key_id=test&secret_access_key=test&retries=1${extra}`

test('a bucket prefix is read, written, forked and committed like any mount', async () => {
  const mirage = new Mirage()
  mirage.mount('/bucket', remote(url()))
  const main = mirage.createSession('main')
  assert.deepEqual(await main.readdir('/bucket'), ['README.md'])
  assert.equal(await main.readFile('/bucket/README.md', 'utf8'), '# on the server\n')
  assert.equal((await main.stat('/bucket/README.md')).size, 16)

  const fork = main.fork()
  await fork.mkdir('/bucket/notes')
  await fork.writeFile('/bucket/notes/plan.md', 'plan\n')
  assert.equal(await main.exists('/bucket/notes/plan.md'), false, 'the fork is isolated')
  await fork.commit()
  assert.equal((await s3('GET', '/vfs-tests/project/notes/plan.md')).status, 404, 'nothing reaches the server yet')
  await main.commit()
  assert.deepEqual(await s3('GET', '/vfs-tests/project/notes/plan.md'), { status: 200, text: 'plan\n' })
})

test('a key someone else changed fails the commit with ECONFLICT and the session keeps its work', async () => {
  const mirage = new Mirage()
  mirage.mount('/bucket', remote(url('&cache_ttl=0')))
  const main = mirage.createSession('main')
  await main.readFile('/bucket/README.md')
  await main.writeFile('/bucket/README.md', 'mine\n')
  assert.equal((await s3('PUT', '/vfs-tests/project/README.md', 'theirs\n')).status, 200)
  const e = await rejectsWith(main.commit(), 'ECONFLICT')
  assert.match(e.message, /README\.md/)
  assert.equal((await s3('GET', '/vfs-tests/project/README.md')).text, 'theirs\n')
  assert.equal(await main.readFile('/bucket/README.md', 'utf8'), 'mine\n')
})

test('an unreachable endpoint fails with EIO naming it, and a bad URL with EINVAL', async () => {
  const port = await freePort()
  const mirage = new Mirage()
  mirage.mount('/nowhere', remote(`s3://b/p?endpoint=http://127.0.0.1:${port}&region=us-east-1&access_key_id=k&secret_access_key=s&retries=0`))
  const e = await rejectsWith(mirage.createSession('s').readdir('/nowhere'), 'EIO')
  assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
  assert.throws(() => remote('s3://b/p?part_size=1'), (err) => err.code === 'EINVAL' && /part_size/.test(err.message))
})

test('a GitHub repository reads lazily and a session commits back as one git commit', async () => {
  const repos = tempDir()
  const repo = join(repos, 'octo', 'hello')
  mkdirSync(join(repo, 'src'), { recursive: true })
  writeFileSync(join(repo, 'README.md'), '# hello\n')
  writeFileSync(join(repo, 'src', 'main.ts'), 'export const answer = 42\n')
  const git = (...args) =>
    execFileSync('git', args, {
      cwd: repo,
      env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'Ada', GIT_AUTHOR_EMAIL: 'ada@example.com', GIT_COMMITTER_NAME: 'Ada', GIT_COMMITTER_EMAIL: 'ada@example.com' },
    })
  git('init', '-q', '-b', 'main')
  git('add', '.')
  git('commit', '-qm', 'first')

  const port = await freePort()
  const script = fileURLToPath(new URL('../../../tests/github/server.mjs', import.meta.url))
  const github = spawn(process.execPath, [script, '--port', String(port), '--repos', repos], { stdio: 'ignore' })
  try {
    while (!(await reachable(port))) await new Promise((r) => setTimeout(r, 20))
    const mirage = new Mirage()
    mirage.mount('/upstream', remote(`github://octo/hello?base_url=http://127.0.0.1:${port}&cache_dir=${tempDir()}&token=t`))
    const s = mirage.createSession('s')
    assert.deepEqual((await s.readdir('/upstream')).sort(), ['README.md', 'src'])
    assert.equal(await s.readFile('/upstream/src/main.ts', 'utf8'), 'export const answer = 42\n')
    const readOnly = new Mirage()
    readOnly.mount('/upstream', remote(`github://octo/hello?base_url=http://127.0.0.1:${port}&read_only=true`))
    await rejectsWith(readOnly.createSession('r').writeFile('/upstream/new.txt', 'x'), 'EROFS')

    const head = git('rev-parse', 'main').toString().trim()
    await s.writeFile('/upstream/src/main.ts', 'export const answer = 43\n')
    await s.commit({ message: 'Raise the answer' })
    assert.equal(git('log', '-1', '--format=%P %s', 'main').toString().trim(), `${head} Raise the answer`)
    assert.equal(git('show', 'main:src/main.ts').toString(), 'export const answer = 43\n')
  } finally {
    github.kill()
  }
})

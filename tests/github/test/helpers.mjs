// Shared by the tests: real git repositories in a temporary directory, and the server started
// over them on a free port.
import { after } from 'node:test'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const SERVER = fileURLToPath(new URL('../server.mjs', import.meta.url))

// Fixed identities and dates, so that every run makes the same commits.
const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: 'Ada Lovelace',
  GIT_AUTHOR_EMAIL: 'ada@example.com',
  GIT_AUTHOR_DATE: '1700000000 +0100',
  GIT_COMMITTER_NAME: 'Ada Lovelace',
  GIT_COMMITTER_EMAIL: 'ada@example.com',
  GIT_COMMITTER_DATE: '1700000000 +0100',
}

/** Runs git in `dir` and returns its trimmed standard output. */
export function git(dir, args, input) {
  const env = { ...process.env, ...GIT_IDENTITY, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' }
  return execFileSync('git', args, { cwd: dir, env, input, encoding: 'utf8' }).trim()
}

/** A temporary directory, removed when the tests of the file are done. */
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mirage-github-'))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Repositories for the server, under a new directory:
 * - `octo/work`: a working copy with three commits on `main`: nested directories, an
 *   executable, a symlink, a binary file, a submodule entry, a rename; a branch `feature/x`,
 *   an annotated tag `v1` and a lightweight tag `light`.
 * - `octo/hello.git`: a bare clone of it.
 * - `octo/secret.git`: a bare clone marked private (a file named PRIVATE).
 * - `octo/empty.git`: a bare repository without commits.
 * Returns {root, work, bare, commits: [first, second, third]}.
 */
export function makeRepos() {
  const root = tempDir()
  const owner = path.join(root, 'octo')
  const work = path.join(owner, 'work')
  fs.mkdirSync(work, { recursive: true })
  git(work, ['init', '-q', '-b', 'main'])
  fs.mkdirSync(path.join(work, 'src/lib/deep'), { recursive: true })
  fs.mkdirSync(path.join(work, 'docs'))
  fs.writeFileSync(path.join(work, 'README.md'), '# hello\n\nA repository for tests.\n')
  fs.writeFileSync(path.join(work, 'run.sh'), '#!/bin/sh\necho hello\n', { mode: 0o755 })
  fs.writeFileSync(path.join(work, 'src/main.rs'), 'fn main() {}\n')
  fs.writeFileSync(path.join(work, 'src/lib/deep/old name.txt'), 'moved later\n')
  fs.writeFileSync(path.join(work, 'docs/data.bin'), Buffer.from([0, 1, 2, 255, 254, 0, 10]))
  fs.writeFileSync(path.join(work, 'docs/long.txt'), 'x'.repeat(200) + '\n')
  fs.symlinkSync('README.md', path.join(work, 'link'))
  git(work, ['add', '-A'])
  git(work, ['commit', '-q', '-m', 'first'])
  const first = git(work, ['rev-parse', 'HEAD'])
  // A submodule entry (a gitlink) with no .gitmodules: all a tree needs.
  git(work, ['update-index', '--add', '--cacheinfo', `160000,${first},vendor/sub`])
  fs.appendFileSync(path.join(work, 'README.md'), 'More.\n')
  git(work, ['add', 'README.md'])
  git(work, ['commit', '-q', '-m', 'second\n\nWith a body.'])
  const second = git(work, ['rev-parse', 'HEAD'])
  git(work, ['mv', 'src/lib/deep/old name.txt', 'src/lib/deep/new name.txt'])
  git(work, ['commit', '-q', '-m', 'third'])
  const third = git(work, ['rev-parse', 'HEAD'])
  git(work, ['branch', 'feature/x', second])
  git(work, ['tag', '-a', '-m', 'version 1', 'v1', first])
  git(work, ['tag', 'light', second])
  const bare = path.join(owner, 'hello.git')
  git(owner, ['clone', '-q', '--bare', 'work', 'hello.git'])
  git(owner, ['clone', '-q', '--bare', 'work', 'secret.git'])
  fs.writeFileSync(path.join(owner, 'secret.git', 'PRIVATE'), '')
  git(owner, ['init', '-q', '--bare', '-b', 'main', 'empty.git'])
  return { root, work, bare, commits: [first, second, third] }
}

/**
 * Starts the server over `repos` with extra command-line arguments; stopped when the tests of
 * the file are done. Returns {base, logFile, request, requests, setRateLimit, stop}.
 */
export async function startServer(repos, args = []) {
  const logFile = path.join(tempDir(), 'requests.log')
  const child = spawn(process.execPath, [SERVER, '--port', '0', '--repos', repos, '--log', logFile, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const base = await new Promise((resolve, reject) => {
    let stdout = ''
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      const match = /listening on (http:\/\/\S+)\n/.exec(stdout)
      if (match) resolve(match[1])
    })
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderr}`)))
  })
  const stop = () => child.kill()
  after(stop)

  /**
   * Sends a request and returns {status, headers (a plain object), text, json, bytes}. `body`
   * (an object) is sent as JSON; `token` as a Bearer token.
   */
  async function request(method, target, { body, token, headers = {} } = {}) {
    const all = { accept: 'application/vnd.github+json', ...headers }
    if (token) all.authorization = `Bearer ${token}`
    const response = await fetch(base + target, {
      method,
      headers: all,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    const bytes = Buffer.from(await response.arrayBuffer())
    const text = bytes.toString()
    let json
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: response.status, headers: Object.fromEntries(response.headers), text, json, bytes }
  }

  /** The requests the server has logged, as its control endpoint lists them. */
  async function requests() {
    return (await fetch(`${base}/_mirage/requests`)).json()
  }

  /** Reshapes the rate-limit window through the control endpoint. */
  async function setRateLimit(settings) {
    const response = await fetch(`${base}/_mirage/rate-limit`, { method: 'POST', body: JSON.stringify(settings) })
    if (response.status !== 200) throw new Error(`rate-limit control: ${response.status} ${await response.text()}`)
  }

  return { base, logFile, request, requests, setRateLimit, stop }
}

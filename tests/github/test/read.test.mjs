// What the read endpoints answer is what git has: shas, modes, sizes, contents, commits; and a
// recursive listing cut by --tree-limit can be completed by walking subtrees.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'

import { git, makeRepos, startServer } from './helpers.mjs'

const repos = makeRepos()
const server = await startServer(repos.root)
const [first, second, third] = repos.commits
const get = async (target, options) => {
  const answer = await server.request('GET', target, options)
  assert.equal(answer.status, 200, `${target}: ${answer.text}`)
  return answer.json ?? answer
}

// `git ls-tree -r -t -l` of a tree, as the API's entries.
function gitListing(tree) {
  return git(repos.bare, ['ls-tree', '-r', '-t', '-l', '-z', tree])
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const [info, file] = line.split('\t')
      const [mode, type, sha, size] = info.split(/ +/)
      return { path: file, mode, type, sha, ...(size === '-' ? {} : { size: Number(size) }) }
    })
}

test('a recursive tree lists what git lists, with its modes, types, shas and sizes', async () => {
  const tree = await get('/repos/octo/hello/git/trees/main?recursive=1')
  assert.equal(tree.sha, git(repos.bare, ['rev-parse', 'main^{tree}']))
  assert.equal(tree.truncated, false)
  const entries = tree.tree.map(({ url, ...entry }) => entry)
  assert.deepEqual(entries, gitListing(tree.sha))
  const byPath = Object.fromEntries(tree.tree.map((entry) => [entry.path, entry]))
  assert.equal(byPath['run.sh'].mode, '100755')
  assert.equal(byPath.link.mode, '120000')
  assert.equal(byPath.link.size, 'README.md'.length)
  assert.deepEqual([byPath.src.mode, byPath.src.type, byPath.src.size], ['040000', 'tree', undefined])
  assert.equal(byPath.src.url, `${server.base}/repos/octo/hello/git/trees/${byPath.src.sha}`)
  assert.equal(byPath['docs/data.bin'].url, `${server.base}/repos/octo/hello/git/blobs/${byPath['docs/data.bin'].sha}`)
  // A submodule is a commit entry, with neither size nor url.
  assert.deepEqual(byPath['vendor/sub'], { path: 'vendor/sub', mode: '160000', type: 'commit', sha: first })
  // Any value of `recursive` asks for the whole tree, as on GitHub; no value at all does not.
  assert.equal((await get('/repos/octo/hello/git/trees/main?recursive=0')).tree.length, tree.tree.length)
  assert.equal((await get('/repos/octo/hello/git/trees/main')).tree.length, 6)
})

test('a tree is found by its sha, its commit, a branch or a tag', async () => {
  const treeSha = git(repos.bare, ['rev-parse', `${second}^{tree}`])
  for (const name of [treeSha, second, 'feature/x', 'light']) {
    assert.equal((await get(`/repos/octo/hello/git/trees/${encodeURIComponent(name)}`)).sha, treeSha, name)
  }
  const sub = (await get('/repos/octo/hello/git/trees/main')).tree.find((entry) => entry.path === 'src')
  const listing = await get(`/repos/octo/hello/git/trees/${sub.sha}`)
  assert.deepEqual(
    listing.tree.map((entry) => entry.path),
    ['lib', 'main.rs'],
  )
})

test('blobs: base64 in lines of 60 characters, any bytes, or raw with a raw media type', async () => {
  const tree = await get('/repos/octo/hello/git/trees/main?recursive=1')
  for (const file of ['README.md', 'docs/data.bin', 'docs/long.txt', 'run.sh']) {
    const entry = tree.tree.find((each) => each.path === file)
    const bytes = fs.readFileSync(path.join(repos.work, file))
    const blob = await get(`/repos/octo/hello/git/blobs/${entry.sha}`)
    assert.equal(blob.size, bytes.length)
    assert.equal(blob.encoding, 'base64')
    assert.deepEqual(Buffer.from(blob.content, 'base64'), bytes)
    const lines = blob.content.split('\n')
    assert.equal(lines.pop(), '', 'the content ends with a newline')
    assert.ok(lines.every((line, i) => (i < lines.length - 1 ? line.length === 60 : line.length <= 60)))
    for (const accept of [
      'application/vnd.github.raw',
      'application/vnd.github.raw+json',
      'application/vnd.github.v3.raw',
    ]) {
      const raw = await get(`/repos/octo/hello/git/blobs/${entry.sha}`, { headers: { accept } })
      assert.deepEqual(raw.bytes, bytes, `${file} as ${accept}`)
      assert.equal(raw.headers['content-type'], `${accept.replace('+json', '')}; charset=utf-8`)
    }
  }
  const link = tree.tree.find((each) => each.path === 'link')
  assert.equal(
    (await get(`/repos/octo/hello/git/blobs/${link.sha}`, { headers: { accept: 'application/vnd.github.raw' } })).text,
    'README.md',
  )
})

test('commits: tree, parents, message, and the files changed against the first parent', async () => {
  const root = await get(`/repos/octo/hello/commits/${first}`)
  assert.equal(root.commit.tree.sha, git(repos.bare, ['rev-parse', `${first}^{tree}`]))
  assert.deepEqual(root.parents, [])
  assert.equal(root.commit.message, 'first')
  assert.deepEqual(root.commit.author, { name: 'Ada Lovelace', email: 'ada@example.com', date: '2023-11-14T22:13:20Z' })
  assert.deepEqual(
    root.files.map((file) => [file.filename, file.status, file.additions]),
    [
      ['README.md', 'added', 3],
      ['docs/data.bin', 'added', 0],
      ['docs/long.txt', 'added', 1],
      ['link', 'added', 1],
      ['run.sh', 'added', 2],
      ['src/lib/deep/old name.txt', 'added', 1],
      ['src/main.rs', 'added', 1],
    ],
  )
  assert.deepEqual(root.stats, { total: 9, additions: 9, deletions: 0 })

  const middle = await get('/repos/octo/hello/commits/feature/x')
  assert.equal(middle.sha, second)
  assert.equal(middle.commit.message, 'second\n\nWith a body.')
  assert.deepEqual(
    middle.parents.map((parent) => parent.sha),
    [first],
  )
  assert.deepEqual(
    middle.files.map((file) => [file.filename, file.status, file.additions, file.deletions]),
    [
      ['README.md', 'modified', 1, 0],
      ['vendor/sub', 'added', 1, 0],
    ],
  )

  const rename = await get('/repos/octo/hello/commits/main')
  assert.equal(rename.sha, third)
  assert.equal(rename.files.length, 1)
  assert.equal(rename.files[0].status, 'renamed')
  assert.equal(rename.files[0].filename, 'src/lib/deep/new name.txt')
  assert.equal(rename.files[0].previous_filename, 'src/lib/deep/old name.txt')
  assert.equal(rename.files[0].blob_url, `${server.base}/octo/hello/blob/${third}/src/lib/deep/new%20name.txt`)

  // An annotated tag names the commit it points to.
  assert.equal((await get('/repos/octo/hello/commits/v1')).sha, first)
})

test('references: branches, annotated and lightweight tags, prefixes', async () => {
  const tag = await get('/repos/octo/hello/git/ref/tags/v1')
  assert.equal(tag.object.sha, git(repos.bare, ['rev-parse', 'refs/tags/v1']))
  assert.equal(tag.object.url, `${server.base}/repos/octo/hello/git/tags/${tag.object.sha}`)
  const light = await get('/repos/octo/hello/git/ref/tags/light')
  assert.deepEqual([light.object.type, light.object.sha], ['commit', second])
  const feature = await get('/repos/octo/hello/git/matching-refs/heads/feat')
  assert.deepEqual(
    feature.map((ref) => ref.ref),
    ['refs/heads/feature/x'],
  )
  const missing = await server.request('GET', '/repos/octo/hello/git/ref/heads/feat')
  assert.equal(missing.status, 404)
})

test('repositories: bare or not, names in any case, the default branch from HEAD', async () => {
  const work = await get('/repos/octo/work')
  assert.equal(work.full_name, 'octo/work')
  assert.equal((await get('/repos/octo/work/commits/main')).sha, third)
  const upper = await get('/repos/OCTO/Hello')
  assert.equal(upper.full_name, 'octo/hello')
  assert.equal(upper.id, (await get('/repos/octo/hello')).id)
  git(repos.bare, ['symbolic-ref', 'HEAD', 'refs/heads/feature/x'])
  try {
    assert.equal((await get('/repos/octo/hello')).default_branch, 'feature/x')
  } finally {
    git(repos.bare, ['symbolic-ref', 'HEAD', 'refs/heads/main'])
  }
  assert.equal((await server.request('GET', '/repos/octo/hello.git')).status, 404)
})

test('an empty repository answers 409 to the Git Data API, as GitHub does', async () => {
  assert.equal((await get('/repos/octo/empty')).size, 0)
  for (const target of [
    '/git/trees/main',
    '/git/ref/heads/main',
    '/git/matching-refs/',
    `/git/blobs/${first}`,
    '/commits/main',
  ]) {
    const answer = await server.request('GET', `/repos/octo/empty${target}`)
    assert.equal(answer.status, 409, target)
    assert.equal(answer.json.message, 'Git Repository is empty.')
  }
})

test('--tree-limit cuts recursive listings only; walking subtrees finds everything', async () => {
  const limited = await startServer(repos.root, ['--tree-limit', '4'])
  const full = gitListing(git(repos.bare, ['rev-parse', 'main^{tree}']))
  const cut = (await limited.request('GET', '/repos/octo/hello/git/trees/main?recursive=1')).json
  assert.equal(cut.truncated, true)
  assert.deepEqual(
    cut.tree.map((entry) => entry.path),
    full.slice(0, 4).map((entry) => entry.path),
  )
  // The fallback: list each tree on its own, which is never cut (the root has 6 entries).
  const found = []
  async function walk(sha, prefix) {
    const listing = (await limited.request('GET', `/repos/octo/hello/git/trees/${sha}`)).json
    assert.equal(listing.truncated, false)
    for (const entry of listing.tree) {
      found.push({ ...entry, path: prefix + entry.path })
      if (entry.type === 'tree') await walk(entry.sha, `${prefix}${entry.path}/`)
    }
  }
  await walk('main', '')
  assert.deepEqual(
    found.map(({ url, ...entry }) => entry),
    full,
  )
})

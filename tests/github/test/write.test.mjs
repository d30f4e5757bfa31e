// The Git Data write endpoints do the real git operations: what they make shows up in the
// backing repository's history, with the right parent, tree, message and contents.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { git, makeRepos, startServer } from './helpers.mjs'

const TOKEN = 'ghp_write'
const repos = makeRepos()
const server = await startServer(repos.root, ['--token', TOKEN])
const [first, second, third] = repos.commits

async function call(method, target, body, status) {
  const answer = await server.request(method, `/repos/octo/hello${target}`, { token: TOKEN, body })
  assert.equal(answer.status, status, `${method} ${target}: ${answer.text}`)
  return answer.json
}

const show = (spec) => git(repos.bare, ['show', spec])

test('a blob, a tree, a commit and a reference update make a commit of git history', async () => {
  const text = await call('POST', '/git/blobs', { content: 'héllo\n' }, 201)
  assert.equal(text.sha, git(repos.bare, ['hash-object', '--stdin'], 'héllo\n'))
  const bytes = Buffer.from([0, 159, 146, 150, 255])
  const binary = await call('POST', '/git/blobs', { content: bytes.toString('base64'), encoding: 'base64' }, 201)
  assert.equal(binary.sha, git(repos.bare, ['hash-object', '--stdin'], bytes))
  const base = git(repos.bare, ['rev-parse', 'main^{tree}'])
  const tree = await call(
    'POST',
    '/git/trees',
    {
      base_tree: base,
      tree: [
        { path: 'new/deeper/hello.txt', mode: '100644', type: 'blob', sha: text.sha },
        { path: 'new/tool', mode: '100755', type: 'blob', sha: binary.sha },
        { path: 'src/inline.txt', mode: '100644', type: 'blob', content: 'written inline\n' },
        { path: 'run.sh', mode: '100644', type: 'blob', sha: null },
        { path: 'docs', mode: '040000', type: 'tree', sha: null },
        { path: 'README.md', mode: '120000', type: 'blob', content: 'src/main.rs' },
      ],
    },
    201,
  )
  assert.deepEqual(git(repos.bare, ['ls-tree', '-r', '--format=%(objectmode) %(path)', tree.sha]).split('\n'), [
    '120000 README.md',
    '120000 link',
    '100644 new/deeper/hello.txt',
    '100755 new/tool',
    '100644 src/inline.txt',
    '100644 src/lib/deep/new name.txt',
    '100644 src/main.rs',
    '160000 vendor/sub',
  ])
  assert.deepEqual(
    tree.tree.map((entry) => entry.path),
    ['README.md', 'link', 'new', 'src', 'vendor'],
  )
  assert.equal(tree.truncated, false)
  assert.equal(show(`${tree.sha}:src/inline.txt`), 'written inline')
  assert.equal(show(`${tree.sha}:new/deeper/hello.txt`), 'héllo')

  const commit = await call(
    'POST',
    '/git/commits',
    {
      message: 'Add new things\n\nAnd remove some.',
      tree: tree.sha,
      parents: [third],
      author: { name: 'Grace Hopper', email: 'grace@example.com', date: '2024-02-03T04:05:06+02:00' },
    },
    201,
  )
  assert.equal(commit.message, 'Add new things\n\nAnd remove some.')
  assert.deepEqual(commit.author, { name: 'Grace Hopper', email: 'grace@example.com', date: '2024-02-03T02:05:06Z' })
  assert.deepEqual(commit.committer, commit.author, 'the author commits when no committer is given')
  assert.equal(git(repos.bare, ['log', '-1', '--format=%ai', commit.sha]), '2024-02-03 04:05:06 +0200')

  const updated = await call('PATCH', '/git/refs/heads/main', { sha: commit.sha }, 200)
  assert.deepEqual([updated.ref, updated.object.sha], ['refs/heads/main', commit.sha])
  const log = git(repos.bare, ['log', '-2', '--format=%H %P %T %an%n%B%n--', 'main']).split('\n')
  const thirdTree = git(repos.bare, ['rev-parse', `${third}^{tree}`])
  assert.deepEqual(log, [
    `${commit.sha} ${third} ${tree.sha} Grace Hopper`,
    'Add new things',
    '',
    'And remove some.',
    '--',
    `${third} ${second} ${thirdTree} Ada Lovelace`,
    'third',
    '',
    '--',
  ])
  // And the read endpoints see it.
  const read = (await server.request('GET', '/repos/octo/hello/commits/main')).json
  assert.equal(read.sha, commit.sha)
  assert.equal(read.commit.tree.sha, tree.sha)
})

test('a commit without author is the authenticated user now; several parents make a merge', async () => {
  const tree = git(repos.bare, ['rev-parse', `${first}^{tree}`])
  const before = Math.floor(Date.now() / 1000)
  const merge = await call('POST', '/git/commits', { message: 'merge', tree, parents: [first, second] }, 201)
  assert.deepEqual(
    merge.parents.map((parent) => parent.sha),
    [first, second],
  )
  assert.equal(merge.author.name, 'mirage-user')
  assert.match(merge.author.email, /^\d+\+mirage-user@users\.noreply\.github\.com$/)
  assert.ok(Date.parse(merge.author.date) / 1000 >= before - 1)
  assert.equal(git(repos.bare, ['rev-list', '--parents', '-1', merge.sha]), `${merge.sha} ${first} ${second}`)
})

test('a reference moves only forward unless forced', async () => {
  await call('POST', '/git/refs', { ref: 'refs/heads/topic', sha: second }, 201)
  assert.equal(git(repos.bare, ['rev-parse', 'refs/heads/topic']), second)
  const exists = await call('POST', '/git/refs', { ref: 'refs/heads/topic', sha: first }, 422)
  assert.equal(exists.message, 'Reference already exists')

  const backwards = await call('PATCH', '/git/refs/heads/topic', { sha: first }, 422)
  assert.equal(backwards.message, 'Update is not a fast forward')
  assert.equal(git(repos.bare, ['rev-parse', 'refs/heads/topic']), second, 'unchanged')
  // A commit on another line of history is no fast forward either.
  const tree = git(repos.bare, ['rev-parse', `${first}^{tree}`])
  const sideways = await call('POST', '/git/commits', { message: 'side', tree, parents: [first] }, 201)
  assert.equal(
    (await call('PATCH', '/git/refs/heads/topic', { sha: sideways.sha }, 422)).message,
    'Update is not a fast forward',
  )

  await call('PATCH', '/git/refs/heads/topic', { sha: third }, 200)
  assert.equal(git(repos.bare, ['rev-parse', 'refs/heads/topic']), third, 'forward')
  await call('PATCH', '/git/refs/heads/topic', { sha: first, force: true }, 200)
  assert.equal(git(repos.bare, ['rev-parse', 'refs/heads/topic']), first, 'forced back')

  await call('POST', '/git/refs', { ref: 'refs/tags/v2', sha: third }, 201)
  assert.equal(git(repos.bare, ['rev-parse', 'refs/tags/v2']), third)
  await call('DELETE', '/git/refs/heads/topic', undefined, 204)
  assert.equal(git(repos.bare, ['for-each-ref', 'refs/heads/topic']), '')
})

test('the write endpoints refuse what GitHub refuses', async () => {
  const tree = git(repos.bare, ['rev-parse', `${first}^{tree}`])
  const blob = git(repos.bare, ['rev-parse', `${first}:README.md`])
  const cases = [
    ['/git/trees', { base_tree: first, tree: [] }, 'base_tree is not a valid tree oid'],
    ['/git/trees', { base_tree: 'f'.repeat(40), tree: [] }, 'base_tree is not a valid tree oid'],
    [
      '/git/trees',
      { tree: [{ path: 'a', mode: '100644', type: 'blob', sha: tree }] },
      `tree.sha ${tree} is not a valid blob`,
    ],
    [
      '/git/trees',
      { tree: [{ path: 'a', mode: '040000', type: 'tree', sha: blob }] },
      `tree.sha ${blob} is not a valid tree`,
    ],
    [
      '/git/trees',
      { tree: [{ path: 'a', mode: '100644', type: 'blob', sha: blob, content: 'x' }] },
      'Invalid tree info',
    ],
    ['/git/trees', { tree: [{ path: 'a', mode: '100600', type: 'blob', sha: blob }] }, 'Invalid tree info'],
    ['/git/commits', { message: 'm', tree: blob }, 'Tree SHA does not exist'],
    ['/git/commits', { message: 'm', tree, parents: [tree] }, 'Parent SHA does not exist or is not a commit object'],
    ['/git/commits', { message: 'm', tree, parents: ['nope'] }, 'Parent SHA does not exist or is not a commit object'],
    ['/git/refs', { ref: 'refs/heads/new', sha: 'f'.repeat(40) }, 'Object does not exist'],
  ]
  const refsBefore = git(repos.bare, ['for-each-ref'])
  for (const [target, body, message] of cases) {
    assert.equal((await call('POST', target, body, 422)).message, message, JSON.stringify(body))
  }
  assert.equal(git(repos.bare, ['for-each-ref']), refsBefore, 'no reference changed')
  // A tree of only deletions is the empty tree; a submodule entry needs no object here.
  const removals = ['README.md', 'docs', 'link', 'run.sh', 'src'].map((file) => ({
    path: file,
    mode: '100644',
    sha: null,
  }))
  const emptied = await call('POST', '/git/trees', { base_tree: tree, tree: removals }, 201)
  assert.equal(emptied.sha, git(repos.bare, ['hash-object', '-t', 'tree', '--stdin'], ''))
  const gitlink = await call(
    'POST',
    '/git/trees',
    { tree: [{ path: 'm/sub', mode: '160000', type: 'commit', sha: 'a'.repeat(40) }] },
    201,
  )
  assert.equal(git(repos.bare, ['ls-tree', '-r', gitlink.sha]), `160000 commit ${'a'.repeat(40)}\tm/sub`)
})

// The server's answers beside real GitHub answers recorded in @octokit/fixtures (their raw
// recordings, with real values and headers), and beside the examples of GitHub's OpenAPI
// description for the endpoints nothing recorded: the same members, of the same types, and the
// same headers of interest. README.md lists what is compared and what differs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

import { makeRepos, startServer } from './helpers.mjs'
import { example } from './openapi.mjs'

const require = createRequire(import.meta.url)
const SCENARIOS = path.join(path.dirname(require.resolve('@octokit/fixtures/package.json')), 'scenarios/api.github.com')

/** The recorded exchange of a scenario with `method` whose path ends with `suffix`. */
function recording(scenario, method, suffix) {
  const exchanges = JSON.parse(fs.readFileSync(path.join(SCENARIOS, scenario, 'raw-fixture.json'), 'utf8'))
  const found = exchanges.find((each) => each.method === method.toLowerCase() && each.path.endsWith(suffix))
  if (!found) throw new Error(`no recording of ${method} ...${suffix} in ${scenario}`)
  const headers = {}
  for (let i = 0; i < found.rawHeaders.length; i += 2)
    headers[found.rawHeaders[i].toLowerCase()] = found.rawHeaders[i + 1]
  return { status: found.status, body: found.response, headers }
}

const kind = (value) => (value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value)

/**
 * Asserts that `ours` has the members of `theirs`, of the same types, and no others, except
 * for the members named in `extra` (only ours) and `absent` (only theirs).
 */
function sameShape(ours, theirs, what, { extra = [], absent = [] } = {}) {
  const oursKeys = Object.keys(ours).filter((key) => !extra.includes(key))
  const theirKeys = Object.keys(theirs).filter((key) => !absent.includes(key))
  assert.deepEqual(oursKeys.sort(), theirKeys.sort(), `members of ${what}`)
  for (const key of oursKeys) assert.equal(kind(ours[key]), kind(theirs[key]), `type of ${what}.${key}`)
  for (const key of extra) assert.ok(key in ours, `${what}.${key} is there`)
}

// What a header's value looks like: digits and hex digits made alike, so that values compare
// by form (a quoted sha-256, a 10-digit epoch in seconds, ...), others exactly.
const form = (value) => value?.replace(/[0-9a-f]/g, '#')

// The rate-limit headers as GitHub sends them: integers, the reset in epoch seconds, "core".
function sameRateLimitHeaders(ours, theirs, what) {
  for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used', 'x-ratelimit-reset']) {
    assert.match(theirs[name], /^\d+$/, `recorded ${name}`)
    assert.match(ours[name] ?? '', /^\d+$/, `${name} of ${what}`)
  }
  assert.equal(
    ours['x-ratelimit-reset'].length,
    theirs['x-ratelimit-reset'].length,
    `x-ratelimit-reset of ${what} in seconds`,
  )
  assert.equal(ours['x-ratelimit-resource'], theirs['x-ratelimit-resource'], `x-ratelimit-resource of ${what}`)
}

// The headers of interest of a successful JSON answer.
function sameSuccessHeaders(ours, theirs, what) {
  sameRateLimitHeaders(ours, theirs, what)
  for (const name of [
    'etag',
    'cache-control',
    'content-type',
    'x-github-media-type',
    'access-control-expose-headers',
  ]) {
    assert.equal(form(ours[name]), form(theirs[name]), `${name} of ${what}`)
  }
}

const TOKEN = 'ghp_recordings'
const repos = makeRepos()
const server = await startServer(repos.root, ['--token', TOKEN])
const [, second, third] = repos.commits
const auth = { token: TOKEN }

test('GET /repos/{owner}/{repo} beside the get-repository recording', async () => {
  const theirs = recording('get-repository', 'GET', '/repos/octokit-fixture-org/hello-world')
  const ours = await server.request('GET', '/repos/octo/hello', auth)
  assert.equal(ours.status, theirs.status)
  // The recorded repository belongs to an organization (hence `organization`); has_discussions
  // came to GitHub after the recording, and its current description requires it.
  sameShape(ours.json, theirs.body, 'the repository', { extra: ['has_discussions'], absent: ['organization'] })
  sameShape(ours.json.owner, theirs.body.owner, 'the owner', { extra: ['user_view_type'] })
  sameShape(ours.json.permissions, theirs.body.permissions, 'the permissions')
  sameSuccessHeaders(ours.headers, theirs.headers, 'the repository')
  // Node ids in GitHub's legacy form: the base64 of "010:Repository<id>".
  const decoded = (answer) => Buffer.from(answer.node_id, 'base64').toString()
  assert.equal(decoded(theirs.body), `010:Repository${theirs.body.id}`)
  assert.equal(decoded(ours.json), `010:Repository${ours.json.id}`)
})

test('references beside the git-refs recording: list, create, update, delete', async () => {
  const scenario = 'git-refs'
  const list = recording(scenario, 'GET', '/git/refs/')
  const ours = await server.request('GET', '/repos/octo/hello/git/matching-refs/', auth)
  assert.equal(ours.status, list.status)
  sameShape(ours.json[0], list.body[0], 'a reference')
  sameShape(ours.json[0].object, list.body[0].object, "a reference's object")
  sameSuccessHeaders(ours.headers, list.headers, 'the list of references')

  const created = recording(scenario, 'POST', '/git/refs')
  const create = await server.request('POST', '/repos/octo/hello/git/refs', {
    ...auth,
    body: { ref: 'refs/heads/test', sha: third },
  })
  assert.equal(create.status, created.status)
  sameShape(create.json, created.body, 'a created reference')
  assert.equal(create.headers.location, create.json.url)
  assert.ok(created.headers.location)
  sameSuccessHeaders(create.headers, created.headers, 'a created reference')

  const updated = recording(scenario, 'PATCH', '/git/refs/heads/test')
  const update = await server.request('PATCH', '/repos/octo/hello/git/refs/heads/test', {
    ...auth,
    body: { sha: third, force: true },
  })
  assert.equal(update.status, updated.status)
  sameShape(update.json, updated.body, 'an updated reference')
  sameSuccessHeaders(update.headers, updated.headers, 'an updated reference')

  const deleted = recording(scenario, 'DELETE', '/git/refs/heads/test')
  const remove = await server.request('DELETE', '/repos/octo/hello/git/refs/heads/test', auth)
  assert.equal(remove.status, deleted.status)
  assert.equal(remove.text, '')
  sameRateLimitHeaders(remove.headers, deleted.headers, 'a deletion')
  assert.equal(remove.headers['content-type'], deleted.headers['content-type'])
})

test('a raw blob beside the raw file of the get-content recording: media type and ETag', async () => {
  const theirs = recording('get-content', 'GET', '/contents/README.md')
  const tree = (await server.request('GET', '/repos/octo/hello/git/trees/main')).json
  const readme = tree.tree.find((entry) => entry.path === 'README.md')
  const ours = await server.request('GET', `/repos/octo/hello/git/blobs/${readme.sha}`, {
    ...auth,
    headers: { accept: 'application/vnd.github.v3.raw' },
  })
  assert.equal(ours.status, theirs.status)
  assert.equal(ours.text, fs.readFileSync(path.join(repos.work, 'README.md'), 'utf8'))
  // GitHub tags raw content with the blob's sha.
  assert.equal(ours.headers.etag, `"${readme.sha}"`)
  assert.equal(form(theirs.headers.etag), form(`"${readme.sha}"`))
  sameSuccessHeaders(ours.headers, theirs.headers, 'a raw blob')
})

test('a created commit beside the commit of the create-file recording', async () => {
  const theirs = recording('create-file', 'PUT', '/contents/test.txt').body.commit
  const tree = (await server.request('GET', '/repos/octo/hello/git/trees/main')).json.sha
  const ours = await server.request('POST', '/repos/octo/hello/git/commits', {
    ...auth,
    body: { message: 'm', tree, parents: [third] },
  })
  sameShape(ours.json, theirs, 'a commit')
  sameShape(ours.json.author, theirs.author, "a commit's author")
  // verified_at came to GitHub after the recording.
  sameShape(ours.json.verification, theirs.verification, "a commit's verification", { extra: ['verified_at'] })
  const read = await server.request('GET', `/repos/octo/hello/git/commits/${ours.json.sha}`, auth)
  assert.deepEqual(read.json, ours.json)
})

test('a 404 beside the 404 of the branch-protection recording', async () => {
  const theirs = recording('branch-protection', 'GET', '/branches/main/protection')
  const ours = await server.request('GET', '/repos/octo/nothing', auth)
  assert.equal(ours.status, theirs.status)
  // GitHub's error bodies have carried `status` since the recording was made.
  sameShape(ours.json, theirs.body, 'an error', { extra: ['status'] })
  sameRateLimitHeaders(ours.headers, theirs.headers, 'an error')
  for (const name of ['etag', 'cache-control'])
    assert.equal(ours.headers[name], theirs.headers[name], `${name} of an error`)
  assert.equal(ours.headers['content-type'], theirs.headers['content-type'])
})

test('trees, blobs, commits and the rate limit beside the examples of the OpenAPI description', async () => {
  const tree = await server.request('GET', '/repos/octo/hello/git/trees/main?recursive=1')
  const treeExample = example('GET', '/repos/{owner}/{repo}/git/trees/{tree_sha}', 200)
  sameShape(tree.json, treeExample, 'a tree')
  const blobEntry = tree.json.tree.find((entry) => entry.type === 'blob')
  const exampleBlobEntry = treeExample.tree.find((entry) => entry.type === 'blob')
  sameShape(blobEntry, exampleBlobEntry, 'a blob entry')
  const subtree = tree.json.tree.find((entry) => entry.type === 'tree')
  const exampleSubtree = treeExample.tree.find((entry) => entry.type === 'tree')
  sameShape(subtree, exampleSubtree, 'a tree entry')

  const blob = await server.request('GET', `/repos/octo/hello/git/blobs/${blobEntry.sha}`)
  sameShape(blob.json, example('GET', '/repos/{owner}/{repo}/git/blobs/{file_sha}', 200), 'a blob')

  const commit = await server.request('GET', `/repos/octo/hello/commits/${second}`)
  const commitExample = example('GET', '/repos/{owner}/{repo}/commits/{ref}', 200)
  // The example's author and committer are GitHub accounts; ours are nobody (null).
  sameShape(commit.json, { ...commitExample, author: null, committer: null }, 'a commit')
  sameShape(commit.json.commit, commitExample.commit, "a commit's git data")
  sameShape(commit.json.stats, commitExample.stats, "a commit's stats")
  // The example shows a diff in `patch`, which is optional and left out here; it lacks `sha`
  // and `contents_url`, which the description requires.
  const changed = { extra: ['sha', 'contents_url'], absent: ['patch'] }
  sameShape(commit.json.files[0], commitExample.files[0], 'a changed file', changed)

  const gitCommit = await server.request('GET', `/repos/octo/hello/git/commits/${third}`)
  sameShape(gitCommit.json, example('GET', '/repos/{owner}/{repo}/git/commits/{commit_sha}', 200), 'a git commit')

  const ref = await server.request('GET', '/repos/octo/hello/git/ref/heads/main')
  sameShape(ref.json, example('GET', '/repos/{owner}/{repo}/git/ref/{ref}', 200), 'a reference')

  const blobCreated = await server.request('POST', '/repos/octo/hello/git/blobs', { ...auth, body: { content: 'x' } })
  sameShape(blobCreated.json, example('POST', '/repos/{owner}/{repo}/git/blobs', 201), 'a created blob')

  const limits = await server.request('GET', '/rate_limit')
  const limitsExample = example('GET', '/rate_limit', 200)
  sameShape(limits.json, limitsExample, 'the rate limits')
  sameShape(limits.json.rate, limitsExample.rate, 'the core rate limit')
  sameShape(limits.json.resources.core, limitsExample.resources.core, 'a resource rate limit')
})

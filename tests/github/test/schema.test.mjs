// Every endpoint's answers, successes and errors, against GitHub's OpenAPI description: the
// documented schema, with no member it does not document.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { makeRepos, startServer } from './helpers.mjs'
import { validate, validateComponent } from './openapi.mjs'

const TOKEN = 'ghp_schema'
const repos = makeRepos()
const server = await startServer(repos.root, ['--token', TOKEN])
const [first, second, third] = repos.commits

// Sends a request, checks its status and checks the body against the operation's documented
// response; returns the body.
async function conforms(method, template, target, status, options = {}) {
  const answer = await server.request(method, target, options)
  assert.equal(answer.status, status, `${method} ${target}: ${answer.text}`)
  assert.deepEqual(validate(method, template, status, answer.json), [], `${method} ${target} against ${template}`)
  return answer.json
}

test('GET /repos/{owner}/{repo}, anonymous and authenticated, also below /api/v3', async () => {
  const anonymous = await conforms('GET', '/repos/{owner}/{repo}', '/repos/octo/hello', 200)
  assert.equal(anonymous.full_name, 'octo/hello')
  assert.equal(anonymous.default_branch, 'main')
  assert.equal(anonymous.permissions, undefined)
  const authenticated = await conforms('GET', '/repos/{owner}/{repo}', '/repos/octo/hello', 200, { token: TOKEN })
  assert.equal(authenticated.permissions.push, true)
  const enterprise = await conforms('GET', '/repos/{owner}/{repo}', '/api/v3/repos/octo/hello', 200)
  assert.equal(enterprise.url, `${server.base}/api/v3/repos/octo/hello`)
  assert.equal(enterprise.html_url, `${server.base}/octo/hello`)
  const secret = await conforms('GET', '/repos/{owner}/{repo}', '/repos/octo/secret', 200, { token: TOKEN })
  assert.equal(secret.private, true)
  assert.equal(secret.visibility, 'private')
  await conforms('GET', '/repos/{owner}/{repo}', '/repos/octo/empty', 200)
})

test('GET /repos/{owner}/{repo}/commits/{ref} by branch, tag, sha and short sha', async () => {
  const template = '/repos/{owner}/{repo}/commits/{ref}'
  for (const [ref, sha] of [
    ['main', third],
    ['feature/x', second],
    ['v1', first],
    ['light', second],
    [first, first],
    [third.slice(0, 7), third],
  ]) {
    const commit = await conforms('GET', template, `/repos/octo/hello/commits/${ref}`, 200)
    assert.equal(commit.sha, sha, ref)
  }
})

test('GET /repos/{owner}/{repo}/git/commits/{commit_sha}', async () => {
  const commit = await conforms(
    'GET',
    '/repos/{owner}/{repo}/git/commits/{commit_sha}',
    `/repos/octo/hello/git/commits/${second}`,
    200,
  )
  assert.equal(commit.message, 'second\n\nWith a body.')
  assert.deepEqual(
    commit.parents.map((parent) => parent.sha),
    [first],
  )
})

test('GET /repos/{owner}/{repo}/git/ref/{ref} and git/matching-refs/{ref}', async () => {
  const template = '/repos/{owner}/{repo}/git/ref/{ref}'
  const branch = await conforms('GET', template, '/repos/octo/hello/git/ref/heads/main', 200)
  assert.deepEqual([branch.ref, branch.object.type, branch.object.sha], ['refs/heads/main', 'commit', third])
  const tag = await conforms('GET', template, '/repos/octo/hello/git/ref/tags/v1', 200)
  assert.equal(tag.object.type, 'tag')
  const matching = '/repos/{owner}/{repo}/git/matching-refs/{ref}'
  const heads = await conforms('GET', matching, '/repos/octo/hello/git/matching-refs/heads', 200)
  assert.deepEqual(
    heads.map((ref) => ref.ref),
    ['refs/heads/feature/x', 'refs/heads/main'],
  )
  const all = await conforms('GET', matching, '/repos/octo/hello/git/matching-refs/', 200)
  assert.equal(all.length, 4)
  assert.deepEqual(await conforms('GET', matching, '/repos/octo/hello/git/matching-refs/heads/nothing', 200), [])
})

test('GET /repos/{owner}/{repo}/git/trees/{tree_sha}, flat and recursive', async () => {
  const template = '/repos/{owner}/{repo}/git/trees/{tree_sha}'
  const flat = await conforms('GET', template, '/repos/octo/hello/git/trees/main', 200)
  assert.deepEqual(
    flat.tree.map((entry) => entry.path),
    ['README.md', 'docs', 'link', 'run.sh', 'src', 'vendor'],
  )
  const recursive = await conforms('GET', template, `/repos/octo/hello/git/trees/${flat.sha}?recursive=1`, 200)
  assert.ok(recursive.tree.some((entry) => entry.path === 'vendor/sub' && entry.type === 'commit'))
})

test('GET /repos/{owner}/{repo}/git/blobs/{file_sha}', async () => {
  const tree = (await server.request('GET', '/repos/octo/hello/git/trees/main')).json
  const readme = tree.tree.find((entry) => entry.path === 'README.md')
  const blob = await conforms(
    'GET',
    '/repos/{owner}/{repo}/git/blobs/{file_sha}',
    `/repos/octo/hello/git/blobs/${readme.sha}`,
    200,
  )
  assert.equal(Buffer.from(blob.content, 'base64').toString(), '# hello\n\nA repository for tests.\nMore.\n')
})

test('GET /rate_limit', async () => {
  const limits = await conforms('GET', '/rate_limit', '/rate_limit', 200)
  assert.equal(limits.rate.limit, 5000)
})

test('the Git Data write endpoints: blobs, trees, commits, references', async () => {
  const options = { token: TOKEN }
  const blob = await conforms('POST', '/repos/{owner}/{repo}/git/blobs', '/repos/octo/hello/git/blobs', 201, {
    ...options,
    body: { content: 'new file\n', encoding: 'utf-8' },
  })
  const base = (await server.request('GET', '/repos/octo/hello/git/trees/main')).json.sha
  const tree = await conforms('POST', '/repos/{owner}/{repo}/git/trees', '/repos/octo/hello/git/trees', 201, {
    ...options,
    body: { base_tree: base, tree: [{ path: 'new/file.txt', mode: '100644', type: 'blob', sha: blob.sha }] },
  })
  const commit = await conforms('POST', '/repos/{owner}/{repo}/git/commits', '/repos/octo/hello/git/commits', 201, {
    ...options,
    body: { message: 'add a file', tree: tree.sha, parents: [third] },
  })
  await conforms('POST', '/repos/{owner}/{repo}/git/refs', '/repos/octo/hello/git/refs', 201, {
    ...options,
    body: { ref: 'refs/heads/schema', sha: third },
  })
  await conforms('PATCH', '/repos/{owner}/{repo}/git/refs/{ref}', '/repos/octo/hello/git/refs/heads/schema', 200, {
    ...options,
    body: { sha: commit.sha },
  })
  const deleted = await server.request('DELETE', '/repos/octo/hello/git/refs/heads/schema', options)
  assert.equal(deleted.status, 204)
  assert.equal(deleted.text, '')
})

test('errors: documented ones against their schema, the others against basic-error', async () => {
  const repo = '/repos/octo/hello'
  // [method, template, target, status, request options]
  const documented = [
    ['GET', '/repos/{owner}/{repo}', '/repos/octo/nothing', 404],
    ['GET', '/repos/{owner}/{repo}', '/repos/octo/secret', 404],
    ['GET', '/repos/{owner}/{repo}/commits/{ref}', `${repo}/commits/nothing`, 422],
    ['GET', '/repos/{owner}/{repo}/commits/{ref}', '/repos/octo/empty/commits/main', 409],
    ['GET', '/repos/{owner}/{repo}/git/ref/{ref}', `${repo}/git/ref/heads/nothing`, 404],
    ['GET', '/repos/{owner}/{repo}/git/ref/{ref}', '/repos/octo/empty/git/ref/heads/main', 409],
    ['GET', '/repos/{owner}/{repo}/git/trees/{tree_sha}', `${repo}/git/trees/${'0'.repeat(40)}`, 404],
    ['GET', '/repos/{owner}/{repo}/git/blobs/{file_sha}', `${repo}/git/blobs/${'0'.repeat(40)}`, 404],
    ['GET', '/repos/{owner}/{repo}/git/blobs/{file_sha}', `${repo}/git/blobs/nothex`, 422],
    ['GET', '/repos/{owner}/{repo}/git/commits/{commit_sha}', `${repo}/git/commits/${'0'.repeat(40)}`, 404],
    ['POST', '/repos/{owner}/{repo}/git/blobs', '/repos/octo/empty/git/blobs', 409, { body: { content: 'x' } }],
    [
      'POST',
      '/repos/{owner}/{repo}/git/trees',
      `${repo}/git/trees`,
      422,
      { body: { tree: [{ path: 'a', mode: '100644', type: 'blob', sha: third }] } },
    ],
    ['POST', '/repos/{owner}/{repo}/git/commits', `${repo}/git/commits`, 422, { body: { message: 'm', tree: third } }],
    [
      'POST',
      '/repos/{owner}/{repo}/git/refs',
      `${repo}/git/refs`,
      422,
      { body: { ref: 'refs/heads/main', sha: third } },
    ],
    ['PATCH', '/repos/{owner}/{repo}/git/refs/{ref}', `${repo}/git/refs/heads/main`, 422, { body: { sha: first } }],
  ]
  for (const [method, template, target, status, options = {}] of documented) {
    const answer = await server.request(method, target, { token: method === 'GET' ? undefined : TOKEN, ...options })
    assert.equal(answer.status, status, `${method} ${target}: ${answer.text}`)
    // GitHub's error bodies carry `status`, which the description's validation-error lacks.
    assert.deepEqual(validate(method, template, status, answer.json, { closed: false }), [], `${method} ${target}`)
    assert.deepEqual(Object.keys(answer.json).sort(), ['documentation_url', 'message', 'status'])
    assert.equal(answer.json.status, String(status))
  }
  const undocumented = [
    ['GET', '/nothing', 404, {}],
    ['GET', `${repo}`, 401, { token: 'wrong' }],
    ['POST', `${repo}/git/blobs`, 401, { body: { content: 'x' } }],
    ['POST', `${repo}/git/blobs`, 400, { token: TOKEN, body: '{not json' }],
  ]
  for (const [method, target, status, options] of undocumented) {
    const answer = await server.request(method, target, options)
    assert.equal(answer.status, status, `${method} ${target}: ${answer.text}`)
    assert.deepEqual(validateComponent('basic-error', answer.json), [], `${method} ${target}`)
  }
})

test('the checker itself rejects a missing member, a wrong type and an undocumented member', () => {
  const ref = {
    ref: 'refs/heads/main',
    node_id: 'x',
    url: 'http://127.0.0.1/x',
    object: { sha: 'a'.repeat(40), type: 'commit', url: 'http://127.0.0.1/y' },
  }
  const template = '/repos/{owner}/{repo}/git/ref/{ref}'
  assert.deepEqual(validate('GET', template, 200, ref), [])
  assert.notDeepEqual(validate('GET', template, 200, { ...ref, node_id: undefined }), [])
  assert.notDeepEqual(validate('GET', template, 200, { ...ref, url: 42 }), [])
  assert.notDeepEqual(validate('GET', template, 200, { ...ref, extra: true }), [])
  assert.notDeepEqual(validate('GET', template, 200, { ...ref, object: { ...ref.object, sha: 'short' } }), [])
})

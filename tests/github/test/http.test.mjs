// HTTP behaviour: conditional requests, tokens, private repositories, rate limits, the request
// log, and bad input that must never bring the server down.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'

import { makeRepos, startServer } from './helpers.mjs'

const TOKEN = 'ghp_http'
const repos = makeRepos()
const server = await startServer(repos.root, ['--token', TOKEN])
const remaining = (answer) => Number(answer.headers['x-ratelimit-remaining'])

test('conditional requests: 304 without a body for a matching ETag, and not counted', async () => {
  const tree = (await server.request('GET', '/repos/octo/hello/git/trees/main')).json
  const blobSha = tree.tree.find((entry) => entry.path === 'README.md').sha
  const targets = [
    ['/repos/octo/hello', {}],
    ['/repos/octo/hello/commits/main', {}],
    ['/repos/octo/hello/git/ref/heads/main', {}],
    ['/repos/octo/hello/git/trees/main?recursive=1', {}],
    [`/repos/octo/hello/git/blobs/${blobSha}`, {}],
    [`/repos/octo/hello/git/blobs/${blobSha}`, { accept: 'application/vnd.github.raw' }],
  ]
  for (const [target, headers] of targets) {
    const first = await server.request('GET', target, { headers })
    assert.equal(first.status, 200)
    const { etag } = first.headers
    assert.match(etag, /^"[0-9a-f]{40,64}"$/, 'a strong ETag')
    assert.match(first.headers['cache-control'], /max-age=60/)
    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const again = await server.request('GET', target, { headers: { ...headers, 'if-none-match': ifNoneMatch } })
      assert.equal(again.status, 304, `${target} with If-None-Match: ${ifNoneMatch}`)
      assert.equal(again.text, '')
      assert.equal(again.headers.etag, etag)
      assert.equal(remaining(again), remaining(first), 'a 304 is not counted against the limit')
    }
    const changed = await server.request('GET', target, { headers: { ...headers, 'if-none-match': '"other"' } })
    assert.equal(changed.status, 200)
    assert.equal(remaining(changed), remaining(first) - 1)
  }
  // Another ETag once the repository has changed, and answers differ by who asks.
  const before = await server.request('GET', '/repos/octo/hello')
  const authenticated = await server.request('GET', '/repos/octo/hello', { token: TOKEN })
  assert.notEqual(authenticated.headers.etag, before.headers.etag)
  assert.match(authenticated.headers['cache-control'], /^private/)
  assert.match(before.headers['cache-control'], /^public/)
})

test('tokens: Bearer, token and Basic; a wrong one is 401 Bad credentials', async () => {
  for (const authorization of [
    `Bearer ${TOKEN}`,
    `token ${TOKEN}`,
    `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`,
  ]) {
    const answer = await server.request('GET', '/repos/octo/secret', { headers: { authorization } })
    assert.equal(answer.status, 200, authorization)
  }
  for (const authorization of [
    'Bearer wrong',
    'token wrong',
    'Bearer',
    'Digest x',
    `Basic ${Buffer.from('x:wrong').toString('base64')}`,
  ]) {
    const answer = await server.request('GET', '/repos/octo/hello', { headers: { authorization } })
    assert.equal(answer.status, 401, authorization)
    assert.deepEqual(answer.json, {
      message: 'Bad credentials',
      documentation_url: 'https://docs.github.com/rest',
      status: '401',
    })
    assert.ok(answer.headers['x-ratelimit-remaining'])
  }
})

test('a private repository is 404 Not Found to anyone without a valid token', async () => {
  for (const target of ['', '/commits/main', '/git/trees/main', '/git/ref/heads/main']) {
    const anonymous = await server.request('GET', `/repos/octo/secret${target}`)
    assert.equal(anonymous.status, 404, target)
    assert.equal(anonymous.json.message, 'Not Found')
    assert.equal((await server.request('GET', `/repos/octo/secret${target}`, { token: TOKEN })).status, 200, target)
  }
  // The same answer as for a repository that does not exist, so nothing leaks.
  const nothing = await server.request('GET', '/repos/octo/nothing')
  const secret = await server.request('GET', '/repos/octo/secret')
  assert.deepEqual(secret.json, nothing.json)
  const write = await server.request('POST', '/repos/octo/secret/git/blobs', { body: { content: 'x' } })
  assert.equal(write.status, 404)
  const publicWrite = await server.request('POST', '/repos/octo/hello/git/blobs', { body: { content: 'x' } })
  assert.equal(publicWrite.status, 401)
  assert.equal(publicWrite.json.message, 'Requires authentication')
})

test('without --token every token is good, and none is anonymous', async () => {
  const open = await startServer(repos.root)
  assert.equal((await open.request('GET', '/repos/octo/secret', { token: 'anything' })).status, 200)
  assert.equal((await open.request('GET', '/repos/octo/secret')).status, 404)
})

test('rate limits: every answer tells, an exhausted window answers 403 or 429 until it ends', async () => {
  const limited = await startServer(repos.root)
  const first = await limited.request('GET', '/repos/octo/hello')
  assert.deepEqual(
    ['limit', 'remaining', 'used', 'resource'].map((key) => first.headers[`x-ratelimit-${key}`]),
    ['5000', '4999', '1', 'core'],
  )
  assert.ok(Math.abs(Number(first.headers['x-ratelimit-reset']) - (Date.now() / 1000 + 3600)) < 5)
  // GET /rate_limit is free.
  const status = (await limited.request('GET', '/rate_limit')).json
  assert.deepEqual(status.rate, {
    limit: 5000,
    used: 1,
    remaining: 4999,
    reset: Number(first.headers['x-ratelimit-reset']),
  })

  for (const code of [403, 429]) {
    await limited.setRateLimit({ limit: 60, remaining: 2, retry_after: 1, status: code })
    const one = await limited.request('GET', '/repos/octo/hello')
    const two = await limited.request('GET', '/repos/octo/hello/git/trees/main')
    assert.deepEqual([one.status, remaining(one), two.status, remaining(two)], [200, 1, 200, 0])
    assert.equal(two.headers['x-ratelimit-used'], '60')
    const over = await limited.request('GET', '/repos/octo/hello')
    assert.equal(over.status, code)
    assert.match(over.json.message, /^API rate limit exceeded for /)
    assert.equal(over.json.documentation_url, 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api')
    assert.equal(over.headers['retry-after'], '1')
    assert.equal(over.headers['x-ratelimit-remaining'], '0')
    // Writes and conditional requests are refused all the same.
    const conditional = await limited.request('GET', '/repos/octo/hello', {
      headers: { 'if-none-match': one.headers.etag },
    })
    assert.equal(conditional.status, code)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const after = await limited.request('GET', '/repos/octo/hello')
    assert.equal(after.status, 200)
    assert.deepEqual([after.headers['x-ratelimit-limit'], remaining(after)], ['60', 59])
  }
  const bad = await fetch(`${limited.base}/_mirage/rate-limit`, { method: 'POST', body: '{"status": 500}' })
  assert.equal(bad.status, 400)
})

test('the request log: one line per answered request, as the control endpoint lists them', async () => {
  const logged = await startServer(repos.root)
  await logged.request('GET', '/repos/octo/hello')
  const etag = (await logged.request('GET', '/repos/octo/hello/git/trees/main?recursive=1')).headers.etag
  await logged.request('GET', '/repos/octo/hello/git/trees/main?recursive=1', { headers: { 'if-none-match': etag } })
  await logged.request('GET', '/api/v3/repos/octo/nothing')
  await logged.request('POST', '/repos/octo/hello/git/blobs', { body: { content: 'x' } })
  await logged.setRateLimit({ remaining: 10 })
  const expected = [
    'GET /repos/octo/hello 200',
    'GET /repos/octo/hello/git/trees/main?recursive=1 200',
    'GET /repos/octo/hello/git/trees/main?recursive=1 304',
    'GET /api/v3/repos/octo/nothing 404',
    'POST /repos/octo/hello/git/blobs 401',
  ]
  // Written before the answer goes out: complete as soon as the client has its answers.
  assert.deepEqual(fs.readFileSync(logged.logFile, 'utf8').split('\n').filter(Boolean), expected)
  const listed = await logged.requests()
  assert.deepEqual(
    listed.map(({ method, path: target, status }) => `${method} ${target} ${status}`),
    expected,
  )
})

test('bad input gets an error answer, never a crash', async () => {
  const broken = path.join(repos.root, 'octo', 'broken.git')
  fs.mkdirSync(path.join(broken, 'objects'), { recursive: true })
  fs.writeFileSync(path.join(broken, 'HEAD'), 'ref: refs/heads/main\n')
  const cases = [
    ['GET', '/repos/octo/broken', 500],
    ['GET', '/repos/../../etc/passwd', 404],
    ['GET', '/repos/octo/..%2F..%2Fetc', 404],
    ['GET', '/repos/octo/hello/git/trees/%E0%A4%A', 404],
    ['GET', '/repos/octo/hello/commits/main~1', 422],
    ['GET', '/repos/octo/hello/commits/--output=x', 422],
    ['GET', '/repos/octo/hello/git/trees/main:src', 404],
    ['GET', `/repos/octo/hello/git/ref/heads/${'x'.repeat(5000)}`, 404],
    ['GET', '//example.com/repos/octo/hello', 404],
    ['PUT', '/repos/octo/hello', 404],
    ['POST', '/repos/octo/hello/git/blobs', 400, '[1, 2]'],
    ['POST', '/repos/octo/hello/git/blobs', 422, { content: 42 }],
    ['POST', '/repos/octo/hello/git/blobs', 422, { content: 'x', encoding: 'utf-16' }],
    ['POST', '/repos/octo/hello/git/trees', 422, { tree: 'no' }],
    ['POST', '/repos/octo/hello/git/trees', 422, { tree: [null] }],
    [
      'POST',
      '/repos/octo/hello/git/trees',
      422,
      { tree: [{ path: '../x', mode: '100644', type: 'blob', content: 'x' }] },
    ],
    ['POST', '/repos/octo/hello/git/trees', 422, { tree: [{ path: 'x', mode: '100644', type: 'tree', content: 'x' }] }],
    ['POST', '/repos/octo/hello/git/commits', 422, { message: 'm', tree: 'main' }],
    ['POST', '/repos/octo/hello/git/commits', 422, { tree: 'x' }],
    ['POST', '/repos/octo/hello/git/refs', 422, { ref: 'heads/x', sha: repos.commits[0] }],
    ['POST', '/repos/octo/hello/git/refs', 422, { ref: 'refs/heads/a..b', sha: repos.commits[0] }],
    ['PATCH', '/repos/octo/hello/git/refs/heads/nothing', 422, { sha: repos.commits[0] }],
    ['DELETE', '/repos/octo/hello/git/refs/heads/nothing', 422],
  ]
  for (const [method, target, status, body] of cases) {
    const answer = await server.request(method, target, { token: TOKEN, body })
    assert.equal(answer.status, status, `${method} ${target}: ${answer.text}`)
    assert.equal(typeof answer.json.message, 'string', `${method} ${target}`)
  }
  const head = await fetch(`${server.base}/repos/octo/hello`, { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(await head.text(), '')
  assert.ok(Number(head.headers.get('content-length')) > 0)
  assert.equal((await server.request('GET', '/repos/octo/hello')).status, 200, 'still serving')
})

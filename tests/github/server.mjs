#!/usr/bin/env node
// A stand-in for GitHub's REST API, read and written through the git command line over real
// repositories on disk, so that every sha, mode and size it answers is genuine. It serves the
// endpoints a repository mounted as a tree needs (repository, commits, references, trees,
// blobs), the Git Data write endpoints, conditional requests, tokens, private repositories and
// rate limits, with GitHub's response shapes. See README.md for the command line and the
// control endpoints tests use.
import http from 'node:http'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

const USAGE = 'usage: server.mjs --port PORT --repos DIR [--log FILE] [--token TOKEN] [--tree-limit N]'

// The API version GitHub answers with when a client names none.
const API_VERSION = '2022-11-28'
// Requests in a window, as for a user authenticated on github.com.
const DEFAULT_RATE_LIMIT = 5000
const RATE_WINDOW_MS = 3600_000
// The largest request body accepted: a 100 MB blob, base64-encoded, and some.
const MAX_BODY = 150 * 1024 * 1024
// GitHub lists at most this many files in a commit's answer (a page of them).
const COMMIT_FILES_LIMIT = 300
// The user every accepted token stands for.
const USER_LOGIN = 'mirage-user'
const JSON_TYPE = 'application/json; charset=utf-8'
// The headers GitHub lets browsers read.
const EXPOSED_HEADERS = [
  'ETag',
  'Link',
  'Location',
  'Retry-After',
  'X-GitHub-OTP',
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Used',
  'X-RateLimit-Resource',
  'X-RateLimit-Reset',
  'X-OAuth-Scopes',
  'X-Accepted-OAuth-Scopes',
  'X-Poll-Interval',
  'X-GitHub-Media-Type',
  'X-GitHub-SSO',
  'X-GitHub-Request-Id',
  'Deprecation',
  'Sunset',
].join(', ')
const SHA_RE = /^[0-9a-f]{40}$/

const DOCS = {
  root: 'https://docs.github.com/rest',
  repo: 'https://docs.github.com/rest/repos/repos#get-a-repository',
  commit: 'https://docs.github.com/rest/commits/commits#get-a-commit',
  gitCommit: 'https://docs.github.com/rest/git/commits#get-a-commit-object',
  ref: 'https://docs.github.com/rest/git/refs#get-a-reference',
  matchingRefs: 'https://docs.github.com/rest/git/refs#list-matching-references',
  tree: 'https://docs.github.com/rest/git/trees#get-a-tree',
  blob: 'https://docs.github.com/rest/git/blobs#get-a-blob',
  createBlob: 'https://docs.github.com/rest/git/blobs#create-a-blob',
  createTree: 'https://docs.github.com/rest/git/trees#create-a-tree',
  createCommit: 'https://docs.github.com/rest/git/commits#create-a-commit',
  createRef: 'https://docs.github.com/rest/git/refs#create-a-reference',
  updateRef: 'https://docs.github.com/rest/git/refs#update-a-reference',
  deleteRef: 'https://docs.github.com/rest/git/refs#delete-a-reference',
  rateLimit: 'https://docs.github.com/rest/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user',
  rateLimited: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
}

/** An answer other than success, in GitHub's error shape; `docs` overrides the route's page. */
class ApiError extends Error {
  constructor(status, message, { docs, headers } = {}) {
    super(message)
    this.status = status
    this.docs = docs
    this.headers = headers
  }
}

const notFound = () => new ApiError(404, 'Not Found')
const invalid = (message) => new ApiError(422, message)

/** A git command that failed. */
class GitError extends Error {
  constructor(args, code, stderr) {
    super(`git ${args.join(' ')} failed (${code}): ${stderr.trim()}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Options and state

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      repos: { type: 'string' },
      log: { type: 'string' },
      token: { type: 'string' },
      'tree-limit': { type: 'string' },
    },
  })
  const port = Number(values.port)
  const treeLimit = values['tree-limit'] === undefined ? Infinity : Number(values['tree-limit'])
  if (!values.repos || !Number.isInteger(port) || port < 0 || port > 65535 || !(treeLimit > 0)) {
    throw new Error('missing or invalid option')
  }
  return { port, repos: path.resolve(values.repos), log: values.log, token: values.token, treeLimit }
}

const options = (() => {
  try {
    return parseOptions(process.argv.slice(2))
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`)
    process.exit(2)
  }
})()

const logFd = options.log ? fs.openSync(options.log, 'a') : null
// Every API request answered, for GET /_mirage/requests.
const requestLog = []

// One shared window of the primary rate limit ("core"); the control endpoint reshapes it.
const rateLimit = newRateWindow(DEFAULT_RATE_LIMIT)

function newRateWindow(limit, remaining = limit, windowMs = RATE_WINDOW_MS, status = 403) {
  return { limit, remaining, resetAt: Date.now() + windowMs, status }
}

// Starts a new window once the current one has passed.
function refillRateLimit() {
  if (Date.now() >= rateLimit.resetAt) Object.assign(rateLimit, newRateWindow(rateLimit.limit))
}

// ---------------------------------------------------------------------------------------------
// git

const GIT_ENV = { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' }

/** Runs git on `gitDir`, feeding it `input`; resolves with its standard output (a Buffer). */
function git(gitDir, args, { input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { env: { ...GIT_ENV, ...env, GIT_DIR: gitDir } })
    const out = []
    const err = []
    child.stdout.on('data', (chunk) => out.push(chunk))
    child.stderr.on('data', (chunk) => err.push(chunk))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out))
      else reject(new GitError(args, code, Buffer.concat(err).toString()))
    })
    // git may exit before it has read everything (a bad object, say); its exit code tells.
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

const gitText = async (gitDir, args, opts) => (await git(gitDir, args, opts)).toString()

/** The type of each object (`blob`, `tree`, ...; `null` when missing), in one git call. */
async function objectTypes(gitDir, shas) {
  if (shas.length === 0) return []
  const out = await gitText(gitDir, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
    input: shas.join('\n') + '\n',
  })
  return out
    .trimEnd()
    .split('\n')
    .map((line) => (line.endsWith(' missing') || line.endsWith(' ambiguous') ? null : line.split(' ')[1]))
}

const objectType = async (gitDir, sha) => (await objectTypes(gitDir, [sha]))[0]

/** The content of blob `sha` (a Buffer), or null when there is no such blob. */
async function readBlob(gitDir, sha) {
  const out = await git(gitDir, ['cat-file', '--batch'], { input: `${sha}\n` })
  const header = out.subarray(0, out.indexOf(10)).toString().split(' ')
  if (header[1] !== 'blob') return null
  const start = out.indexOf(10) + 1
  return out.subarray(start, start + Number(header[2]))
}

/** The sha `rev` names, peeled to `kind` (`commit`, `tree`), or null. */
async function resolveRev(gitDir, rev, kind) {
  try {
    return (await gitText(gitDir, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{${kind}}`])).trim()
  } catch (error) {
    if (error instanceof GitError) return null
    throw error
  }
}

// A name usable as (the end of) a reference: nothing git would read as revision syntax.
const plainRefName = (name) =>
  name !== '' && !/[\x00-\x20~^:?*[\\\x7f]|\.\.|@\{|^[/.]|\/\/|\/$|\.lock$|\.$/.test(name) && !name.startsWith('-')

/** The commit a branch, tag, `refs/...` name or (abbreviated) sha names, or null. */
async function resolveCommitish(gitDir, name) {
  if (!plainRefName(name)) return null
  const candidates = [`refs/heads/${name}`, `refs/tags/${name}`]
  if (name.startsWith('refs/') || SHA_RE.test(name)) candidates.unshift(name)
  else if (/^[0-9a-f]{4,39}$/.test(name)) candidates.push(name)
  for (const candidate of candidates) {
    const sha = await resolveRev(gitDir, candidate, 'commit')
    if (sha) return sha
  }
  return null
}

/** All references, as {ref, sha, type}. */
async function listRefs(gitDir) {
  const out = await gitText(gitDir, ['for-each-ref', '--format=%(refname)%00%(objectname)%00%(objecttype)'])
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [ref, sha, type] = line.split('\0')
      return { ref, sha, type }
    })
}

const isEmptyRepo = async (gitDir) => (await gitText(gitDir, ['for-each-ref', '--count=1'])).trim() === ''

/** The entries of a tree (all of them below it when `recursive`), as `git ls-tree -l` gives them. */
async function lsTree(gitDir, treeSha, recursive) {
  const args = ['ls-tree', '-z', '-l', ...(recursive ? ['-r', '-t'] : []), treeSha]
  const out = await gitText(gitDir, args)
  return out
    .split('\0')
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf('\t')
      const [mode, type, sha, size] = line.slice(0, tab).split(/ +/)
      return { path: line.slice(tab + 1), mode, type, sha, size: size === '-' ? undefined : Number(size) }
    })
}

/** A parsed commit object: tree, parents, author and committer {name, email, date}, message. */
async function readCommit(gitDir, sha) {
  const raw = await gitText(gitDir, ['cat-file', 'commit', sha])
  const split = raw.indexOf('\n\n')
  const head = split < 0 ? raw : raw.slice(0, split)
  const commit = { sha, parents: [], message: split < 0 ? '' : raw.slice(split + 2).replace(/\n+$/, '') }
  let lastKey = null
  for (const line of head.split('\n')) {
    // A header's continuation lines (of a signature) start with a space.
    if (line.startsWith(' ') && lastKey === 'gpgsig') {
      commit.signature += '\n' + line.slice(1)
      continue
    }
    const space = line.indexOf(' ')
    const key = line.slice(0, space)
    const value = line.slice(space + 1)
    lastKey = key
    if (key === 'tree') commit.tree = value
    else if (key === 'parent') commit.parents.push(value)
    else if (key === 'author' || key === 'committer') commit[key] = parseIdent(value)
    else if (key === 'gpgsig') commit.signature = value
  }
  if (commit.signature) commit.payload = raw.replace(/^gpgsig .*\n(?: .*\n)*/m, '')
  return commit
}

// "Name <email> 1234567890 +0200" as {name, email, date}, the date in UTC as GitHub gives it.
function parseIdent(text) {
  const match = /^(.*?) ?<([^>]*)> (\d+) [+-]\d{4}$/.exec(text)
  if (!match) return { name: text, email: '', date: isoDate(0) }
  return { name: match[1], email: match[2], date: isoDate(Number(match[3]) * 1000) }
}

const isoDate = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

/** The files a commit changed against its first parent, with line counts, as GitHub lists them. */
async function commitFiles(gitDir, commit) {
  const base = commit.parents.length ? [commit.parents[0], commit.sha] : ['--root', commit.sha]
  const args = ['diff-tree', '-r', '-z', '-M', '--no-abbrev', '--no-commit-id', '--raw', '--numstat', ...base]
  const out = await gitText(gitDir, args)
  const fields = out.split('\0')
  const files = []
  let i = 0
  // First the raw lines (":modes shas status" then one or two paths), then the numstat lines.
  while (i < fields.length && fields[i].startsWith(':')) {
    const [, , oldSha, newSha, status] = fields[i].slice(1).split(' ')
    const renamed = status[0] === 'R' || status[0] === 'C'
    const file = { oldSha, newSha, status: status[0], path: fields[renamed ? i + 2 : i + 1] }
    if (renamed) file.previous = fields[i + 1]
    files.push(file)
    i += renamed ? 3 : 2
  }
  for (const file of files) {
    // "added\tdeleted\tpath", or "added\tdeleted\t" then both paths for a rename.
    const [added, deleted, pathField] = fields[i].split('\t')
    i += pathField === '' ? 3 : 1
    file.additions = added === '-' ? 0 : Number(added)
    file.deletions = deleted === '-' ? 0 : Number(deleted)
  }
  return files
}

// ---------------------------------------------------------------------------------------------
// Repositories on disk

// The entry of `dir` named `name` regardless of case, as GitHub matches names, or null.
function findEntry(dir, name) {
  let entries
  try {
    entries = fs.readdirSync(dir)
  } catch {
    return null
  }
  if (entries.includes(name)) return name
  return entries.find((entry) => entry.toLowerCase() === name.toLowerCase()) ?? null
}

const isFile = (file) => fs.statSync(file, { throwIfNoEntry: false })?.isFile() ?? false
const isDir = (file) => fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() ?? false

/**
 * The repository OWNER/NAME: {owner, name, dir, gitDir, private}, or null. It is
 * `REPOS/OWNER/NAME` or `REPOS/OWNER/NAME.git`, bare or not; a file named PRIVATE in that
 * directory makes it private.
 */
function findRepo(ownerName, repoName) {
  const badName = (name) => name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\')
  if (badName(ownerName) || badName(repoName) || repoName.toLowerCase().endsWith('.git')) return null
  const owner = findEntry(options.repos, ownerName)
  if (!owner) return null
  const ownerDir = path.join(options.repos, owner)
  for (const candidate of [repoName, `${repoName}.git`]) {
    const entry = findEntry(ownerDir, candidate)
    if (!entry) continue
    const dir = path.join(ownerDir, entry)
    const gitDir = isDir(path.join(dir, '.git')) ? path.join(dir, '.git') : dir
    if (!isFile(path.join(gitDir, 'HEAD')) || !isDir(path.join(gitDir, 'objects'))) continue
    return { owner, name: entry.replace(/\.git$/i, ''), dir, gitDir, private: isFile(path.join(dir, 'PRIVATE')) }
  }
  return null
}

// A stable positive id for a name, as GitHub gives every user and repository a number.
const stableId = (text) => createHash('sha1').update(text.toLowerCase()).digest().readUInt32BE(0) & 0x7fffffff || 1

// A node id in GitHub's legacy form: base64 of "0<length of Type>:<Type><id>" ("010:Repository1").
const nodeId = (type, id) => Buffer.from(`0${type.length}:${type}${id}`).toString('base64')

// ---------------------------------------------------------------------------------------------
// Answers

/** The context of one request: who asks, and the URLs answers link to. */
function requestContext(req, res, url, prefix) {
  const hostHeader = req.headers.host ?? ''
  const host = /^[A-Za-z0-9.:[\]-]+$/.test(hostHeader) ? hostHeader : `127.0.0.1:${server.address().port}`
  return {
    req,
    res,
    url,
    method: req.method === 'HEAD' ? 'GET' : req.method,
    host,
    web: `http://${host}`,
    api: `http://${host}${prefix}`,
    user: null,
    // The route's documentation page, for errors; and whether the answer is not counted.
    docs: DOCS.root,
    free: false,
    requestId: createHash('sha1').update(`${process.hrtime.bigint()}`).digest('hex').slice(0, 20).toUpperCase(),
  }
}

// The media type a blob was asked for: a raw one, or JSON.
function rawMediaType(accept = '') {
  for (const part of accept.split(',')) {
    const type = part.split(';')[0].trim().toLowerCase()
    if (/^application\/vnd\.github(\.v3)?\.raw(\+json)?$/.test(type)) return type.replace('+json', '')
  }
  return null
}

// Whether If-None-Match names `etag` (weak comparison, as for GET).
function etagMatches(ifNoneMatch, etag) {
  if (!ifNoneMatch) return false
  const bare = (tag) => tag.trim().replace(/^W\//, '')
  return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || bare(tag) === bare(etag))
}

/**
 * Sends an answer: JSON (an object) or raw bytes (a Buffer, with `contentType`), with GitHub's
 * headers, an ETag on successes (and 304 when If-None-Match names it), and the rate limit
 * counted and told. The request is logged before the answer goes out.
 */
function send(
  ctx,
  status,
  body,
  { contentType = JSON_TYPE, mediaType = 'github.v3; format=json', etag, headers = {} } = {},
) {
  const { req } = ctx
  const bytes = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
  const out = {
    'x-github-api-version-selected': API_VERSION,
    'x-github-media-type': mediaType,
    'x-github-request-id': ctx.requestId,
    'access-control-allow-origin': '*',
    'access-control-expose-headers': EXPOSED_HEADERS,
    vary: 'Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding',
    'x-content-type-options': 'nosniff',
    ...headers,
  }
  if (ctx.user) out['x-oauth-scopes'] = 'repo'
  let answer = status
  if (status >= 200 && status < 300 && body !== undefined) {
    out.etag = etag ?? `"${createHash('sha256').update(contentType).update(bytes).digest('hex')}"`
    out['cache-control'] = `${ctx.user ? 'private' : 'public'}, max-age=60, s-maxage=60`
    if (ctx.method === 'GET' && etagMatches(req.headers['if-none-match'], out.etag)) answer = 304
  }
  // GitHub does not count answers of 304 (nor to GET /rate_limit) against the limit.
  if (answer !== 304 && !ctx.free) rateLimit.remaining = Math.max(0, rateLimit.remaining - 1)
  Object.assign(out, rateLimitHeaders())
  const withBody = answer !== 304 && answer !== 204 && body !== undefined
  if (withBody) {
    out['content-type'] = contentType
    out['content-length'] = bytes.length
  }
  logRequest(req.method, req.url, answer)
  ctx.res.writeHead(answer, out)
  ctx.res.end(withBody && req.method !== 'HEAD' ? bytes : undefined)
}

function rateLimitHeaders() {
  return {
    'x-ratelimit-limit': String(rateLimit.limit),
    'x-ratelimit-remaining': String(rateLimit.remaining),
    'x-ratelimit-used': String(rateLimit.limit - rateLimit.remaining),
    'x-ratelimit-reset': String(Math.ceil(rateLimit.resetAt / 1000)),
    'x-ratelimit-resource': 'core',
  }
}

function sendError(ctx, error) {
  const body = { message: error.message, documentation_url: error.docs ?? ctx.docs, status: String(error.status) }
  send(ctx, error.status, body, { headers: error.headers })
}

function logRequest(method, target, status) {
  requestLog.push({ method, path: target, status })
  if (logFd !== null) fs.writeSync(logFd, `${method} ${target} ${status}\n`)
}

// ---------------------------------------------------------------------------------------------
// Object shapes

const repoApi = (ctx, repo) => `${ctx.api}/repos/${repo.owner}/${repo.name}`
const repoWeb = (ctx, repo) => `${ctx.web}/${repo.owner}/${repo.name}`

function userObject(ctx, login) {
  const id = stableId(login)
  const api = `${ctx.api}/users/${login}`
  return {
    login,
    id,
    node_id: nodeId('User', id),
    avatar_url: `${ctx.web}/avatars/u/${id}?v=4`,
    gravatar_id: '',
    url: api,
    html_url: `${ctx.web}/${login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: 'User',
    user_view_type: 'public',
    site_admin: false,
  }
}

function refObject(ctx, repo, { ref, sha, type }) {
  const api = repoApi(ctx, repo)
  const kind = type === 'tag' ? 'tags' : type === 'tree' ? 'trees' : type === 'blob' ? 'blobs' : 'commits'
  return {
    ref,
    node_id: nodeId('Ref', `${stableId(`${repo.owner}/${repo.name}`)}:${ref}`),
    url: `${api}/git/${ref}`,
    object: { sha, type, url: `${api}/git/${kind}/${sha}` },
  }
}

function treeEntryObject(ctx, repo, entry) {
  const out = { path: entry.path, mode: entry.mode, type: entry.type, sha: entry.sha }
  if (entry.type === 'blob') {
    out.size = entry.size
    out.url = `${repoApi(ctx, repo)}/git/blobs/${entry.sha}`
  } else if (entry.type === 'tree') {
    out.url = `${repoApi(ctx, repo)}/git/trees/${entry.sha}`
  }
  return out
}

function verificationObject(commit) {
  if (!commit.signature)
    return { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null }
  return {
    verified: false,
    reason: 'unknown_key',
    signature: commit.signature,
    payload: commit.payload,
    verified_at: null,
  }
}

// A commit as the Git Data API shows it (GET and POST .../git/commits).
function gitCommitObject(ctx, repo, commit) {
  const api = repoApi(ctx, repo)
  return {
    sha: commit.sha,
    node_id: nodeId('Commit', `${stableId(`${repo.owner}/${repo.name}`)}:${commit.sha}`),
    url: `${api}/git/commits/${commit.sha}`,
    html_url: `${repoWeb(ctx, repo)}/commit/${commit.sha}`,
    author: commit.author,
    committer: commit.committer,
    tree: { sha: commit.tree, url: `${api}/git/trees/${commit.tree}` },
    message: commit.message,
    parents: commit.parents.map((sha) => ({
      sha,
      url: `${api}/git/commits/${sha}`,
      html_url: `${repoWeb(ctx, repo)}/commit/${sha}`,
    })),
    verification: verificationObject(commit),
  }
}

const encodePath = (file) => file.split('/').map(encodeURIComponent).join('/')
const FILE_STATUS = { A: 'added', D: 'removed', M: 'modified', R: 'renamed', C: 'copied', T: 'changed' }

// A commit as GET .../commits/{ref} shows it, with its changed files.
function commitObject(ctx, repo, commit, files) {
  const api = repoApi(ctx, repo)
  const web = repoWeb(ctx, repo)
  const additions = files.reduce((sum, file) => sum + file.additions, 0)
  const deletions = files.reduce((sum, file) => sum + file.deletions, 0)
  return {
    sha: commit.sha,
    node_id: nodeId('Commit', `${stableId(`${repo.owner}/${repo.name}`)}:${commit.sha}`),
    commit: {
      author: commit.author,
      committer: commit.committer,
      message: commit.message,
      tree: { sha: commit.tree, url: `${api}/git/trees/${commit.tree}` },
      url: `${api}/git/commits/${commit.sha}`,
      comment_count: 0,
      verification: verificationObject(commit),
    },
    url: `${api}/commits/${commit.sha}`,
    html_url: `${web}/commit/${commit.sha}`,
    comments_url: `${api}/commits/${commit.sha}/comments`,
    // The authors as GitHub accounts: none here, as for emails GitHub does not know.
    author: null,
    committer: null,
    parents: commit.parents.map((sha) => ({ sha, url: `${api}/commits/${sha}`, html_url: `${web}/commit/${sha}` })),
    stats: { total: additions + deletions, additions, deletions },
    files: files.slice(0, COMMIT_FILES_LIMIT).map((file) => {
      const entry = {
        sha: file.status === 'D' ? file.oldSha : file.newSha,
        filename: file.path,
        status: FILE_STATUS[file.status] ?? 'changed',
        additions: file.additions,
        deletions: file.deletions,
        changes: file.additions + file.deletions,
        blob_url: `${web}/blob/${commit.sha}/${encodePath(file.path)}`,
        raw_url: `${web}/raw/${commit.sha}/${encodePath(file.path)}`,
        contents_url: `${api}/contents/${encodePath(file.path)}?ref=${commit.sha}`,
      }
      if (file.previous !== undefined) entry.previous_filename = file.previous
      return entry
    }),
  }
}

// The objects a repository's directory holds, in KiB, as GitHub's `size`.
async function repoSize(repo) {
  const out = await gitText(repo.gitDir, ['count-objects', '-v'])
  const value = (key) => Number(new RegExp(`^${key}: (\\d+)$`, 'm').exec(out)?.[1] ?? 0)
  return value('size') + value('size-pack')
}

async function repositoryObject(ctx, repo) {
  const [head, latest, size] = await Promise.all([
    gitText(repo.gitDir, ['symbolic-ref', '--quiet', 'HEAD']).catch(() => ''),
    gitText(repo.gitDir, ['for-each-ref', '--sort=-committerdate', '--count=1', '--format=%(committerdate:unix)']),
    repoSize(repo),
  ])
  const stat = fs.statSync(repo.dir)
  const created = stat.birthtimeMs || stat.ctimeMs
  const pushed = latest.trim() ? Number(latest.trim()) * 1000 : created
  const fullName = `${repo.owner}/${repo.name}`
  const id = stableId(fullName)
  const api = repoApi(ctx, repo)
  const web = repoWeb(ctx, repo)
  const out = {
    id,
    node_id: nodeId('Repository', id),
    name: repo.name,
    full_name: fullName,
    private: repo.private,
    owner: userObject(ctx, repo.owner),
    html_url: web,
    description: null,
    fork: false,
    url: api,
    forks_url: `${api}/forks`,
    keys_url: `${api}/keys{/key_id}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    teams_url: `${api}/teams`,
    hooks_url: `${api}/hooks`,
    issue_events_url: `${api}/issues/events{/number}`,
    events_url: `${api}/events`,
    assignees_url: `${api}/assignees{/user}`,
    branches_url: `${api}/branches{/branch}`,
    tags_url: `${api}/tags`,
    blobs_url: `${api}/git/blobs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    trees_url: `${api}/git/trees{/sha}`,
    statuses_url: `${api}/statuses/{sha}`,
    languages_url: `${api}/languages`,
    stargazers_url: `${api}/stargazers`,
    contributors_url: `${api}/contributors`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    commits_url: `${api}/commits{/sha}`,
    git_commits_url: `${api}/git/commits{/sha}`,
    comments_url: `${api}/comments{/number}`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    contents_url: `${api}/contents/{+path}`,
    compare_url: `${api}/compare/{base}...{head}`,
    merges_url: `${api}/merges`,
    archive_url: `${api}/{archive_format}{/ref}`,
    downloads_url: `${api}/downloads`,
    issues_url: `${api}/issues{/number}`,
    pulls_url: `${api}/pulls{/number}`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    labels_url: `${api}/labels{/name}`,
    releases_url: `${api}/releases{/id}`,
    deployments_url: `${api}/deployments`,
    created_at: isoDate(created),
    updated_at: isoDate(pushed),
    pushed_at: isoDate(pushed),
    git_url: `git://${ctx.host}/${fullName}.git`,
    ssh_url: `git@${ctx.host.replace(/:\d+$/, '')}:${fullName}.git`,
    clone_url: `${web}.git`,
    svn_url: web,
    homepage: null,
    size,
    stargazers_count: 0,
    watchers_count: 0,
    language: null,
    has_issues: true,
    has_projects: true,
    has_downloads: true,
    has_wiki: true,
    has_pages: false,
    has_discussions: false,
    forks_count: 0,
    mirror_url: null,
    archived: false,
    disabled: false,
    open_issues_count: 0,
    license: null,
    allow_forking: true,
    is_template: false,
    web_commit_signoff_required: false,
    topics: [],
    visibility: repo.private ? 'private' : 'public',
    forks: 0,
    open_issues: 0,
    watchers: 0,
    default_branch: head.trim().replace(/^refs\/heads\//, '') || 'main',
    network_count: 0,
    subscribers_count: 0,
  }
  // Whoever may push (here, any authenticated user) also sees permissions and merge settings.
  if (ctx.user) {
    Object.assign(out, {
      permissions: { admin: true, maintain: true, push: true, triage: true, pull: true },
      temp_clone_token: '',
      allow_squash_merge: true,
      allow_merge_commit: true,
      allow_rebase_merge: true,
      allow_auto_merge: false,
      delete_branch_on_merge: false,
      allow_update_branch: false,
      use_squash_pr_title_as_default: false,
    })
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Read endpoints

/** The repository a request names, if the requester may see it (and write to it, for writes). */
async function openRepo(ctx, owner, name, { write = false } = {}) {
  const repo = findRepo(owner, name)
  // GitHub answers 404 for a private repository to whoever may not see it.
  if (!repo || (repo.private && !ctx.user)) throw notFound()
  if (write && !ctx.user) throw new ApiError(401, 'Requires authentication')
  // The Git Data API refuses to work on a repository without commits, writes included.
  if (write && (await isEmptyRepo(repo.gitDir))) throw new ApiError(409, 'Git Repository is empty.')
  return repo
}

// A lookup that found nothing: 409 in an empty repository, as GitHub answers, else `error`.
async function missing(repo, error) {
  return (await isEmptyRepo(repo.gitDir)) ? new ApiError(409, 'Git Repository is empty.') : error
}

async function getRepository(ctx, { owner, repo: name }) {
  const repo = await openRepo(ctx, owner, name)
  send(ctx, 200, await repositoryObject(ctx, repo))
}

async function getCommit(ctx, { owner, repo: name, rest: ref }) {
  const repo = await openRepo(ctx, owner, name)
  const sha = await resolveCommitish(repo.gitDir, ref)
  if (!sha) throw await missing(repo, invalid(`No commit found for SHA: ${ref}`))
  const commit = await readCommit(repo.gitDir, sha)
  send(ctx, 200, commitObject(ctx, repo, commit, await commitFiles(repo.gitDir, commit)))
}

async function getGitCommit(ctx, { owner, repo: name, sha }) {
  const repo = await openRepo(ctx, owner, name)
  if (!SHA_RE.test(sha)) throw invalid('The sha parameter must be exactly 40 characters and contain only [0-9a-f].')
  if ((await objectType(repo.gitDir, sha)) !== 'commit') throw await missing(repo, notFound())
  send(ctx, 200, gitCommitObject(ctx, repo, await readCommit(repo.gitDir, sha)))
}

async function getRef(ctx, { owner, repo: name, rest: ref }) {
  const repo = await openRepo(ctx, owner, name)
  const found = (await listRefs(repo.gitDir)).find((each) => each.ref === `refs/${ref}`)
  if (!found) throw await missing(repo, notFound())
  send(ctx, 200, refObject(ctx, repo, found))
}

async function listMatchingRefs(ctx, { owner, repo: name, rest: prefix }) {
  const repo = await openRepo(ctx, owner, name)
  if (await isEmptyRepo(repo.gitDir)) throw new ApiError(409, 'Git Repository is empty.')
  const refs = (await listRefs(repo.gitDir)).filter((each) => each.ref.startsWith(`refs/${prefix}`))
  send(
    ctx,
    200,
    refs.map((each) => refObject(ctx, repo, each)),
  )
}

async function getTree(ctx, { owner, repo: name, rest: treeish }) {
  const repo = await openRepo(ctx, owner, name)
  // A tree's sha, or a commit's, or the name of a branch or tag.
  const candidates = SHA_RE.test(treeish)
    ? [treeish]
    : plainRefName(treeish)
      ? [`refs/heads/${treeish}`, `refs/tags/${treeish}`]
      : []
  let sha = null
  for (const candidate of candidates) sha ??= await resolveRev(repo.gitDir, candidate, 'tree')
  if (!sha) throw await missing(repo, notFound())
  // Any value of `recursive`, even 0 or false, asks for the whole tree, as on GitHub.
  const recursive = ctx.url.searchParams.has('recursive')
  let entries = await lsTree(repo.gitDir, sha, recursive)
  const truncated = recursive && entries.length > options.treeLimit
  if (truncated) entries = entries.slice(0, options.treeLimit)
  send(ctx, 200, {
    sha,
    url: `${repoApi(ctx, repo)}/git/trees/${sha}`,
    tree: entries.map((entry) => treeEntryObject(ctx, repo, entry)),
    truncated,
  })
}

// Base64 in lines of 60 characters, each ending in a newline, as GitHub encodes blobs.
function wrappedBase64(bytes) {
  const text = bytes.toString('base64')
  let out = ''
  for (let i = 0; i < text.length; i += 60) out += text.slice(i, i + 60) + '\n'
  return out
}

async function getBlob(ctx, { owner, repo: name, sha }) {
  const repo = await openRepo(ctx, owner, name)
  if (!SHA_RE.test(sha)) throw invalid('The sha parameter must be exactly 40 characters and contain only [0-9a-f].')
  const content = await readBlob(repo.gitDir, sha)
  if (!content) throw await missing(repo, notFound())
  const raw = rawMediaType(ctx.req.headers.accept)
  if (raw) {
    // Raw content is tagged with the blob's sha, as GitHub does.
    const headers = { contentType: `${raw}; charset=utf-8`, mediaType: 'github.v3; param=raw', etag: `"${sha}"` }
    send(ctx, 200, content, headers)
    return
  }
  send(ctx, 200, {
    sha,
    node_id: nodeId('Blob', `${stableId(`${repo.owner}/${repo.name}`)}:${sha}`),
    size: content.length,
    url: `${repoApi(ctx, repo)}/git/blobs/${sha}`,
    content: wrappedBase64(content),
    encoding: 'base64',
  })
}

function getRateLimit(ctx) {
  ctx.free = true
  const core = {
    limit: rateLimit.limit,
    used: rateLimit.limit - rateLimit.remaining,
    remaining: rateLimit.remaining,
    reset: Math.ceil(rateLimit.resetAt / 1000),
  }
  // Other resources have their own limits, which nothing here uses up.
  const unused = (limit) => ({ limit, used: 0, remaining: limit, reset: core.reset })
  send(ctx, 200, { resources: { core, search: unused(30), graphql: unused(5000) }, rate: core })
}

// ---------------------------------------------------------------------------------------------
// Write endpoints (the Git Data API)

// Stores `content` (a Buffer or a string) as a blob, byte for byte; resolves with its sha.
async function writeBlob(gitDir, content) {
  const args = ['hash-object', '-w', '-t', 'blob', '--stdin', '--no-filters']
  return (await gitText(gitDir, args, { input: content })).trim()
}

// A required string member of a request body.
function requireString(body, key) {
  if (typeof body[key] !== 'string') throw invalid(`Invalid request.\n\n"${key}" wasn't supplied.`)
  return body[key]
}

async function createBlob(ctx, { owner, repo: name }, body) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const content = requireString(body, 'content')
  const encoding = body.encoding ?? 'utf-8'
  if (!['utf-8', 'utf8', 'base64'].includes(encoding)) {
    throw invalid(`Invalid request.\n\nencoding must be one of "utf-8", "base64".`)
  }
  const sha = await writeBlob(repo.gitDir, Buffer.from(content, encoding === 'base64' ? 'base64' : 'utf8'))
  const url = `${repoApi(ctx, repo)}/git/blobs/${sha}`
  send(ctx, 201, { sha, url }, { headers: { location: url } })
}

const TREE_MODES = { 100644: 'blob', 100755: 'blob', 120000: 'blob', '040000': 'tree', 160000: 'commit' }

// A path made of plain components, as a tree entry's path must be.
const validTreePath = (file) =>
  typeof file === 'string' &&
  file !== '' &&
  file.split('/').every((part) => part !== '' && part !== '.' && part !== '..' && part !== '.git')

async function createTree(ctx, { owner, repo: name }, body) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const { gitDir } = repo
  if (!Array.isArray(body.tree)) throw invalid(`Invalid request.\n\n"tree" wasn't supplied.`)
  // Check every entry, and the type of every object it names, before writing anything.
  const changes = body.tree.map((entry) => {
    if (typeof entry !== 'object' || entry === null) throw invalid('Invalid tree info')
    const { path: file, mode, sha, content } = entry
    const type = entry.type ?? TREE_MODES[mode]
    if (!validTreePath(file)) throw invalid(`tree.path contains a malformed path component`)
    if (TREE_MODES[mode] === undefined || TREE_MODES[mode] !== type) throw invalid('Invalid tree info')
    if (content !== undefined && (sha !== undefined || type !== 'blob' || typeof content !== 'string')) {
      throw invalid('Invalid tree info')
    }
    if (content === undefined && sha !== null && !(typeof sha === 'string' && SHA_RE.test(sha))) {
      throw invalid('Invalid tree info')
    }
    return { file, mode, type, sha, content }
  })
  const named = changes.filter((change) => typeof change.sha === 'string' && change.type !== 'commit')
  const shas = named.map((change) => change.sha)
  const types = await objectTypes(gitDir, shas)
  named.forEach((change, i) => {
    if (types[i] !== change.type) throw invalid(`tree.sha ${change.sha} is not a valid ${change.type}`)
  })
  let root = new Map()
  if (body.base_tree !== undefined && body.base_tree !== null) {
    const base = body.base_tree
    if (typeof base !== 'string' || !SHA_RE.test(base) || (await objectType(gitDir, base)) !== 'tree') {
      throw invalid('base_tree is not a valid tree oid')
    }
    root = await treeMap(gitDir, base)
  }
  for (const { file, mode, type, sha, content } of changes) {
    // Inline content becomes a blob first; a null sha deletes.
    const object = content === undefined ? sha : await writeBlob(gitDir, content)
    await editTree(gitDir, root, file.split('/'), object === null ? null : { mode, type, sha: object })
  }
  const sha = await writeTree(gitDir, root, true)
  const url = `${repoApi(ctx, repo)}/git/trees/${sha}`
  const entries = await lsTree(gitDir, sha, false)
  send(
    ctx,
    201,
    { sha, url, tree: entries.map((entry) => treeEntryObject(ctx, repo, entry)), truncated: false },
    { headers: { location: url } },
  )
}

// A tree's entries by name: {mode, type, sha}, or a Map for a subtree being edited.
async function treeMap(gitDir, sha) {
  return new Map((await lsTree(gitDir, sha, false)).map((entry) => [entry.path, entry]))
}

/** Sets (or, for a null `entry`, deletes) the entry at `parts` below `dir`, loading subtrees on the way. */
async function editTree(gitDir, dir, parts, entry) {
  const [name, ...rest] = parts
  if (rest.length === 0) {
    if (entry) dir.set(name, entry)
    else dir.delete(name)
    return
  }
  let child = dir.get(name)
  if (!(child instanceof Map)) {
    if (child?.type === 'tree') child = await treeMap(gitDir, child.sha)
    else if (!entry)
      return // Deleting below a path that is no directory: nothing to do.
    else child = new Map() // A new directory, which replaces a file of the same name.
    dir.set(name, child)
  }
  await editTree(gitDir, child, rest, entry)
}

/** Writes an edited tree bottom-up with `git mktree`; null for a directory left empty. */
async function writeTree(gitDir, dir, isRoot) {
  const lines = []
  for (const [name, entry] of dir) {
    if (entry instanceof Map) {
      const sha = await writeTree(gitDir, entry, false)
      if (sha) lines.push(`040000 tree ${sha}\t${name}`)
    } else {
      lines.push(`${entry.mode} ${entry.type} ${entry.sha}\t${name}`)
    }
  }
  if (lines.length === 0 && !isRoot) return null
  return (await gitText(gitDir, ['mktree', '-z'], { input: lines.map((line) => line + '\0').join('') })).trim()
}

// An ISO 8601 date as git's internal form "<seconds> <+hhmm>", keeping its offset.
function gitDate(text) {
  const ms = Date.parse(text)
  if (typeof text !== 'string' || Number.isNaN(ms)) return null
  const offset = /([+-])(\d{2}):?(\d{2})$/.exec(text)
  return `${Math.floor(ms / 1000)} ${offset ? offset[1] + offset[2] + offset[3] : '+0000'}`
}

// The identity {name, email, date} of a commit's author or committer, in git's terms.
function identity(person, fallback) {
  if (person === undefined || person === null) return fallback
  if (typeof person.name !== 'string' || person.name.trim() === '' || typeof person.email !== 'string') {
    throw invalid('Invalid request.\n\n"name" and "email" are required.')
  }
  const date = person.date === undefined ? fallback.date : gitDate(person.date)
  if (!date) throw invalid(`Invalid request.\n\n${JSON.stringify(person.date)} is not a valid date-time.`)
  return { name: person.name, email: person.email, date }
}

async function createCommit(ctx, { owner, repo: name }, body) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const { gitDir } = repo
  const message = requireString(body, 'message')
  const tree = requireString(body, 'tree')
  const parents = body.parents ?? []
  if (!Array.isArray(parents)) throw invalid('Invalid request.\n\n"parents" must be an array of shas.')
  if (!SHA_RE.test(tree) || (await objectType(gitDir, tree)) !== 'tree') throw invalid('Tree SHA does not exist')
  const wellFormed = parents.every((sha) => typeof sha === 'string' && SHA_RE.test(sha))
  if (!wellFormed || (await objectTypes(gitDir, parents)).some((type) => type !== 'commit')) {
    throw invalid('Parent SHA does not exist or is not a commit object')
  }
  // Without an author, the user and now; without a committer, the author.
  const user = {
    name: ctx.user,
    email: `${stableId(ctx.user)}+${ctx.user}@users.noreply.github.com`,
    date: `${Math.floor(Date.now() / 1000)} +0000`,
  }
  const author = identity(body.author, user)
  const committer = identity(body.committer, author)
  const args = ['commit-tree', '--no-gpg-sign', tree, ...parents.flatMap((sha) => ['-p', sha]), '-F', '-']
  const env = {
    GIT_AUTHOR_NAME: author.name,
    GIT_AUTHOR_EMAIL: author.email,
    GIT_AUTHOR_DATE: author.date,
    GIT_COMMITTER_NAME: committer.name,
    GIT_COMMITTER_EMAIL: committer.email,
    GIT_COMMITTER_DATE: committer.date,
  }
  const sha = (await gitText(gitDir, args, { input: message, env })).trim()
  const answer = gitCommitObject(ctx, repo, await readCommit(gitDir, sha))
  send(ctx, 201, answer, { headers: { location: answer.url } })
}

// The full name and current state {ref, sha, type} of the reference a path names, or null.
async function currentRef(gitDir, ref) {
  const full = ref.startsWith('refs/') ? ref : `refs/${ref}`
  return (await listRefs(gitDir)).find((each) => each.ref === full) ?? null
}

async function createRef(ctx, { owner, repo: name }, body) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const { gitDir } = repo
  const ref = requireString(body, 'ref')
  const sha = requireString(body, 'sha')
  if (!ref.startsWith('refs/') || ref.split('/').length < 3 || !plainRefName(ref)) {
    throw invalid("Reference name must start with 'refs/' and have at least two slashes.")
  }
  if (await currentRef(gitDir, ref)) throw invalid('Reference already exists')
  const type = SHA_RE.test(sha) ? await objectType(gitDir, sha) : null
  if (!type) throw invalid('Object does not exist')
  try {
    await git(gitDir, ['update-ref', ref, sha, ''])
  } catch (error) {
    if (error instanceof GitError) throw invalid('Reference already exists')
    throw error
  }
  const answer = refObject(ctx, repo, { ref, sha, type })
  send(ctx, 201, answer, { headers: { location: answer.url } })
}

async function updateRef(ctx, { owner, repo: name, rest: refPath }, body) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const { gitDir } = repo
  const sha = requireString(body, 'sha')
  const current = await currentRef(gitDir, refPath)
  if (!current) throw invalid('Reference does not exist')
  const type = SHA_RE.test(sha) ? await objectType(gitDir, sha) : null
  if (!type) throw invalid('Object does not exist')
  if (body.force !== true && !(await isAncestor(gitDir, current.sha, sha)))
    throw invalid('Update is not a fast forward')
  try {
    // Only from the value checked above, so that a concurrent update is not lost.
    await git(gitDir, ['update-ref', current.ref, sha, current.sha])
  } catch (error) {
    if (error instanceof GitError) throw invalid('Reference update failed')
    throw error
  }
  send(ctx, 200, refObject(ctx, repo, { ref: current.ref, sha, type }))
}

async function isAncestor(gitDir, ancestor, descendant) {
  try {
    await git(gitDir, ['merge-base', '--is-ancestor', ancestor, descendant])
    return true
  } catch (error) {
    if (error instanceof GitError) return false
    throw error
  }
}

async function deleteRef(ctx, { owner, repo: name, rest: refPath }) {
  const repo = await openRepo(ctx, owner, name, { write: true })
  const current = await currentRef(repo.gitDir, refPath)
  if (!current) throw invalid('Reference does not exist')
  await git(repo.gitDir, ['update-ref', '-d', current.ref, current.sha])
  send(ctx, 204)
}

// ---------------------------------------------------------------------------------------------
// Control endpoints for tests (never logged, counted or authenticated)

// POST /_mirage/rate-limit {limit?, remaining?, retry_after?, status?}: starts a new window of
// `limit` requests with `remaining` left, ending in `retry_after` seconds; once none remain,
// API requests get `status` (403 or 429) until the window ends.
function controlRateLimit(res, body) {
  const limit = body.limit ?? rateLimit.limit
  const remaining = body.remaining ?? limit
  const retryAfter = body.retry_after ?? RATE_WINDOW_MS / 1000
  const status = body.status ?? 403
  const valid =
    Number.isInteger(limit) &&
    limit > 0 &&
    Number.isInteger(remaining) &&
    remaining >= 0 &&
    remaining <= limit &&
    typeof retryAfter === 'number' &&
    retryAfter > 0 &&
    (status === 403 || status === 429)
  if (!valid)
    return controlAnswer(res, 400, { message: 'expected {limit?, remaining?, retry_after?, status?: 403|429}' })
  Object.assign(rateLimit, newRateWindow(limit, remaining, retryAfter * 1000, status))
  controlAnswer(res, 200, { ...rateLimitHeaders(), status })
}

function controlAnswer(res, status, body) {
  const bytes = Buffer.from(JSON.stringify(body))
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': bytes.length })
  res.end(bytes)
}

// ---------------------------------------------------------------------------------------------
// Routing

const OWNER_REPO = '/repos/(?<owner>[^/]+)/(?<repo>[^/]+)'
const ROUTES = [
  ['GET', '/rate_limit', getRateLimit, DOCS.rateLimit],
  ['GET', `${OWNER_REPO}`, getRepository, DOCS.repo],
  ['GET', `${OWNER_REPO}/commits/(?<rest>.+)`, getCommit, DOCS.commit],
  ['GET', `${OWNER_REPO}/git/commits/(?<sha>[^/]+)`, getGitCommit, DOCS.gitCommit],
  ['GET', `${OWNER_REPO}/git/ref/(?<rest>.+)`, getRef, DOCS.ref],
  ['GET', `${OWNER_REPO}/git/matching-refs/(?<rest>.*)`, listMatchingRefs, DOCS.matchingRefs],
  ['GET', `${OWNER_REPO}/git/trees/(?<rest>.+)`, getTree, DOCS.tree],
  ['GET', `${OWNER_REPO}/git/blobs/(?<sha>[^/]+)`, getBlob, DOCS.blob],
  ['POST', `${OWNER_REPO}/git/blobs`, createBlob, DOCS.createBlob],
  ['POST', `${OWNER_REPO}/git/trees`, createTree, DOCS.createTree],
  ['POST', `${OWNER_REPO}/git/commits`, createCommit, DOCS.createCommit],
  ['POST', `${OWNER_REPO}/git/refs`, createRef, DOCS.createRef],
  ['PATCH', `${OWNER_REPO}/git/refs/(?<rest>.+)`, updateRef, DOCS.updateRef],
  ['DELETE', `${OWNER_REPO}/git/refs/(?<rest>.+)`, deleteRef, DOCS.deleteRef],
].map(([method, pattern, handler, docs]) => ({ method, pattern: new RegExp(`^${pattern}/?$`), handler, docs }))

// The route for a method and (percent-encoded) path, with its decoded parameters, or null.
function route(method, pathname) {
  for (const each of ROUTES) {
    const match = each.method === method && each.pattern.exec(pathname)
    if (!match) continue
    const params = {}
    try {
      for (const [key, value] of Object.entries(match.groups ?? {})) params[key] = decodeURIComponent(value)
    } catch {
      return null
    }
    return { ...each, params }
  }
  return null
}

/** The user a request's credentials stand for: null without any; throws for a wrong token. */
function authenticate(header) {
  if (header === undefined) return null
  const [scheme, value = ''] = header.trim().split(/\s+/, 2)
  let token = null
  if (/^(bearer|token)$/i.test(scheme)) token = value
  else if (/^basic$/i.test(scheme)) token = Buffer.from(value, 'base64').toString().split(':').slice(1).join(':')
  // Without --token every token is good; with it, only that one.
  if (!token || (options.token !== undefined && token !== options.token)) {
    throw new ApiError(401, 'Bad credentials', { docs: DOCS.root })
  }
  return USER_LOGIN
}

// Reads a request's body as JSON: an object, or {} when empty.
async function readJson(req) {
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > MAX_BODY) throw new ApiError(413, 'Request body too large')
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString()
  if (text.trim() === '') return {}
  let body
  try {
    body = JSON.parse(text)
  } catch {
    throw new ApiError(400, 'Problems parsing JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'Body should be a JSON object')
  }
  return body
}

async function handle(req, res) {
  // The target is a path (never a URL of its own: "//host/..." stays a path).
  const url = new URL(req.url.startsWith('/') ? `http://localhost${req.url}` : 'http://localhost/')
  const { pathname } = url

  if (pathname === '/_mirage/requests' && req.method === 'GET') return controlAnswer(res, 200, requestLog)
  if (pathname === '/_mirage/rate-limit' && req.method === 'POST') {
    let body
    try {
      body = await readJson(req)
    } catch (error) {
      return controlAnswer(res, 400, { message: error.message })
    }
    return controlRateLimit(res, body)
  }

  // GitHub Enterprise Server serves the same API below /api/v3.
  const prefix = pathname.startsWith('/api/v3/') ? '/api/v3' : ''
  const ctx = requestContext(req, res, url, prefix)
  try {
    ctx.user = authenticate(req.headers.authorization)
    refillRateLimit()
    if (rateLimit.remaining === 0) {
      const wait = Math.max(1, Math.ceil((rateLimit.resetAt - Date.now()) / 1000))
      const who = ctx.user ? `user ID ${stableId(ctx.user)}` : `${req.socket.remoteAddress}`
      const message = ctx.user
        ? `API rate limit exceeded for ${who}.`
        : `API rate limit exceeded for ${who}. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)`
      throw new ApiError(rateLimit.status, message, {
        docs: DOCS.rateLimited,
        headers: { 'retry-after': String(wait) },
      })
    }
    const found = route(ctx.method, pathname.slice(prefix.length))
    if (!found) throw notFound()
    ctx.docs = found.docs
    const body = ['POST', 'PATCH', 'PUT'].includes(req.method) ? await readJson(req) : undefined
    await found.handler(ctx, found.params, body)
  } catch (error) {
    if (res.headersSent) return res.destroy()
    if (error instanceof ApiError) return sendError(ctx, error)
    sendError(ctx, new ApiError(500, error.message, { docs: DOCS.root }))
  }
}

const server = http.createServer((req, res) => {
  req.on('error', () => {})
  res.on('error', () => {})
  handle(req, res).catch(() => res.destroy())
})
// Longer than a client's idle pool timeout, so that a pooled connection is not closed under it.
server.keepAliveTimeout = 120_000
server.listen(options.port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`)
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0))

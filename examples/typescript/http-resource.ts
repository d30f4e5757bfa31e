/**
 * A resource written in TypeScript: a read-only tree served over HTTP (any static file server
 * that answers `GET` with `Range` and lists directories as JSON), mounted beside RAM. HTTP
 * statuses become node:fs codes (404 is ENOENT, 403 is EACCES), so callers see the errors they
 * expect. The demo starts such a server on 127.0.0.1 itself.
 *
 * Run: npm run http --workspace mirage-examples-ts
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

import { Mirage, memory, type Resource, type ResourceEntry, type ResourceStat } from '@mirage/vfs'

/** Maps an HTTP failure to a node:fs error. */
function httpError(status: number, path: string): Error {
  const code = status === 404 ? 'ENOENT' : status === 403 || status === 401 ? 'EACCES' : 'EIO'
  return Object.assign(new Error(`HTTP ${status} for ${path}`), { code })
}

/** A read-only resource over HTTP: `HEAD` for stat, ranged `GET` for read, `?list` for list. */
export class HttpResource implements Resource {
  readonly name: string

  constructor(private readonly base: string) {
    this.name = base
  }

  async #fetch(path: string, init?: RequestInit & { list?: boolean }): Promise<Response> {
    const url = new URL(path.slice(1) + (init?.list ? '?list' : ''), this.base)
    const response = await fetch(url, init)
    if (!response.ok) throw httpError(response.status, path)
    return response
  }

  async stat(path: string): Promise<ResourceStat> {
    const head = await this.#fetch(path, { method: 'HEAD' })
    const isDir = head.headers.get('x-kind') === 'directory'
    return {
      kind: isDir ? 'directory' : 'file',
      size: Number(head.headers.get('content-length') ?? 0),
      mtimeMs: Date.parse(head.headers.get('last-modified') ?? '') || 0,
      version: head.headers.get('etag') ?? undefined,
    }
  }

  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array()
    const range = `bytes=${offset}-${offset + length - 1}`
    const response = await this.#fetch(path, { headers: { range } })
    return new Uint8Array(await response.arrayBuffer())
  }

  async list(path: string): Promise<ResourceEntry[]> {
    return (await (await this.#fetch(path, { list: true })).json()) as ResourceEntry[]
  }
}

/** A tiny static server over an in-memory tree, for the demo. */
function serve(files: Record<string, string>): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = decodeURIComponent(url.pathname)
    const dir = path.endsWith('/') ? path : path + '/'
    const children = Object.keys(files).filter((f) => f.startsWith(dir))
    if (path.startsWith('/private')) return void res.writeHead(403).end()
    if (url.searchParams.has('list')) {
      const names = new Map(children.map((f) => [f.slice(dir.length).split('/')[0]!, f.slice(dir.length).includes('/')]))
      const entries = [...names].map(([name, isDir]) => ({ name, kind: isDir ? 'directory' : 'file' }))
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(entries))
    }
    const body = files[path]
    if (body === undefined) {
      if (children.length === 0 && path !== '/') return void res.writeHead(404).end()
      return void res.writeHead(200, { 'x-kind': 'directory', 'content-length': 0 }).end()
    }
    const bytes = Buffer.from(body)
    const [, from, to] = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '') ?? []
    const part = from === undefined ? bytes : bytes.subarray(Number(from), Number(to) + 1)
    const length = req.method === 'HEAD' ? bytes.length : part.length
    res.writeHead(from === undefined ? 200 : 206, { 'content-length': length, etag: `"${bytes.length}"` })
    res.end(req.method === 'HEAD' ? undefined : part)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

async function main(): Promise<void> {
  const server = await serve({ '/docs/intro.md': '# Intro\nHello over HTTP.\n', '/docs/api/ref.md': '# Reference\n' })
  const { port } = server.address() as AddressInfo
  const mirage = new Mirage()
  mirage.mount('/web', new HttpResource(`http://127.0.0.1:${port}/`))
  mirage.mount('/scratch', memory())
  const session = mirage.createSession('main')
  try {
    console.log('mounts:', mirage.mounts())
    console.log('/web/docs:', await session.readdir('/web/docs', { withFileTypes: true }))
    console.log('intro:', await session.readFile('/web/docs/intro.md', 'utf8'))
    console.log('bytes 2..7:', (await session.read('/web/docs/intro.md', { offset: 2, length: 5 })).toString())
    await session.copyFile('/web/docs/intro.md', '/scratch/intro.md')
    console.log('copied to RAM:', await session.readFile('/scratch/intro.md', 'utf8'))
    for (const [path, attempt] of [
      ['/web/docs/missing.md', () => session.readFile('/web/docs/missing.md')],
      ['/web/private/key', () => session.stat('/web/private/key')],
      ['/web/docs/intro.md', () => session.writeFile('/web/docs/intro.md', 'no')],
    ] as const) {
      await attempt().then(
        () => console.log(`${path}: unexpectedly succeeded`),
        (e: NodeJS.ErrnoException) => console.log(`${path}: ${e.code}`),
      )
    }
  } finally {
    server.close()
  }
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})

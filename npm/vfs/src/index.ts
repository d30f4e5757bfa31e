/**
 * `@mirage/vfs`: Mirage's virtual filesystem for agents, in the spirit of `node:fs/promises`.
 *
 * One tree of mounts (RAM, host directories, buckets, resources you write in TypeScript), seen through
 * sessions: copy-on-write views that fork in O(1), diff, and commit the winner.
 *
 * ```ts
 * import { Mirage, memory, local } from '@mirage/vfs'
 *
 * const mirage = new Mirage()
 * mirage.mount('/project', local('./my-project'))
 * mirage.mount('/scratch', memory())
 * const main = mirage.createSession('main')
 * const [a, b] = [main.fork(), main.fork()]
 * await a.writeFile('/project/NOTES.md', 'plan A\n')
 * await b.writeFile('/project/NOTES.md', 'plan B\n')
 * await a.commit({ winnerTakesAll: true }) // b is aborted in the same step
 * await main.commit()                      // written to ./my-project
 * ```
 *
 * Operations that need no waiting (memory mounts, local files, overlay hits) run on the
 * calling thread and return already-settled promises; only resources that must wait (one
 * written in JavaScript, say) go through a thread hop.
 *
 * @packageDocumentation
 */

// The allocator's settings must be in the environment before the addon loads.
import { restoreEnvironment } from './allocator.js'
import * as native from '../native/binding.js'
import { ContentCache } from './cache.js'

restoreEnvironment()

/** Prefix of the JSON error messages the native layer produces. */
const ERROR_TAG = 'MIRAGE_ERROR:'

/** An error from Mirage, shaped like node:fs errors. */
export interface MirageError extends Error {
  /** `ENOENT`, `EEXIST`, `ENOTDIR`, `EISDIR`, `ENOTEMPTY`, `EROFS`, `EACCES`, `EINVAL`,
   * `ENAMETOOLONG`, `EXDEV`, `ELOOP`, `ENOTSUP`, `EIO`, `EFBIG`, `ENOSPC`, or `ECONFLICT` (a commit lost a race). */
  code: string
  /** The matching (negative-free) errno value; `ECONFLICT` uses `EBUSY`'s. */
  errno: number
  /** The operation that failed (`read`, `mkdir`, `commit`, ...). */
  syscall: string
  /** The virtual path concerned, if any. */
  path?: string
  /** The mount point of the resource involved, if any. */
  mount?: string
  /** For `ECONFLICT`: the paths someone else changed. */
  conflicts: string[]
}

interface ErrorInfo {
  code: string
  errno: number
  syscall: string
  path: string | null
  mount: string | null
  conflicts: string[]
  message: string
}

/** Turns a native error into a {@link MirageError}; anything else passes through. */
function convertError(e: unknown): unknown {
  if (!(e instanceof Error) || !e.message.startsWith(ERROR_TAG)) return e
  const info = JSON.parse(e.message.slice(ERROR_TAG.length)) as ErrorInfo
  const err = new Error(`${info.code}: ${info.message}`) as MirageError
  err.code = info.code
  err.errno = info.errno
  err.syscall = info.syscall
  if (info.path !== null) err.path = info.path
  if (info.mount !== null) err.mount = info.mount
  err.conflicts = info.conflicts
  return err
}

/** Rethrows a native error as a {@link MirageError} (for promise rejections). */
function rethrow(e: unknown): never {
  throw convertError(e)
}

/** Drops a value (a native write's "plain path" answer the caller does not need). */
function ignore(): void {}

/** The settled promise of every write that finished at once. */
const RESOLVED: Promise<void> = Promise.resolve()

/** True for errors raised by Mirage. */
export function isMirageError(e: unknown): e is MirageError {
  return e instanceof Error && typeof (e as Partial<MirageError>).code === 'string' && 'syscall' in e
}

/** Calls a native method whose result is a value (settled) or a promise (pending). */
function settle<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    const result = call()
    if (result instanceof Promise) {
      return result.catch((e: unknown) => {
        throw convertError(e)
      })
    }
    return Promise.resolve(result)
  } catch (e) {
    return Promise.reject(convertError(e))
  }
}

/** As {@link settle}, mapping the value; a settled value is mapped without an extra turn. */
function settleMap<T, R>(call: () => T | Promise<T>, map: (value: T) => R): Promise<R> {
  try {
    const result = call()
    if (result instanceof Promise) {
      return result.then(map, (e: unknown) => {
        throw convertError(e)
      })
    }
    return Promise.resolve(map(result))
  } catch (e) {
    return Promise.reject(convertError(e))
  }
}

/** Calls a synchronous native method, converting its errors. */
function sync<T>(call: () => T): T {
  try {
    return call()
  } catch (e) {
    throw convertError(e)
  }
}

/** A session as the functions of {@link fast} take it; opaque to JavaScript. */
type SessionHandle = object

/**
 * The hottest calls as plain native functions, which skip the per-call bookkeeping of
 * ordinary native methods. Each async variant returns `undefined` when its operation would
 * have to wait (having changed nothing), and the caller then uses the promise-returning
 * native method; the sync variants throw instead.
 */
interface FastCalls {
  readFile(session: SessionHandle, path: string, pool: Buffer, offset: number): number | Buffer | undefined
  readFileSync(session: SessionHandle, path: string, pool: Buffer, offset: number): number | Buffer
  writeFile(session: SessionHandle, path: string, content: string | Buffer): boolean | undefined
  writeFileSync(session: SessionHandle, path: string, content: string | Buffer): boolean
  stat(session: SessionHandle, path: string, scratch: Float64Array): string | null | undefined
  statSync(session: SessionHandle, path: string, scratch: Float64Array): string | null
  lstat(session: SessionHandle, path: string, scratch: Float64Array): string | null | undefined
  lstatSync(session: SessionHandle, path: string, scratch: Float64Array): string | null
  exists(session: SessionHandle, path: string): boolean | undefined
  existsSync(session: SessionHandle, path: string): boolean
}

const fast = native.fastCalls() as unknown as FastCalls

/** Numbers a native stat writes per entry: kind code, size, mode, mtime, atime, stamp. */
const STAT_SLOTS = 6

/** Views of `all` holding one piece each, `lengths` long, one after another. */
function slices(all: Buffer, lengths: Float64Array): Buffer[] {
  const out = new Array<Buffer>(lengths.length)
  let start = 0
  for (let i = 0; i < lengths.length; i++) {
    const end = start + (lengths[i] ?? 0)
    out[i] = all.subarray(start, end)
    start = end
  }
  return out
}

/** Size of a session's slab for small reads. */
const POOL_SIZE = 64 * 1024

/** A result from cached text: the string itself, or encoded afresh. */
function fromText(text: string, encoding: BufferEncoding | null): Buffer | string {
  if (encoding === 'utf8' || encoding === 'utf-8') return text
  return encoding === null ? Buffer.from(text) : Buffer.from(text).toString(encoding)
}

/** The read slab of a handle that has not read yet. */
const EMPTY = Buffer.alloc(0)

/** Text or bytes to write. */
export type Data = string | Uint8Array

function data(value: Data): string | Buffer {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return value
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/** `'utf8'` and the other encodings `Buffer.toString` knows. */
export type Encoding = BufferEncoding

/** Options of {@link Session.readFile}. */
export interface ReadFileOptions {
  /** Decode the content as text. */
  encoding?: Encoding | null
}

function encodingOf(options?: Encoding | ReadFileOptions | null): Encoding | null {
  if (options == null) return null
  if (typeof options === 'string') return options
  return options.encoding ?? null
}

/** The kind of an entry. */
export type EntryKind = 'file' | 'directory' | 'symlink'

const S_IFMT: Record<EntryKind, number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000 }

/** Kind codes the native layer writes into a stat scratch array. */
const KINDS: readonly EntryKind[] = ['file', 'directory', 'symlink']

/** Something with a kind, answering the `fs.Stats`/`fs.Dirent` questions about it. */
abstract class Kinded {
  /** File, directory or symbolic link. */
  abstract readonly kind: EntryKind

  /** True for regular files. */
  isFile(): boolean {
    return this.kind === 'file'
  }

  /** True for directories. */
  isDirectory(): boolean {
    return this.kind === 'directory'
  }

  /** True for symbolic links (`lstat` and listings report them; `stat` follows them). */
  isSymbolicLink(): boolean {
    return this.kind === 'symlink'
  }
}

/** What `stat` and `lstat` report, shaped like `fs.Stats`. */
export class Stats extends Kinded {
  /** File, directory or symbolic link. */
  readonly kind: EntryKind
  /** Size in bytes. */
  readonly size: number
  /** Type and permission bits, as in `fs.Stats.mode`. */
  readonly mode: number
  /** Modification time in milliseconds since the epoch. */
  readonly mtimeMs: number
  /** Access time in milliseconds since the epoch. */
  readonly atimeMs: number
  /** The entry's version token: changes whenever its content or kind changes. */
  readonly version: string

  /** @internal */
  constructor(kind: EntryKind, size: number, mode: number, mtimeMs: number, atimeMs: number, version: string) {
    super()
    this.kind = kind
    this.size = size
    this.mode = S_IFMT[kind] | mode
    this.mtimeMs = mtimeMs
    this.atimeMs = atimeMs
    this.version = version
  }

  /** @internal */
  static fromInfo(info: native.StatInfo): Stats {
    return new Stats(info.kind as EntryKind, info.size, info.mode, info.mtimeMs, info.atimeMs, info.version)
  }

  /** @internal Builds stats from the numbers a native call left in `scratch`; a `null`
   * version means the overlay stamp in slot 5. */
  static fromScratch(scratch: Float64Array, version: string | null | undefined, at = 0): Stats {
    const kind = KINDS[scratch[at] ?? 0] ?? 'file'
    const v = version ?? `o${scratch[at + 5] ?? 0}`
    return new Stats(kind, scratch[at + 1] ?? 0, scratch[at + 2] ?? 0, scratch[at + 3] ?? 0, scratch[at + 4] ?? 0, v)
  }

  /** Modification time. */
  get mtime(): Date {
    return new Date(this.mtimeMs)
  }

  /** Access time. */
  get atime(): Date {
    return new Date(this.atimeMs)
  }
}

/** A directory entry, shaped like `fs.Dirent`. */
export class Dirent extends Kinded {
  /** The entry's name. */
  readonly name: string
  /** The directory it was listed from. */
  readonly parentPath: string
  /** File, directory or symbolic link. */
  readonly kind: EntryKind

  /** @internal */
  constructor(parentPath: string, entry: native.Dirent) {
    super()
    this.name = entry.name
    this.parentPath = parentPath
    this.kind = entry.kind as EntryKind
  }
}

/** One entry of {@link Session.diff}. */
export interface Change {
  /** The virtual path. */
  path: string
  /** Added, modified or deleted relative to where the session started. */
  change: 'added' | 'modified' | 'deleted'
  /** The entry's kind now (or before, for a deletion). */
  kind: EntryKind
  /** Size where the session started, if it existed. */
  oldSize?: number
  /** Size now, if it exists. */
  newSize?: number
}

/** Options of {@link Session.commit}. */
export interface CommitOptions {
  /** Abort every sibling (and their forks) in the same step as a successful commit. */
  winnerTakesAll?: boolean
  /**
   * For a root session: the message a resource that records commits (a GitHub repository)
   * gives the commit; by default one naming the session.
   */
  message?: string
}

/** What a commit did. */
export interface CommitReport {
  /** Paths whose change now lives in the parent (or the resources, for a root session). */
  applied: string[]
  /** Sibling sessions aborted by a winner-takes-all commit. */
  aborted: string[]
}

function seconds(time: number | Date): number {
  return time instanceof Date ? time.getTime() : time * 1000
}

/**
 * One copy-on-write view of the whole tree. Relative paths resolve against {@link cwd}.
 * Writes stay in the session until it commits.
 */
export class Session {
  readonly #native: native.Session
  readonly #handle: SessionHandle
  /** Where synchronous stat answers land (kind, size, mode, mtime, atime). */
  readonly #scratch = new Float64Array(STAT_SLOTS)
  /** A slab small reads are copied into; each result is a view of it, as Node does for
   * small buffers. A new slab replaces a nearly full one; the first is made at the first
   * read, so that a handle that never reads (a fork, say) allocates none. */
  #pool: Buffer = EMPTY
  #poolUsed = POOL_SIZE
  /** Text this handle wrote, read back without a native call (see cache.ts). */
  readonly #cache: ContentCache | null

  /** @internal */
  constructor(session: native.Session) {
    this.#native = session
    this.#handle = sync(() => session.handle())
    const changes = sync(() => session.changes())
    this.#cache = changes === null ? null : new ContentCache(changes)
  }

  /** The session's unique name. */
  get name(): string {
    return sync(() => this.#native.name)
  }

  /** The parent session, or `null` for a root session. */
  parent(): Session | null {
    const parent = sync(() => this.#native.parent())
    return parent === null ? null : new Session(parent)
  }

  /** Reads a whole file: a `Buffer`, or a string with an encoding. */
  readFile(path: string, options: Encoding | (ReadFileOptions & { encoding: Encoding })): Promise<string>
  readFile(path: string, options?: ReadFileOptions | null): Promise<Buffer>
  readFile(path: string, options?: Encoding | ReadFileOptions | null): Promise<Buffer | string> {
    // The hot path, written out: no closure, and a settled value needs one promise only.
    const encoding = encodingOf(options)
    const cached = this.#cache?.get(path)
    if (cached !== undefined) return Promise.resolve(fromText(cached, encoding))
    let result: Buffer | Promise<Buffer>
    try {
      // The offset first: it may start a new slab, which is then the one to pass.
      const offset = this.#poolStart()
      const now = fast.readFile(this.#handle, path, this.#pool, offset)
      result = this.#pooled(now ?? this.#native.readFile(path, this.#pool, offset))
    } catch (e) {
      return Promise.reject(convertError(e))
    }
    if (result instanceof Promise) {
      const converted = result.catch(rethrow)
      return encoding === null ? converted : converted.then((b) => b.toString(encoding))
    }
    return Promise.resolve(encoding === null ? result : result.toString(encoding))
  }

  /** Where the next pooled read goes; starts a new slab when this one is nearly full. Call it
   * before reading `#pool`, which it may replace. */
  #poolStart(): number {
    if (POOL_SIZE - this.#poolUsed < 4096) {
      this.#pool = Buffer.allocUnsafeSlow(POOL_SIZE)
      this.#poolUsed = 0
    }
    return this.#poolUsed
  }

  /** Turns a pooled read's length into a view of the slab (other results pass through). */
  #pooled<T>(result: number | T): Buffer | T {
    if (typeof result !== 'number') return result
    const view = this.#pool.subarray(this.#poolUsed, this.#poolUsed + result)
    this.#poolUsed += (result + 7) & ~7
    return view
  }

  /** Reads up to `length` bytes at `offset` (a ranged read; only those bytes are fetched). */
  read(path: string, options: { offset?: number; length: number }): Promise<Buffer> {
    return settle(() => this.#native.read(path, options.offset ?? 0, options.length))
  }

  /** Reads many whole files in one call. The results are views of one buffer when every
   * read completed at once. */
  readMany(paths: string[]): Promise<Buffer[]> {
    const lengths = new Float64Array(paths.length)
    let result: Buffer | Promise<Buffer[]>
    try {
      result = this.#native.readMany(paths.join('\0'), paths.length, lengths)
    } catch (e) {
      return Promise.reject(convertError(e))
    }
    if (result instanceof Promise) return result.catch(rethrow)
    return Promise.resolve(slices(result, lengths))
  }

  /** Creates or replaces a file. */
  writeFile(path: string, content: Data): Promise<void> {
    const before = this.#cache?.mark() ?? 0
    let result: boolean | Promise<boolean>
    try {
      const bytes = data(content)
      result = fast.writeFile(this.#handle, path, bytes) ?? this.#native.writeFile(path, bytes)
    } catch (e) {
      return Promise.reject(convertError(e))
    }
    if (result instanceof Promise) return result.then(ignore, rethrow)
    if (result) this.#cache?.remember(path, content, before)
    return RESOLVED
  }

  /** Appends to a file, creating it if needed. */
  appendFile(path: string, content: Data): Promise<void> {
    return settle(() => this.#native.appendFile(path, data(content)))
  }

  /** Writes `content` at `offset` into an existing file (only the touched chunks are copied). */
  write(path: string, offset: number, content: Data): Promise<void> {
    return settle(() => this.#native.write(path, offset, data(content)))
  }

  /** Sets a file's length (default 0); what grows reads as zeros. */
  truncate(path: string, length = 0): Promise<void> {
    return settle(() => this.#native.truncate(path, length))
  }

  /** Lists a directory: names, or {@link Dirent}s with `withFileTypes`. */
  readdir(path: string, options: { withFileTypes: true }): Promise<Dirent[]>
  readdir(path: string, options?: { withFileTypes?: false }): Promise<string[]>
  readdir(path: string, options?: { withFileTypes?: boolean }): Promise<string[] | Dirent[]> {
    return settleMap(
      () => this.#native.readdir(path),
      (entries) => (options?.withFileTypes ? entries.map((e) => new Dirent(path, e)) : entries.map((e) => e.name)),
    )
  }

  /** Describes `path`, following symbolic links. */
  stat(path: string): Promise<Stats> {
    return this.#stat(() => {
      const now = fast.stat(this.#handle, path, this.#scratch)
      return now === undefined ? this.#native.stat(path, this.#scratch) : now
    })
  }

  /** Describes `path` itself (a symbolic link is not followed). */
  lstat(path: string): Promise<Stats> {
    return this.#stat(() => {
      const now = fast.lstat(this.#handle, path, this.#scratch)
      return now === undefined ? this.#native.lstat(path, this.#scratch) : now
    })
  }

  #stat(call: () => string | null | undefined | Promise<native.StatInfo>): Promise<Stats> {
    let result: string | null | undefined | Promise<native.StatInfo>
    try {
      result = call()
    } catch (e) {
      return Promise.reject(convertError(e))
    }
    if (result instanceof Promise) return result.then(Stats.fromInfo, rethrow)
    return Promise.resolve(Stats.fromScratch(this.#scratch, result))
  }

  /** Describes many paths in one call. */
  statMany(paths: string[]): Promise<Stats[]> {
    const scratch = new Float64Array(paths.length * STAT_SLOTS)
    let result: (string | null | undefined)[] | Promise<native.StatInfo[]>
    try {
      result = this.#native.statMany(paths.join('\0'), paths.length, scratch)
    } catch (e) {
      return Promise.reject(convertError(e))
    }
    if (result instanceof Promise) return result.then((list) => list.map((info) => Stats.fromInfo(info)), rethrow)
    return Promise.resolve(result.map((version, i) => Stats.fromScratch(scratch, version, i * STAT_SLOTS)))
  }

  /** True when `path` exists (following symbolic links). */
  exists(path: string): Promise<boolean> {
    return settle(() => fast.exists(this.#handle, path) ?? this.#native.exists(path))
  }

  /** Creates a directory; with `recursive`, its missing parents too (and no error if it exists). */
  mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<void> {
    return settle(() => this.#native.mkdir(path, options?.mode ?? 0o755, options?.recursive ?? false))
  }

  /** Removes a file or link; with `recursive`, a directory and its content; with `force`, a
   * missing path is not an error. */
  rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    const removal = settle(() => this.#native.rm(path, options?.recursive ?? false, options?.force ?? false))
    // node:fs reports a directory without `recursive` as ERR_FS_EISDIR; so does this.
    return removal.catch((e: unknown) => {
      if (isMirageError(e) && e.code === 'EISDIR') e.code = 'ERR_FS_EISDIR'
      throw e
    })
  }

  /** Removes a file or symbolic link. */
  unlink(path: string): Promise<void> {
    return settle(() => this.#native.rm(path, false, false))
  }

  /** Removes an empty directory. */
  rmdir(path: string): Promise<void> {
    return settle(() => this.#native.rmdir(path))
  }

  /** Renames a file or directory (a directory moves with everything below it). */
  rename(from: string, to: string): Promise<void> {
    return settle(() => this.#native.rename(from, to))
  }

  /** Copies a file; the copy shares content with the original until either changes. */
  copyFile(from: string, to: string): Promise<void> {
    return settle(() => this.#native.copyFile(from, to))
  }

  /** Creates a symbolic link at `path` pointing to `target` (resolved in the virtual tree). */
  symlink(target: string, path: string): Promise<void> {
    return settle(() => this.#native.symlink(target, path))
  }

  /** Reads a symbolic link's target. */
  readlink(path: string): Promise<string> {
    return settle(() => this.#native.readlink(path))
  }

  /** The canonical absolute path, every symbolic link resolved. */
  realpath(path: string): Promise<string> {
    return settle(() => this.#native.realpath(path))
  }

  /** Sets permission bits (the exec bit matters). */
  chmod(path: string, mode: number): Promise<void> {
    return settle(() => this.#native.chmod(path, mode))
  }

  /** Sets access and modification times: `Date`s, or numbers in seconds as node:fs takes. */
  utimes(path: string, atime: number | Date, mtime: number | Date): Promise<void> {
    return settle(() => this.#native.utimes(path, seconds(atime), seconds(mtime)))
  }

  /** The working directory relative paths resolve against. */
  cwd(): string {
    return sync(() => this.#native.cwd())
  }

  /** Changes the working directory. */
  chdir(path: string): Promise<void> {
    return settle(() => this.#native.chdir(path))
  }

  /** The session's environment variables (a copy). */
  get env(): Record<string, string> {
    return sync(() => this.#native.env())
  }

  /** Sets an environment variable, or removes it with `undefined`. */
  setEnv(key: string, value: string | undefined): void {
    sync(() => this.#native.setEnv(key, value ?? null))
  }

  /** Forks in O(1): the fork sees everything this session sees, and from now on neither sees
   * the other's changes until one commits. */
  fork(name?: string): Session {
    return new Session(sync(() => this.#native.fork(name ?? null)))
  }

  /** What this session changed relative to where it started. */
  diff(): Promise<Change[]> {
    return settle(() => this.#native.diff()) as Promise<Change[]>
  }

  /** A unified text diff of one file. */
  diffText(path: string): Promise<string> {
    return settle(() => this.#native.diffText(path))
  }

  /**
   * Commits: a fork into its parent, a root session into the resources.
   *
   * A fork's commit is all-or-nothing and first-winner: if the parent changed a path this
   * session changed (a sibling committed first), it rejects with `ECONFLICT` naming the
   * paths, and this session keeps every change. A root session's commit writes to the
   * resources conditionally: an entry changed behind its back rejects with `ECONFLICT` before
   * anything is written.
   */
  commit(options?: CommitOptions): Promise<CommitReport> {
    return settle(() => this.#native.commit(options?.winnerTakesAll ?? false, options?.message))
  }

  /** Discards this session and its forks; their handles fail with `ENOENT` afterwards. */
  abort(): void {
    sync(() => this.#native.abort())
    this.#cache?.release()
  }

  /** Makes this session's changes durable in the store (persistent sessions only). */
  flush(): void {
    sync(() => this.#native.flush())
  }

  /** `stat` without a promise, for mounts that need no waiting (memory, local). */
  statSync(path: string): Stats {
    return Stats.fromScratch(this.#scratch, sync(() => fast.statSync(this.#handle, path, this.#scratch)))
  }

  /** `lstat` without a promise. */
  lstatSync(path: string): Stats {
    return Stats.fromScratch(this.#scratch, sync(() => fast.lstatSync(this.#handle, path, this.#scratch)))
  }

  /** `exists` without a promise. */
  existsSync(path: string): boolean {
    return sync(() => fast.existsSync(this.#handle, path))
  }

  /** `readFile` without a promise. */
  readFileSync(path: string, options: Encoding | (ReadFileOptions & { encoding: Encoding })): string
  readFileSync(path: string, options?: ReadFileOptions | null): Buffer
  readFileSync(path: string, options?: Encoding | ReadFileOptions | null): Buffer | string {
    const encoding = encodingOf(options)
    const cached = this.#cache?.get(path)
    if (cached !== undefined) return fromText(cached, encoding)
    const offset = this.#poolStart()
    const content = this.#pooled(sync(() => fast.readFileSync(this.#handle, path, this.#pool, offset)))
    return encoding === null ? content : content.toString(encoding)
  }

  /** `writeFile` without a promise. */
  writeFileSync(path: string, content: Data): void {
    const before = this.#cache?.mark() ?? 0
    if (sync(() => fast.writeFileSync(this.#handle, path, data(content)))) this.#cache?.remember(path, content, before)
  }

  /** `readdir` without a promise. */
  readdirSync(path: string, options: { withFileTypes: true }): Dirent[]
  readdirSync(path: string, options?: { withFileTypes?: false }): string[]
  readdirSync(path: string, options?: { withFileTypes?: boolean }): string[] | Dirent[] {
    const entries = sync(() => this.#native.readdirSync(path))
    return options?.withFileTypes ? entries.map((e) => new Dirent(path, e)) : entries.map((e) => e.name)
  }
}

/** What a custom resource's `stat` returns. */
export interface ResourceStat {
  /** File, directory or symbolic link. */
  kind: EntryKind
  /** Size in bytes (0 for directories). */
  size: number
  /** Permission bits; default `0o644` for files, `0o755` for directories. */
  mode?: number
  /** Modification time in milliseconds; default 0. */
  mtimeMs?: number
  /** Access time in milliseconds; default `mtimeMs`. */
  atimeMs?: number
  /** A token that changes whenever the entry changes; default `mtimeMs-size`. */
  version?: string
}

/** A directory entry a custom resource lists. */
export interface ResourceEntry {
  /** The entry's name. */
  name: string
  /** File, directory or symbolic link. */
  kind: EntryKind
}

/**
 * A resource written in TypeScript. Paths are inner paths (`/` is the resource's root).
 * `stat`, `read` and `list` are required; implement the write primitives you support (the
 * others fail with `ENOTSUP`, or `EROFS` when none is implemented). Throw errors with a
 * node:fs `code` (`ENOENT`, `EEXIST`, ...) and they reach the caller with that code.
 */
export interface Resource {
  /** A name for messages. */
  readonly name?: string
  /** Describes an entry without following a symbolic link. */
  stat(path: string): Promise<ResourceStat>
  /** Reads up to `length` bytes at `offset`. */
  read(path: string, offset: number, length: number): Promise<Uint8Array>
  /** Lists a directory. */
  list(path: string): Promise<ResourceEntry[]>
  /** Writes at an offset of an existing file. */
  write?(path: string, offset: number, data: Buffer): Promise<void>
  /** Creates an empty file (fails if it exists). */
  create?(path: string, mode: number): Promise<void>
  /** Creates a directory. */
  mkdir?(path: string, mode: number): Promise<void>
  /** Removes a file or link. */
  remove?(path: string): Promise<void>
  /** Removes an empty directory. */
  rmdir?(path: string): Promise<void>
  /** Renames an entry. */
  rename?(from: string, to: string): Promise<void>
  /** Sets a file's length. */
  truncate?(path: string, length: number): Promise<void>
  /** Creates a symbolic link. */
  symlink?(target: string, path: string): Promise<void>
  /** Reads a symbolic link. */
  readlink?(path: string): Promise<string>
  /** Sets permission bits. */
  setMode?(path: string, mode: number): Promise<void>
  /** Sets times in milliseconds (`undefined` leaves one unchanged). */
  setTimes?(path: string, atimeMs: number | undefined, mtimeMs: number | undefined): Promise<void>
}

const OPTIONAL_OPS = [
  'write',
  'create',
  'mkdir',
  'remove',
  'rmdir',
  'rename',
  'truncate',
  'symlink',
  'readlink',
  'setMode',
  'setTimes',
] as const

function statInfo(s: ResourceStat): native.StatInfo {
  const mtimeMs = s.mtimeMs ?? 0
  return {
    kind: s.kind,
    size: s.size,
    mode: s.mode ?? (s.kind === 'directory' ? 0o755 : 0o644),
    mtimeMs,
    atimeMs: s.atimeMs ?? mtimeMs,
    version: s.version ?? `${mtimeMs}-${s.size}`,
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Performs one native call on a custom resource; errors become coded replies. */
async function perform(r: Resource, call: native.ResourceCall): Promise<native.ResourceReply> {
  const { path } = call
  switch (call.op) {
    case 'stat':
      return { stat: statInfo(await r.stat(path)) }
    case 'read':
      return { data: toBuffer(await r.read(path, call.offset ?? 0, call.length ?? 0)) }
    case 'list':
      return { entries: (await r.list(path)).map((e) => ({ name: e.name, kind: e.kind })) }
    case 'readlink':
      return { target: await r.readlink!(path) }
    case 'write':
      await r.write!(path, call.offset ?? 0, call.data ?? Buffer.alloc(0))
      return {}
    case 'create':
      await r.create!(path, call.mode ?? 0o644)
      return {}
    case 'mkdir':
      await r.mkdir!(path, call.mode ?? 0o755)
      return {}
    case 'remove':
      await r.remove!(path)
      return {}
    case 'rmdir':
      await r.rmdir!(path)
      return {}
    case 'rename':
      await r.rename!(path, call.to ?? path)
      return {}
    case 'truncate':
      await r.truncate!(path, call.length ?? 0)
      return {}
    case 'symlink':
      await r.symlink!(call.target ?? '', path)
      return {}
    case 'setMode':
      await r.setMode!(path, call.mode ?? 0o644)
      return {}
    case 'setTimes':
      await r.setTimes!(path, call.atimeMs ?? undefined, call.mtimeMs ?? undefined)
      return {}
    default:
      return { error: { code: 'ENOTSUP', message: `unknown primitive '${call.op}'` } }
  }
}

/** Wraps a TypeScript resource so that Rust can call it. */
function customResource(r: Resource): native.Resource {
  const ops = ['stat', 'read', 'list', ...OPTIONAL_OPS.filter((op) => typeof r[op] === 'function')]
  const dispatch = async (call: native.ResourceCall): Promise<native.ResourceReply> => {
    try {
      return await perform(r, call)
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown }
      const code = typeof err?.code === 'string' ? err.code : 'EIO'
      return { error: { code, message: String(err?.message ?? e) } }
    }
  }
  return native.custom(dispatch, ops, r.name ?? 'custom')
}

/** A native resource: `memory()`, `local(dir)`, `remote(url)`. */
export type NativeResource = native.Resource

/** A filesystem in RAM. */
export function memory(): NativeResource {
  return native.memory()
}

/** A host directory, confined to it: neither `..` nor a symbolic link inside it reaches out. */
export function local(dir: string, options?: { readOnly?: boolean }): NativeResource {
  return sync(() => native.local(dir, options?.readOnly ?? false))
}

/**
 * A remote resource named by a URL: an S3 bucket or prefix (`s3://bucket/prefix`), Google
 * Cloud Storage (`gs://bucket`), Azure Blob Storage (`az://container`), a WebDAV collection
 * (`webdav://`, `davs://`, `nextcloud://host/user/path`), a GitHub repository, read-only
 * (`github://owner/repo@ref/path`). Options go in the
 * query string (`?endpoint=http://127.0.0.1:9000&region=eu-west-1&cache_ttl=30s`); credentials
 * come from the usual environment variables (and the AWS profile files). Nothing is fetched
 * until the first operation; operations on it settle once the server has answered.
 *
 * ```ts
 * mirage.mount('/data', remote('s3://my-bucket/data?region=eu-west-1'))
 * ```
 */
export function remote(url: string): NativeResource {
  return sync(() => native.remote(url))
}

/**
 * Sets (or, with `null`, lifts) the most file content the sessions of this process may hold in
 * memory, in bytes. Past it, writes fail with `ENOSPC`, as on a full disk, and change nothing;
 * committing or aborting sessions gives the room back, and so does overwriting or removing a
 * file for its content (each entry a session holds counts 1 KiB or more until the session
 * goes). Forks share the content they have not changed, so it counts once. Set it before sessions take in content
 * (content taken in earlier is not counted). There is no limit by default.
 *
 * ```ts
 * setContentLimit(2 * 1024 ** 3) // 2 GiB
 * ```
 */
export function setContentLimit(bytes: number | null): void {
  sync(() => native.setContentLimit(bytes ?? undefined))
}

/** How much content the sessions of this process hold against the limit. */
export interface ContentUsage {
  /** Bytes counted now (0 while there is no limit). */
  held: number
  /** The limit in bytes, or `null` when there is none. */
  limit: number | null
  /** Writes the limit has refused so far. */
  refused: number
}

/** How much content the sessions of this process hold against the limit set by `setContentLimit`. */
export function contentUsage(): ContentUsage {
  const usage = native.contentUsage()
  return { held: usage.held, limit: usage.limit ?? null, refused: usage.refused }
}

/** A mount of the table. */
export interface MountInfo {
  /** The mount point. */
  path: string
  /** Whether writes are refused. */
  readOnly: boolean
}

/** A summary of one session. */
export interface SessionInfo {
  /** Its unique name. */
  name: string
  /** Its parent's name, for a fork. */
  parent?: string
  /** How many paths it changed. */
  changes: number
}

/** The mount table and every session: the entry point. */
export class Mirage {
  readonly #native: native.Mirage

  /** An empty tree with in-memory sessions (pass nothing), or the `native` handle of one. */
  constructor(handle?: native.Mirage) {
    this.#native = handle ?? new native.Mirage()
  }

  /** Opens (or creates) a persistent session store in `dir`, restoring every session in it.
   * Resources are not stored: mount them again after opening. */
  static open(dir: string): Mirage {
    return new Mirage(sync(() => native.Mirage.open(dir)))
  }

  /** Mounts a resource: `memory()`, `local(dir)`, or an object implementing {@link Resource}. */
  mount(path: string, resource: NativeResource | Resource, options?: { readOnly?: boolean }): void {
    const handle = resource instanceof native.Resource ? resource : customResource(resource)
    sync(() => this.#native.mount(path, handle, options?.readOnly ?? false))
  }

  /** Unmounts the resource at `path`. */
  unmount(path: string): void {
    sync(() => this.#native.unmount(path))
  }

  /** The mounts, in path order. */
  mounts(): MountInfo[] {
    return this.#native.mounts()
  }

  /** Creates a root session: a copy-on-write view whose commits go to the resources. */
  createSession(name: string): Session {
    return new Session(sync(() => this.#native.createSession(name)))
  }

  /** The existing session called `name`. */
  session(name: string): Session {
    return new Session(sync(() => this.#native.session(name)))
  }

  /** Every session. */
  sessions(): SessionInfo[] {
    return this.#native.sessions().map((s) => (s.parent == null ? { name: s.name, changes: s.changes } : { ...s, parent: s.parent }))
  }

  /** Makes everything recorded so far durable (persistent stores only). */
  flush(): void {
    sync(() => this.#native.flush())
  }
}

/**
 * What a session handle wrote lately, kept on the JavaScript side so that reading it back
 * costs no crossing into the native layer.
 *
 * Validity rests on the session's change counter, a number the native layer moves on every
 * change to what the session shows (a write through any handle, a commit into or out of the
 * session, an abort) and that JavaScript reads directly from shared memory. The cache holds
 * while the counter stands where it last looked. A write through this handle moves it by
 * exactly one, so the cache records its own writes and stays valid; any other movement
 * empties it. Only plain writes are recorded: an absolute, normalised path with no symbolic
 * link on the way, so that no other path can name the same file.
 *
 * @internal
 * @packageDocumentation
 */

/** Files larger than this are not cached. */
export const CACHE_ENTRY_MAX = 64 * 1024

/** Bytes of content one handle caches at most; the oldest entries go first. */
export const CACHE_BUDGET = 8 * 1024 * 1024

/** Content as written: a string (immutable) or a private copy of the bytes. */
export type Cached = string | Buffer

/** @internal */
export class ContentCache {
  readonly #changes: Uint32Array
  #seen: number
  readonly #entries = new Map<string, Cached>()
  #bytes = 0

  /** `changes` is the session's one-slot change counter. */
  constructor(changes: Uint32Array) {
    this.#changes = changes
    this.#seen = changes[0] ?? 0
  }

  /** The counter now: taken just before a write, and handed to {@link remember}. */
  mark(): number {
    return this.#changes[0] ?? 0
  }

  /** What a plain write through this handle last put at `path`, if still current. */
  get(path: string): Cached | undefined {
    if (this.#entries.size === 0) return undefined
    const now = this.#changes[0] ?? 0
    if (now !== this.#seen) {
      this.#clear(now)
      return undefined
    }
    return this.#entries.get(path)
  }

  /** Records a plain write of `content` to `path` that started when the counter read
   * `before`. `content` must not change afterwards (the caller passes a copy). */
  remember(path: string, content: Cached, before: number): void {
    const now = this.#changes[0] ?? 0
    // Anything but exactly this write since the last look: what is cached may be stale.
    if (before !== this.#seen || ((now - before) >>> 0) !== 1) {
      this.#clear(now)
      return
    }
    this.#seen = now
    const size = sizeOf(content)
    const old = this.#entries.get(path)
    if (old !== undefined) {
      this.#entries.delete(path)
      this.#bytes -= sizeOf(old)
    }
    if (size > CACHE_ENTRY_MAX) return
    this.#entries.set(path, content)
    this.#bytes += size
    if (this.#bytes > CACHE_BUDGET) this.#evict()
  }

  /** Drops the oldest entries down to three quarters of the budget, in one pass (a pass per
   * write would step over every entry deleted before it). */
  #evict(): void {
    for (const [oldest, value] of this.#entries) {
      if (this.#bytes <= (CACHE_BUDGET / 4) * 3) break
      this.#entries.delete(oldest)
      this.#bytes -= sizeOf(value)
    }
  }

  #clear(now: number): void {
    this.#entries.clear()
    this.#bytes = 0
    this.#seen = now
  }
}

function sizeOf(content: Cached): number {
  return typeof content === 'string' ? content.length : content.byteLength
}

/** A fresh result from cached content: a new `Buffer`, or text in `encoding`. */
export function fromCache(content: Cached, encoding: BufferEncoding | null): Buffer | string {
  if (encoding === null) return typeof content === 'string' ? Buffer.from(content) : Buffer.from(content)
  if (typeof content === 'string' && (encoding === 'utf8' || encoding === 'utf-8')) return content
  return (typeof content === 'string' ? Buffer.from(content) : content).toString(encoding)
}

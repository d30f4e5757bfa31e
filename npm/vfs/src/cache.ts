/**
 * The text a session handle wrote lately, kept on the JavaScript side so that reading it back
 * costs no crossing into the native layer and no decoding.
 *
 * Validity rests on the session's change counter, a number the native layer moves on every
 * change to what the session shows (a write through any handle, a commit into or out of the
 * session, an abort) and that JavaScript reads directly from shared memory. The cache holds
 * while the counter stands where it last looked. A write through this handle moves it by
 * exactly one, so the cache records its own writes and stays valid; any other movement
 * empties it. Only plain writes are recorded: an absolute, normalised path with no symbolic
 * link on the way, so that no other path can name the same file.
 *
 * Only text is kept, as the string it was written as: strings are immutable, so keeping one
 * costs a map entry and no copy. Bytes would need a private copy (the caller may change its
 * buffer afterwards), which cost a write more than a later read through the native layer
 * saves; a write of bytes drops the path's entry. When the budget is spent, the oldest
 * entries go first.
 *
 * @internal
 * @packageDocumentation
 */

/** Text longer than this (in UTF-16 units) is not cached. */
export const CACHE_ENTRY_MAX = 64 * 1024

/** UTF-16 units of text one handle caches at most, overheads included. */
export const CACHE_BUDGET = 4 * 1024 * 1024

/** What an entry costs besides its text (the map entry), in the budget's units. */
const ENTRY_OVERHEAD = 32

/** @internal */
export class ContentCache {
  readonly #changes: Uint32Array
  #seen: number
  /** Path to text, oldest first (a path written again moves to the end). */
  readonly #entries = new Map<string, string>()
  /** What the entries cost, in the budget's units. */
  #size = 0

  /** `changes` is the session's one-slot change counter. */
  constructor(changes: Uint32Array) {
    this.#changes = changes
    this.#seen = changes[0] ?? 0
  }

  /** The counter now: taken just before a write, and handed to {@link remember}. */
  mark(): number {
    return this.#changes[0] ?? 0
  }

  /** The text a plain write through this handle last put at `path`, if still current. */
  get(path: string): string | undefined {
    if (this.#entries.size === 0) return undefined
    const now = this.#changes[0] ?? 0
    if (now !== this.#seen) {
      this.#clear(now)
      return undefined
    }
    return this.#entries.get(path)
  }

  /** Records a plain write of `content` to `path` that started when the counter read
   * `before`: text is kept, bytes forget the path. */
  remember(path: string, content: string | Uint8Array, before: number): void {
    const now = this.#changes[0] ?? 0
    // Anything but exactly this write since the last look: what is cached may be stale.
    if (before !== this.#seen || ((now - before) >>> 0) !== 1) {
      this.#clear(now)
      return
    }
    this.#seen = now
    // An empty map spares hashing the path (byte writes keep it empty).
    const old = this.#entries.size === 0 ? undefined : this.#entries.get(path)
    if (old !== undefined) {
      this.#entries.delete(path)
      this.#size -= old.length + ENTRY_OVERHEAD
    }
    if (typeof content !== 'string' || content.length > CACHE_ENTRY_MAX) return
    this.#entries.set(path, content)
    this.#size += content.length + ENTRY_OVERHEAD
    while (this.#size > CACHE_BUDGET) this.#dropOldest()
  }

  /** Forgets every entry: the session is gone. */
  release(): void {
    this.#clear(this.mark())
  }

  #dropOldest(): void {
    for (const [path, text] of this.#entries) {
      this.#entries.delete(path)
      this.#size -= text.length + ENTRY_OVERHEAD
      return
    }
  }

  /** Forgets every entry. */
  #clear(now: number): void {
    this.#entries.clear()
    this.#size = 0
    this.#seen = now
  }
}

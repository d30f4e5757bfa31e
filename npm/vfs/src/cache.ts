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
 * Bytes are copied into slabs, a few large blocks that entries are ranges of: one copy into
 * a slab costs a fraction of making a new `Buffer` per write. When the budget is spent, the
 * oldest slab goes, with every entry still in it. Text is kept as the string it was written
 * as (strings are immutable) and charged to the slab of its time.
 *
 * @internal
 * @packageDocumentation
 */

/** Files larger than this are not cached. */
export const CACHE_ENTRY_MAX = 64 * 1024

/** Bytes of content one handle caches at most; the oldest slab goes first. */
export const CACHE_BUDGET = 8 * 1024 * 1024

/** The first slab's size; each next one doubles, up to {@link SLAB_MAX}. */
const SLAB_MIN = 16 * 1024
const SLAB_MAX = 1024 * 1024

/** What an entry costs besides its content (the map entry and its record). */
const ENTRY_OVERHEAD = 64

/** What {@link ContentCache.get} returns: the text written, or a view of the cached bytes,
 * which the caller copies before handing out. */
export type Cached = string | Uint8Array

/** A block that cached bytes are copied into. */
class Slab {
  readonly bytes: Uint8Array
  /** Where the next bytes go. */
  used = 0
  /** What the entries placed here cost, text included; the slab is full at its size. */
  charged = 0
  /** Paths of the entries placed here (some may have been replaced since). */
  readonly paths: string[] = []

  constructor(size: number) {
    // Not zeroed: only ranges entries were copied into are ever read.
    this.bytes = Buffer.allocUnsafeSlow(size)
  }
}

/** One cached file: text, or `length` bytes at `offset` of its slab. */
class Entry {
  constructor(
    readonly slab: Slab,
    readonly offset: number,
    readonly length: number,
    readonly text: string | null,
  ) {}
}

/** @internal */
export class ContentCache {
  readonly #changes: Uint32Array
  #seen: number
  readonly #entries = new Map<string, Entry>()
  /** Oldest first; the last one takes new entries. */
  #slabs: Slab[] = []
  /** The sum of the slabs' sizes. */
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

  /** What a plain write through this handle last put at `path`, if still current. */
  get(path: string): Cached | undefined {
    if (this.#entries.size === 0) return undefined
    const now = this.#changes[0] ?? 0
    if (now !== this.#seen) {
      this.#clear(now)
      return undefined
    }
    const entry = this.#entries.get(path)
    if (entry === undefined) return undefined
    return entry.text ?? entry.slab.bytes.subarray(entry.offset, entry.offset + entry.length)
  }

  /** Records a plain write of `content` to `path` that started when the counter read
   * `before`. Bytes are copied; the caller may change them afterwards. */
  remember(path: string, content: string | Uint8Array, before: number): void {
    const now = this.#changes[0] ?? 0
    // Anything but exactly this write since the last look: what is cached may be stale.
    if (before !== this.#seen || ((now - before) >>> 0) !== 1) {
      this.#clear(now)
      return
    }
    this.#seen = now
    const text = typeof content === 'string' ? content : null
    const length = text === null ? content.length : text.length
    if (length > CACHE_ENTRY_MAX) {
      this.#entries.delete(path)
      return
    }
    const cost = length + ENTRY_OVERHEAD
    const slab = this.#room(cost)
    let offset = 0
    if (typeof content !== 'string') {
      offset = slab.used
      slab.bytes.set(content, offset)
      slab.used += length
    }
    slab.charged += cost
    slab.paths.push(path)
    this.#entries.set(path, new Entry(slab, offset, length, text))
  }

  /** A slab with `cost` to spare: the newest, or a new one (dropping the oldest as the
   * budget requires). */
  #room(cost: number): Slab {
    const last = this.#slabs[this.#slabs.length - 1]
    if (last !== undefined && last.charged + cost <= last.bytes.length) return last
    const size = Math.max(cost, Math.min(SLAB_MAX, (last?.bytes.length ?? SLAB_MIN / 2) * 2))
    while (this.#slabs.length > 0 && this.#size + size > CACHE_BUDGET) this.#dropOldest()
    const slab = new Slab(size)
    this.#slabs.push(slab)
    this.#size += size
    return slab
  }

  #dropOldest(): void {
    const oldest = this.#slabs.shift()
    if (oldest === undefined) return
    this.#size -= oldest.bytes.length
    for (const path of oldest.paths) {
      if (this.#entries.get(path)?.slab === oldest) this.#entries.delete(path)
    }
  }

  /** Forgets every entry; keeps the newest slab, emptied, for what comes next. */
  #clear(now: number): void {
    this.#entries.clear()
    this.#seen = now
    const last = this.#slabs[this.#slabs.length - 1]
    this.#slabs = []
    this.#size = 0
    if (last === undefined) return
    last.used = 0
    last.charged = 0
    last.paths.length = 0
    this.#slabs.push(last)
    this.#size = last.bytes.length
  }
}

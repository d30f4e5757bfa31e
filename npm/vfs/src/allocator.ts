/**
 * Keeps the native layer's allocator (mimalloc) off transparent huge pages.
 *
 * mimalloc reads its options from the environment once, as the addon loads, before any code
 * of ours runs. With huge pages its heap grows by zeroed 2 MiB pages, and a small-file write
 * costs about twice as much in some runs as in others. A value the user set wins. Imported
 * before the addon; {@link restoreEnvironment} removes the variable again afterwards, so that
 * child processes do not inherit it.
 *
 * @internal
 * @packageDocumentation
 */

const VARIABLE = 'MIMALLOC_ALLOW_THP'
const userValue = process.env[VARIABLE]
if (userValue === undefined) process.env[VARIABLE] = '0'

/** Puts the environment back as it was before the addon loaded. */
export function restoreEnvironment(): void {
  if (userValue === undefined) delete process.env[VARIABLE]
}

/**
 * Settings for the native layer's allocator (mimalloc), which reads them from the environment
 * once, as the addon loads, before any code of ours runs.
 *
 * - `MIMALLOC_PURGE_DELAY=10000`: memory freed and not reused is given back to the system
 *   after 10 s rather than mimalloc's 1 s, as jemalloc does by default. A page given back
 *   costs a page fault when it is used again, about 1.7 µs on the virtual machines measured;
 *   with the 1 s delay, a burst of small-file writes that followed a second of other work
 *   re-faulted the memory the previous burst had freed, a third of each write's cost.
 *
 * Transparent huge pages are kept off at build time (the addon's allocator never asks for
 * them). A value the user set wins. Imported before the addon; {@link restoreEnvironment}
 * removes the variables again afterwards, so that child processes do not inherit them.
 *
 * @internal
 * @packageDocumentation
 */

const SETTINGS: Record<string, string> = { MIMALLOC_PURGE_DELAY: '10000' }

/** The variables this module set (the user had not). */
const ours = Object.keys(SETTINGS).filter((name) => process.env[name] === undefined)
for (const name of ours) process.env[name] = SETTINGS[name]

/** Puts the environment back as it was before the addon loaded. */
export function restoreEnvironment(): void {
  for (const name of ours) delete process.env[name]
}

// Shared helpers for the @mirage/vfs tests.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'

import { Mirage, memory } from '@mirage/vfs'

/** A Mirage with a memory mount at /data and a root session `main`. */
export function setup() {
  const mirage = new Mirage()
  mirage.mount('/data', memory())
  return { mirage, main: mirage.createSession('main') }
}

/** A fresh temporary directory. */
export function tempDir(prefix = 'mirage-test-') {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Asserts that `promise` rejects with a Mirage error of `code`; returns the error. */
export async function rejectsWith(promise, code) {
  try {
    await promise
  } catch (e) {
    assert.ok(e instanceof Error, 'an Error')
    assert.equal(e.code, code, e.message)
    return e
  }
  assert.fail(`expected ${code}`)
}

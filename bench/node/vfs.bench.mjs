// @mirage/vfs beside node:fs/promises on tmpfs and just-bash's InMemoryFs, in one run:
// small-file writeFile, readFile and stat (1 KiB, awaited one at a time), the sync and batch
// variants, and fork of a 100,000-file session. Every figure is the median of RUNS runs.
//
// Usage: node bench/node/vfs.bench.mjs [RUNS] (default 7)
import { mkdtempSync, rmSync } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

import { InMemoryFs } from 'just-bash'
import { Mirage, memory } from '@mirage/vfs'

const RUNS = Math.max(1, Number(process.argv[2] ?? 7))
const FILES = 5_000
const CONTENT = Buffer.alloc(1024, 'a')

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const names = (run, prefix) => Array.from({ length: FILES }, (_, i) => `${prefix}/r${run}-${i}`)

/** Times `body` over the run's file names; returns operations per second. */
async function measure(body) {
  const start = performance.now()
  await body()
  return FILES / ((performance.now() - start) / 1000)
}

/** The three file systems, each with the same operations. */
function subjects(shm) {
  const mirage = new Mirage()
  mirage.mount('/m', memory())
  const s = mirage.createSession('bench')
  // A second handle on the same session: it did not write the files, so its reads all cross
  // into Rust (the writing handle answers from its content cache).
  const other = mirage.session('bench')
  const bash = new InMemoryFs()
  return {
    mirage: {
      prefix: '/m',
      write: (n) => s.writeFile(n, CONTENT),
      read: (n) => s.readFile(n),
      readUncached: (n) => other.readFile(n),
      stat: (n) => s.stat(n),
      writeSync: (n) => s.writeFileSync(n, CONTENT),
      readSync: (n) => s.readFileSync(n),
      statSync: (n) => s.statSync(n),
      readMany: (list) => s.readMany(list),
      statMany: (list) => s.statMany(list),
    },
    justBash: {
      prefix: '/m',
      setup: () => bash.mkdir('/m', { recursive: true }),
      write: (n) => bash.writeFile(n, CONTENT),
      read: (n) => bash.readFileBuffer(n),
      stat: (n) => bash.stat(n),
    },
    nodeFs: {
      prefix: shm,
      write: (n) => fsp.writeFile(n, CONTENT),
      read: (n) => fsp.readFile(n),
      stat: (n) => fsp.stat(n),
    },
  }
}

/** Runs every operation of every subject once per run, interleaved so that no subject
 * always runs first; returns medians of operations per second. Run 0 warms up. */
async function compare() {
  const shm = mkdtempSync('/dev/shm/mirage-bench-')
  try {
    const all = subjects(shm)
    await all.justBash.setup()
    const rates = {}
    const record = (who, op, value, run) => {
      if (run === 0) return
      ;((rates[who] ??= {})[op] ??= []).push(value)
    }
    for (let run = 0; run <= RUNS; run++) {
      for (const [who, fs] of Object.entries(all)) {
        const list = names(run, fs.prefix)
        for (const op of ['write', 'read', 'stat']) {
          record(who, op, await measure(async () => {
            for (const n of list) await fs[op](n)
          }), run)
        }
        if (who !== 'mirage') continue
        record(who, 'readUncached', await measure(async () => {
          for (const n of list) await fs.readUncached(n)
        }), run)
        const syncList = names(run + RUNS + 1, fs.prefix)
        record(who, 'writeSync', await measure(async () => {
          for (const n of syncList) fs.writeSync(n)
        }), run)
        record(who, 'readSync', await measure(async () => {
          for (const n of list) fs.readSync(n)
        }), run)
        record(who, 'statSync', await measure(async () => {
          for (const n of list) fs.statSync(n)
        }), run)
        record(who, 'readMany', await measure(() => fs.readMany(list)), run)
        record(who, 'statMany', await measure(() => fs.statMany(list)), run)
      }
    }
    const medians = {}
    for (const [who, ops] of Object.entries(rates)) {
      medians[who] = Object.fromEntries(Object.entries(ops).map(([op, values]) => [op, median(values)]))
    }
    return medians
  } finally {
    rmSync(shm, { recursive: true, force: true })
  }
}

function forkCost() {
  const mirage = new Mirage()
  mirage.mount('/m', memory())
  const s = mirage.createSession('big')
  const sizes = [10, 100_000]
  const out = {}
  let written = 0
  for (const size of sizes) {
    for (; written < size; written++) s.writeFileSync(`/m/${written}`, 'x')
    const times = []
    for (let i = 0; i < 51; i++) {
      const start = performance.now()
      const fork = s.fork()
      times.push(performance.now() - start)
      fork.abort()
    }
    out[size] = median(times)
  }
  return out
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const ratio = (a, b) => `${(a / b).toFixed(2)}x`

const { mirage: m, justBash: j, nodeFs: n } = await compare()
const forks = forkCost()

console.log(`# @mirage/vfs benchmarks (Node ${process.version}, median of ${RUNS} runs, ${FILES} files of 1 KiB)\n`)
console.log('## Awaited, one call at a time (ops/s)\n')
console.log('| operation | @mirage/vfs (memory mount) | just-bash InMemoryFs | node:fs/promises (tmpfs) | vs just-bash | vs node:fs |')
console.log('|---|---:|---:|---:|---:|---:|')
const rows = [
  ['writeFile', 'write', 'write'],
  ['readFile (the writing handle: cached)', 'read', 'read'],
  ['readFile (another handle: from Rust)', 'readUncached', 'read'],
  ['stat', 'stat', 'stat'],
]
for (const [label, op, native] of rows) {
  console.log(`| ${label} | ${fmt(m[op])} | ${fmt(j[native])} | ${fmt(n[native])} | ${ratio(m[op], j[native])} | ${ratio(m[op], n[native])} |`)
}
console.log('\n## Sync and batch variants of @mirage/vfs (ops/s)\n')
console.log('| call | ops/s |\n|---|---:|')
console.log(`| writeFileSync | ${fmt(m.writeSync)} |`)
console.log(`| readFileSync | ${fmt(m.readSync)} |`)
console.log(`| statSync | ${fmt(m.statSync)} |`)
console.log(`| readMany (${FILES} paths per call) | ${fmt(m.readMany)} |`)
console.log(`| statMany (${FILES} paths per call) | ${fmt(m.statMany)} |`)
console.log('\n## Fork\n')
console.log('| session size | fork (median of 51) |\n|---:|---:|')
for (const [size, ms] of Object.entries(forks)) console.log(`| ${fmt(Number(size))} files | ${(ms * 1000).toFixed(1)} µs |`)

// @mirage/vfs beside node:fs/promises on tmpfs and just-bash's InMemoryFs, in one run:
// small-file writeFile (bytes and text), readFile and stat (1 KiB, awaited one at a time), the
// sync and batch variants, writes into a file system already holding 100,000 files, and fork
// of a 100,000-file session. Every figure is the median of RUNS runs.
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
const TEXT = `${'a'.repeat(1023)}\n`
const BIG = 100_000

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

/** The three file systems, each empty, with the same operations. */
function subjects(shm) {
  const mirage = new Mirage()
  mirage.mount('/m', memory())
  const s = mirage.createSession('bench')
  const bash = new InMemoryFs()
  return {
    mirage: {
      prefix: '/m',
      setup: () => {},
      write: (n) => s.writeFile(n, CONTENT),
      writeText: (n) => s.writeFile(n, TEXT),
      read: (n) => s.readFile(n),
      readText: (n) => s.readFile(n, 'utf8'),
      stat: (n) => s.stat(n),
      writeSync: (n) => s.writeFileSync(n, CONTENT),
      readSync: (n) => s.readFileSync(n),
      statSync: (n) => s.statSync(n),
      readMany: (list) => s.readMany(list),
      statMany: (list) => s.statMany(list),
      fill: (n) => s.writeFileSync(n, CONTENT),
      done: () => s.abort(),
    },
    justBash: {
      prefix: '/m',
      setup: () => bash.mkdir('/m', { recursive: true }),
      write: (n) => bash.writeFile(n, CONTENT),
      writeText: (n) => bash.writeFile(n, TEXT),
      read: (n) => bash.readFileBuffer(n),
      readText: (n) => bash.readFile(n, 'utf8'),
      stat: (n) => bash.stat(n),
      fill: (n) => bash.writeFileSync(n, CONTENT),
      done: () => {},
    },
    nodeFs: {
      prefix: shm,
      setup: () => {},
      write: (n) => fsp.writeFile(n, CONTENT),
      writeText: (n) => fsp.writeFile(n, TEXT),
      read: (n) => fsp.readFile(n),
      readText: (n) => fsp.readFile(n, 'utf8'),
      stat: (n) => fsp.stat(n),
      done: () => rmSync(shm, { recursive: true, force: true }),
    },
  }
}

/** Runs every operation of every subject once per run, interleaved so that no subject
 * always runs first, each run on empty file systems; returns medians of operations per
 * second. Run 0 warms up. */
async function compare() {
  const rates = {}
  const record = (who, op, value, run) => {
    if (run === 0) return
    ;((rates[who] ??= {})[op] ??= []).push(value)
  }
  const timed = async (who, op, run, body) => record(who, op, await measure(body), run)
  for (let run = 0; run <= RUNS; run++) {
    const shm = mkdtempSync('/dev/shm/mirage-bench-')
    const all = subjects(shm)
    try {
      // Each run starts with the next subject: whatever one leaves behind (garbage to collect,
      // caches to refill) falls on each of the others in turn.
      const order = Object.entries(all)
      for (const [who, fs] of [...order.slice(run % order.length), ...order.slice(0, run % order.length)]) {
        await fs.setup()
        const list = names(run, fs.prefix)
        const textList = names(`${run}t`, fs.prefix)
        await timed(who, 'write', run, async () => {
          for (const n of list) await fs.write(n)
        })
        await timed(who, 'writeText', run, async () => {
          for (const n of textList) await fs.writeText(n)
        })
        await timed(who, 'read', run, async () => {
          for (const n of list) await fs.read(n)
        })
        await timed(who, 'readText', run, async () => {
          for (const n of textList) await fs.readText(n)
        })
        await timed(who, 'stat', run, async () => {
          for (const n of list) await fs.stat(n)
        })
        if (who !== 'mirage') continue
        const syncList = names(`${run}s`, fs.prefix)
        await timed(who, 'writeSync', run, async () => {
          for (const n of syncList) fs.writeSync(n)
        })
        await timed(who, 'readSync', run, async () => {
          for (const n of list) fs.readSync(n)
        })
        await timed(who, 'statSync', run, async () => {
          for (const n of list) fs.statSync(n)
        })
        await timed(who, 'readMany', run, () => fs.readMany(list))
        await timed(who, 'statMany', run, () => fs.statMany(list))
      }
    } finally {
      for (const fs of Object.values(all)) fs.done()
    }
  }
  return medians(rates)
}

/** Writes of new files into a file system that already holds {@link BIG} files, for the
 * two in-process ones (filled untimed, once); medians of operations per second. */
async function writesWhenBig() {
  const all = subjects('')
  const rates = {}
  try {
    for (const who of ['mirage', 'justBash']) {
      await all[who].setup()
      for (let i = 0; i < BIG; i++) all[who].fill(`/m/big-${i}`)
    }
    for (let run = 0; run <= RUNS; run++) {
      for (const who of ['mirage', 'justBash']) {
        const list = names(`${run}b`, '/m')
        const rate = await measure(async () => {
          for (const n of list) await all[who].write(n)
        })
        if (run > 0) ((rates[who] ??= {}).write ??= []).push(rate)
      }
    }
  } finally {
    all.mirage.done()
  }
  return medians(rates)
}

/** The median of every list of rates. */
function medians(rates) {
  const out = {}
  for (const [who, ops] of Object.entries(rates)) {
    out[who] = Object.fromEntries(Object.entries(ops).map(([op, values]) => [op, median(values)]))
  }
  return out
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
const big = await writesWhenBig()
const forks = forkCost()

console.log(`# @mirage/vfs benchmarks (Node ${process.version}, median of ${RUNS} runs, ${FILES} files of 1 KiB)\n`)
console.log('## Awaited, one call at a time (ops/s)\n')
console.log('| operation | @mirage/vfs (memory mount) | just-bash InMemoryFs | node:fs/promises (tmpfs) | vs just-bash | vs node:fs |')
console.log('|---|---:|---:|---:|---:|---:|')
const rows = [
  ['writeFile (bytes)', 'write', 'write'],
  ['writeFile (text)', 'writeText', 'writeText'],
  ['readFile (bytes)', 'read', 'read'],
  ['readFile (text, as written by this handle)', 'readText', 'readText'],
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
console.log(`\n## writeFile (bytes) into a file system holding ${fmt(BIG)} files (ops/s)\n`)
console.log('| @mirage/vfs | just-bash InMemoryFs | vs just-bash |\n|---:|---:|---:|')
console.log(`| ${fmt(big.mirage.write)} | ${fmt(big.justBash.write)} | ${ratio(big.mirage.write, big.justBash.write)} |`)
console.log('\n## Fork\n')
console.log('| session size | fork (median of 51) |\n|---:|---:|')
for (const [size, ms] of Object.entries(forks)) console.log(`| ${fmt(Number(size))} files | ${(ms * 1000).toFixed(1)} µs |`)

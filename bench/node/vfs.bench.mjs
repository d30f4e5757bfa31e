// @mirage/vfs beside node:fs/promises on tmpfs and just-bash's InMemoryFs, in one run:
// small-file writeFile (bytes and text), readFile and stat (1 KiB, awaited one at a time), the
// sync and batch variants, writes into a file system already holding 100,000 files, and fork
// of a 100,000-file session. Every figure is the median of RUNS runs. Mirage and just-bash
// take turns of a few hundred files within each run, so that both meet the same conditions;
// each ratio to just-bash is the median of the runs' ratios, with their range.
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

/** Files each of the two in-process subjects handles per turn when they take turns. */
const TURN = 250

/** The awaited operations, each with the list of names it works on. */
const AWAITED = [
  ['write', 'list'],
  ['writeText', 'textList'],
  ['read', 'list'],
  ['readText', 'textList'],
  ['stat', 'list'],
]

/**
 * Runs `op` over `list` for Mirage and just-bash taking turns of {@link TURN} files, the
 * first of each pair of turns alternating, so that both meet the same state of the machine
 * and of the process (collections, page faults, other load); returns each one's total time in
 * milliseconds. Both work on the same names, each in its own file system.
 */
async function inTurns(all, op, list) {
  const time = { mirage: 0, justBash: 0 }
  for (let start = 0, turn = 0; start < list.length; start += TURN, turn++) {
    const chunk = list.slice(start, start + TURN)
    for (const who of turn % 2 ? ['justBash', 'mirage'] : ['mirage', 'justBash']) {
      const call = all[who][op]
      const begin = performance.now()
      for (const n of chunk) await call(n)
      time[who] += performance.now() - begin
    }
  }
  return time
}

/**
 * Runs every operation once per run, each run on empty file systems; returns medians of
 * operations per second, and of each run's Mirage / just-bash ratio with its range. Mirage
 * and just-bash take turns ({@link inTurns}); node:fs/promises, whose calls cost tens of
 * microseconds and leave garbage to match, runs on its own after them. Run 0 warms up.
 */
async function compare() {
  const rates = {}
  const paired = {}
  const record = (who, op, value, run) => {
    if (run === 0) return
    ;((rates[who] ??= {})[op] ??= []).push(value)
  }
  const timed = async (who, op, run, body) => record(who, op, await measure(body), run)
  for (let run = 0; run <= RUNS; run++) {
    const shm = mkdtempSync('/dev/shm/mirage-bench-')
    const all = subjects(shm)
    try {
      for (const fs of Object.values(all)) await fs.setup()
      const lists = { list: names(run, '/m'), textList: names(`${run}t`, '/m') }
      for (const [op, list] of AWAITED) {
        const time = await inTurns(all, op, lists[list])
        record('mirage', op, FILES / (time.mirage / 1000), run)
        record('justBash', op, FILES / (time.justBash / 1000), run)
        if (run > 0) (paired[op] ??= []).push(time.justBash / time.mirage)
      }
      const mirage = all.mirage
      const syncList = names(`${run}s`, '/m')
      await timed('mirage', 'writeSync', run, async () => {
        for (const n of syncList) mirage.writeSync(n)
      })
      await timed('mirage', 'readSync', run, async () => {
        for (const n of lists.list) mirage.readSync(n)
      })
      await timed('mirage', 'statSync', run, async () => {
        for (const n of lists.list) mirage.statSync(n)
      })
      await timed('mirage', 'readMany', run, () => mirage.readMany(lists.list))
      await timed('mirage', 'statMany', run, () => mirage.statMany(lists.list))
      const nodeFs = all.nodeFs
      const nodeLists = { list: names(run, shm), textList: names(`${run}t`, shm) }
      for (const [op, list] of AWAITED) {
        await timed('nodeFs', op, run, async () => {
          for (const n of nodeLists[list]) await nodeFs[op](n)
        })
      }
    } finally {
      for (const fs of Object.values(all)) fs.done()
    }
  }
  return { rates: medians(rates), paired: spreads(paired) }
}

/** Writes of new files into a file system that already holds {@link BIG} files, Mirage and
 * just-bash taking turns (filled untimed, once); medians as {@link compare} gives them. */
async function writesWhenBig() {
  const all = subjects('')
  const rates = {}
  const paired = []
  try {
    for (const who of ['mirage', 'justBash']) {
      await all[who].setup()
      for (let i = 0; i < BIG; i++) all[who].fill(`/m/big-${i}`)
    }
    for (let run = 0; run <= RUNS; run++) {
      const time = await inTurns(all, 'write', names(`${run}b`, '/m'))
      if (run === 0) continue
      for (const who of ['mirage', 'justBash']) ((rates[who] ??= {}).write ??= []).push(FILES / (time[who] / 1000))
      paired.push(time.justBash / time.mirage)
    }
  } finally {
    all.mirage.done()
  }
  return { rates: medians(rates), paired: spreads({ write: paired }).write }
}

/** The median, lowest and highest of every list of ratios. */
function spreads(ratios) {
  return Object.fromEntries(
    Object.entries(ratios).map(([op, values]) => [op, { median: median(values), low: Math.min(...values), high: Math.max(...values) }]),
  )
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
/** A median of per-run ratios with its range. */
const spread = ({ median, low, high }) => `${median.toFixed(2)}x (${low.toFixed(2)}-${high.toFixed(2)})`

const {
  rates: { mirage: m, justBash: j, nodeFs: n },
  paired,
} = await compare()
const big = await writesWhenBig()
const forks = forkCost()

console.log(`# @mirage/vfs benchmarks (Node ${process.version}, median of ${RUNS} runs, ${FILES} files of 1 KiB)\n`)
console.log('## Awaited, one call at a time (ops/s)\n')
console.log('| operation | @mirage/vfs (memory mount) | just-bash InMemoryFs | node:fs/promises (tmpfs) | vs just-bash (runs) | vs node:fs |')
console.log('|---|---:|---:|---:|---:|---:|')
const rows = [
  ['writeFile (bytes)', 'write', 'write'],
  ['writeFile (text)', 'writeText', 'writeText'],
  ['readFile (bytes)', 'read', 'read'],
  ['readFile (text, as written by this handle)', 'readText', 'readText'],
  ['stat', 'stat', 'stat'],
]
for (const [label, op, native] of rows) {
  console.log(`| ${label} | ${fmt(m[op])} | ${fmt(j[native])} | ${fmt(n[native])} | ${spread(paired[op])} | ${ratio(m[op], n[native])} |`)
}
console.log('\n## Sync and batch variants of @mirage/vfs (ops/s)\n')
console.log('| call | ops/s |\n|---|---:|')
console.log(`| writeFileSync | ${fmt(m.writeSync)} |`)
console.log(`| readFileSync | ${fmt(m.readSync)} |`)
console.log(`| statSync | ${fmt(m.statSync)} |`)
console.log(`| readMany (${FILES} paths per call) | ${fmt(m.readMany)} |`)
console.log(`| statMany (${FILES} paths per call) | ${fmt(m.statMany)} |`)
console.log(`\n## writeFile (bytes) into a file system holding ${fmt(BIG)} files (ops/s)\n`)
console.log('| @mirage/vfs | just-bash InMemoryFs | vs just-bash (runs) |\n|---:|---:|---:|')
console.log(`| ${fmt(big.rates.mirage.write)} | ${fmt(big.rates.justBash.write)} | ${spread(big.paired)} |`)
console.log('\n## Fork\n')
console.log('| session size | fork (median of 51) |\n|---:|---:|')
for (const [size, ms] of Object.entries(forks)) console.log(`| ${fmt(Number(size))} files | ${(ms * 1000).toFixed(1)} µs |`)

/**
 * An agent-style program: three strategies fix the same bug in parallel, each in its own O(1)
 * fork of one session; every fork is tested and diffed, the best one is committed (the others
 * are aborted in the same step) and the result is written to the project on disk.
 *
 * Run: npm run example --workspace mirage-examples-ts [-- PROJECT_DIR]
 * Without a directory, a small project is created in a temporary one.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import vm from 'node:vm'

import { Mirage, local, memory, type Session } from '@mirage/vfs'

const BUGGY = `// Returns the average of a list of numbers (0 for an empty list).
exports.average = function average(xs) {
  let total = 0
  for (let i = 1; i < xs.length; i++) total += xs[i]
  return total / xs.length
}
`

const TESTS: Array<[number[], number]> = [
  [[1, 2, 3], 2],
  [[10], 10],
  [[], 0],
]

function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mirage-strategies-'))
  mkdirSync(join(dir, 'src'))
  writeFileSync(join(dir, 'src', 'stats.js'), BUGGY)
  writeFileSync(join(dir, 'README.md'), '# stats\n')
  return dir
}

/** A strategy edits the project inside its own session. */
type Strategy = (session: Session) => Promise<void>

const strategies: Record<string, Strategy> = {
  // Fixes the loop only: the empty list still divides by zero.
  async minimal(s) {
    const code = await s.readFile('src/stats.js', 'utf8')
    await s.writeFile('src/stats.js', code.replace('let i = 1', 'let i = 0'))
  },
  // Rewrites the function with reduce and a guard, and notes it in the README.
  async rewrite(s) {
    await s.writeFile(
      'src/stats.js',
      `// Returns the average of a list of numbers (0 for an empty list).
exports.average = (xs) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)
`,
    )
    await s.appendFile('README.md', '\n`average` handles empty lists.\n')
    await s.writeFile('/scratch/notes.txt', 'rewrote average with reduce\n')
  },
  // Deletes the module: no code, no bug (and no passing tests).
  async reckless(s) {
    await s.rm('src', { recursive: true })
  },
}

/** Loads src/stats.js as the session sees it and counts passing tests. */
async function score(s: Session): Promise<number> {
  if (!(await s.exists('src/stats.js'))) return 0
  const module = { exports: {} as { average?: (xs: number[]) => number } }
  vm.runInNewContext(await s.readFile('src/stats.js', 'utf8'), { exports: module.exports })
  return TESTS.filter(([input, want]) => module.exports.average?.(input) === want).length
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? makeProject()
  console.log(`project: ${dir}`)
  const mirage = new Mirage()
  mirage.mount('/project', local(dir))
  mirage.mount('/scratch', memory())
  const main = mirage.createSession('main')
  await main.chdir('/project')

  const forks = Object.keys(strategies).map((name) => main.fork(name))
  await Promise.all(forks.map((fork) => strategies[fork.name]!(fork)))

  const results = []
  for (const fork of forks) {
    const changes = await fork.diff()
    const passed = await score(fork)
    results.push({ fork, passed, changed: changes.length })
    console.log(`\n== ${fork.name}: ${passed}/${TESTS.length} tests pass, ${changes.length} paths changed`)
    for (const c of changes) console.log(`  ${c.change.padEnd(8)} ${c.kind.padEnd(9)} ${c.path}`)
    if (changes.some((c) => c.path === '/project/src/stats.js' && c.change === 'modified')) {
      process.stdout.write(await fork.diffText('/project/src/stats.js'))
    }
  }

  results.sort((a, b) => b.passed - a.passed || a.changed - b.changed)
  const winner = results[0]!
  const report = await winner.fork.commit({ winnerTakesAll: true })
  console.log(`\nwinner: ${winner.fork.name}; aborted: ${report.aborted.join(', ')}`)
  const written = await main.commit()
  console.log(`committed to the mounts: ${written.applied.join(", ")}`)
  console.log('\nsrc/stats.js on disk now:\n' + readFileSync(join(dir, 'src', 'stats.js'), 'utf8'))
  console.log(`main still sees the scratch notes in RAM: ${await main.exists('/scratch/notes.txt')}`)
}

main().catch((e: unknown) => {
  console.error(e)
  process.exit(1)
})

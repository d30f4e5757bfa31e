import { Mirage, memory } from '@mirage/vfs'
const CONTENT = Buffer.alloc(1024, 'a')
const m = new Mirage(); m.mount('/m', memory()); const s = m.createSession('b')
for (let i = 0; i < 100000; i++) s.writeFileSync(`/m/big-${i}`, CONTENT)
const per = []
for (let r = 0; r < 40; r++) {
  const names = Array.from({ length: 5000 }, (_, i) => `/m/r${r}b-${i}`)
  const t = performance.now()
  for (const n of names) await s.writeFile(n, CONTENT)
  per.push((performance.now() - t) * 1000 / 5000)
}
per.sort((a, b) => a - b)
console.log('big write', per[20].toFixed(3))

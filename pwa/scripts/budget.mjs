// Fails the build when the JavaScript a first visit loads (the entry chunk and what it imports statically)
// passes the budget, gzipped. Lazy screens are not counted: they load when opened.
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const BUDGET = 80 * 1024
const dist = new URL('../dist/', import.meta.url)
const manifest = JSON.parse(readFileSync(new URL('.vite/manifest.json', dist), 'utf8'))
const seen = new Set()
const visit = (key) => {
  if (seen.has(key)) return
  seen.add(key)
  for (const child of manifest[key].imports ?? []) visit(child)
}
for (const [key, chunk] of Object.entries(manifest)) if (chunk.isEntry) visit(key)
let total = 0
for (const key of seen) {
  const size = gzipSync(readFileSync(new URL(manifest[key].file, dist))).length
  total += size
  console.log(`  ${manifest[key].file}  ${(size / 1024).toFixed(1)} KB gzip`)
}
const verdict = total <= BUDGET ? 'within' : 'OVER'
console.log(`initial JavaScript: ${(total / 1024).toFixed(1)} KB gzip, ${verdict} the ${BUDGET / 1024} KB budget`)
if (total > BUDGET) process.exit(1)

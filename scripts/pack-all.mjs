#!/usr/bin/env node
// `npm run pack:all`: writes the five publishable tarballs to artifacts/: one
// per platform package (sysv-shm-linux-{x64,arm64}-{gnu,musl}-<v>.tgz, one per
// `napi.targets` entry) from npm/<platform>/ (run `npm run artifacts` first)
// plus the root's LICENSE, and sysv-shm-<v>.tgz.
//
// The root tarball is packed from a staged copy with the publish manifest
// (scripts/lib/pack-root.mjs says how and why).
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

import { checkPackages } from './check-packages.mjs'
import { npmPack, packRoot } from './lib/pack-root.mjs'
import { artifactsDir, platforms, root } from './lib/platforms.mjs'

function fail(message) {
  console.error(`pack:all: ${message}`)
  process.exit(1)
}

const problems = checkPackages()
if (problems.length) fail(problems.join('\n'))
for (const p of platforms) {
  if (!existsSync(join(p.dir, p.nodeFile))) fail(`npm/${p.platform}/${p.nodeFile} is missing: run npm run artifacts`)
}

rmSync(artifactsDir, { recursive: true, force: true })
mkdirSync(artifactsDir, { recursive: true })

const written = []
const license = existsSync(join(root, 'LICENSE')) ? ['LICENSE'] : []
for (const p of platforms) {
  // Staged with the root's LICENSE beside the binary.
  const stage = join(root, 'target', 'prebuilt', 'stage', p.platform)
  rmSync(stage, { recursive: true, force: true })
  mkdirSync(stage, { recursive: true })
  for (const f of ['package.json', 'README.md', p.nodeFile]) copyFileSync(join(p.dir, f), join(stage, f))
  for (const f of license) copyFileSync(join(root, f), join(stage, f))
  const report = npmPack(stage, artifactsDir)
  const files = report.files.map((f) => f.path).sort()
  const want = ['README.md', 'package.json', p.nodeFile, ...license].sort()
  if (JSON.stringify(files) !== JSON.stringify(want)) fail(`${report.filename} holds ${files.join(', ')}, expected ${want.join(', ')}`)
  written.push(report)
}

try {
  written.push(packRoot(artifactsDir))
} catch (e) {
  fail(e.message)
}

for (const r of written) {
  console.log(`pack:all: artifacts/${r.filename} (${r.entryCount} files, ${Math.round(r.size / 1024)} KiB)`)
}

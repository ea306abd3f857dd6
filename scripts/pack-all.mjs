#!/usr/bin/env node
// `npm run pack:all`: writes the three publishable tarballs to artifacts/:
// sysv-shm-linux-x64-gnu-<v>.tgz and sysv-shm-linux-arm64-gnu-<v>.tgz from
// npm/<platform>/ (run `npm run artifacts` first) plus the root's LICENSE, and
// sysv-shm-<v>.tgz.
//
// The root tarball is packed from a staged copy of what `npm pack` would
// include, with a publish manifest: `optionalDependencies` on both platform
// packages at exactly the root's version, and without `scripts`,
// `devDependencies` and the `ava` config (dev-only). The optional
// dependencies are added here rather than in the checked-in package.json, as
// napi-rs's `prepublish` does, because `npm ci` refuses a package.json that
// lists packages that are not on the registry yet (each new version, before
// its release), and it would then break every clean checkout.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

import { checkPackages, INSTALL_SCRIPTS } from './check-packages.mjs'
import { artifactsDir, pkg, platforms, root } from './lib/platforms.mjs'

function fail(message) {
  console.error(`pack:all: ${message}`)
  process.exit(1)
}

/** `npm pack --json` of DIR into artifacts/; returns npm's report. */
function npmPack(dir, extra = []) {
  const out = execFileSync('npm', ['pack', dir, '--json', '--ignore-scripts', '--pack-destination', artifactsDir, ...extra], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out)[0]
}

const problems = checkPackages()
if (problems.length) fail(problems.join('\n'))
for (const p of platforms) {
  if (!existsSync(join(p.dir, p.nodeFile))) fail(`npm/${p.platform}/${p.nodeFile} is missing: run npm run artifacts`)
}

// dist/ afresh: tsc never deletes the output of a source that is gone.
rmSync(join(root, 'dist'), { recursive: true, force: true })
execFileSync('npm', ['run', 'build:ts', '--silent'], { cwd: root, stdio: 'inherit' })
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
  const report = npmPack(stage)
  const files = report.files.map((f) => f.path).sort()
  const want = ['README.md', 'package.json', p.nodeFile, ...license].sort()
  if (JSON.stringify(files) !== JSON.stringify(want)) fail(`${report.filename} holds ${files.join(', ')}, expected ${want.join(', ')}`)
  written.push(report)
}

// The root package: the files `npm pack` would take, staged with the publish manifest.
const dryRun = JSON.parse(
  execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }),
)[0]
const stage = join(root, 'target', 'prebuilt', 'stage', pkg.name)
rmSync(stage, { recursive: true, force: true })
for (const { path } of dryRun.files) {
  if (path === 'package.json') continue
  if (path.endsWith('.node')) fail(`the root package would ship ${path}: binaries belong in the platform packages`)
  mkdirSync(dirname(join(stage, path)), { recursive: true })
  copyFileSync(join(root, path), join(stage, path))
}
const { scripts: _scripts, devDependencies: _dev, ava: _ava, ...manifest } = pkg
manifest.optionalDependencies = {
  ...pkg.optionalDependencies,
  ...Object.fromEntries(platforms.map((p) => [p.packageName, pkg.version])),
}
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
for (const script of INSTALL_SCRIPTS) if (manifest.scripts?.[script]) fail(`the root manifest has a ${script} script`)
const report = npmPack(stage)
for (const need of ['package.json', 'dist/index.js', 'dist/index.d.ts']) {
  if (!report.files.some((f) => f.path === need)) fail(`${report.filename} lacks ${need}`)
}
written.push(report)

for (const r of written) {
  console.log(`pack:all: artifacts/${r.filename} (${r.entryCount} files, ${Math.round(r.size / 1024)} KiB)`)
}

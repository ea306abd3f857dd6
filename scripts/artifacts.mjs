#!/usr/bin/env node
// `npm run artifacts [-- <platform>...]`: builds the release binary of every
// napi target (or of the platforms named, e.g. linux-arm64-gnu) with
// `napi build --use-napi-cross`, i.e. linked against the glibc 2.17 sysroot of
// napi-rs's cross toolchains, and copies each into its npm/<platform>/ folder.
//
// Toolchains: x86_64 builds with the default rustup toolchain. aarch64 builds
// with it too when it has the aarch64-unknown-linux-gnu target (as in the
// GitHub workflow, after `rustup target add`); else with the rustup toolchain
// named by SYSV_SHM_ARM64_TOOLCHAIN (default `debian-web`: Debian's Rust with
// its arm64 std, linked by scripts/setup-cross.sh). Ends by running
// scripts/check-glibc.sh on what it built.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

import { platforms, root } from './lib/platforms.mjs'

const wanted = process.argv.slice(2)
const selected = wanted.length ? platforms.filter((p) => wanted.includes(p.platform)) : platforms
if (selected.length !== (wanted.length || platforms.length)) {
  console.error(`artifacts: unknown platform in ${wanted.join(' ')}; known: ${platforms.map((p) => p.platform).join(' ')}`)
  process.exit(2)
}

function hasTarget(toolchain, triple) {
  const env = { ...process.env }
  if (toolchain) env.RUSTUP_TOOLCHAIN = toolchain
  else delete env.RUSTUP_TOOLCHAIN
  try {
    const libdir = execFileSync('rustc', ['--print', 'target-libdir', '--target', triple], { env, encoding: 'utf8' })
    return existsSync(libdir.trim()) && statSync(libdir.trim()).isDirectory()
  } catch {
    return false
  }
}

function toolchainFor(triple) {
  if (hasTarget(process.env.RUSTUP_TOOLCHAIN, triple)) return process.env.RUSTUP_TOOLCHAIN ?? null
  const fallback = process.env.SYSV_SHM_ARM64_TOOLCHAIN || 'debian-web'
  if (hasTarget(fallback, triple)) return fallback
  throw new Error(
    `artifacts: no Rust standard library for ${triple}: run scripts/setup-cross.sh, or \`rustup target add ${triple}\``,
  )
}

const napi = join(root, 'node_modules', '.bin', 'napi')
const musl = selected.filter((p) => p.libc === 'musl')
if (musl.length > 0) {
  // musl: the standard library is built from source and linked against musl (see the script).
  const arches = musl.map((p) => p.triple.split('-')[0]).join(' ')
  for (const part of [['setup'], ['build'], ['check']]) {
    const r = spawnSync('bash', [join(root, 'scripts', 'musl.sh'), ...part], {
      cwd: root,
      env: { ...process.env, SYSV_SHM_MUSL_ARCHES: arches },
      stdio: 'inherit',
    })
    if (r.status !== 0) process.exit(r.status ?? 1)
  }
}
for (const p of selected.filter((p) => p.libc === 'glibc')) {
  const toolchain = toolchainFor(p.triple)
  const env = { ...process.env }
  if (toolchain) env.RUSTUP_TOOLCHAIN = toolchain
  const rustc = execFileSync('rustc', ['--version'], { env, encoding: 'utf8' }).trim()
  const outDir = join(root, 'target', 'prebuilt', 'out', p.platform)
  mkdirSync(outDir, { recursive: true })
  const args = [
    'build', '--platform', '--release', '--use-napi-cross', '--target', p.triple,
    '--manifest-path', 'crates/sysv-shm-node/Cargo.toml', '--package-json-path', 'package.json',
    // one target dir per toolchain: two rustc versions would rebuild each other's deps
    '--target-dir', join('target', 'prebuilt', toolchain ?? 'default'),
    '--output-dir', outDir, '--no-js', '--dts', 'binding.d.ts',
  ]
  console.log(`\nartifacts: ${p.platform} (${p.triple}) with ${rustc}${toolchain ? ` [${toolchain}]` : ''}`)
  const started = Date.now()
  const r = spawnSync(napi, args, { cwd: root, env, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
  mkdirSync(p.dir, { recursive: true })
  copyFileSync(join(outDir, p.nodeFile), join(p.dir, p.nodeFile))
  const kib = Math.round(statSync(join(p.dir, p.nodeFile)).size / 1024)
  console.log(`artifacts: npm/${p.platform}/${p.nodeFile} (${kib} KiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

// Each binary must load on glibc 2.17 and be for its machine.
const glibc = selected.filter((p) => p.libc === 'glibc')
if (glibc.length === 0) process.exit(0)
const check = spawnSync('bash', [join(root, 'scripts', 'check-glibc.sh'), ...glibc.map((p) => join(p.dir, p.nodeFile))], {
  stdio: 'inherit',
})
process.exit(check.status ?? 1)

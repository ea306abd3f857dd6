// The loader (src/binding.ts) as an installed package meets it: the platform
// package is found, missing, broken or of another version, and unsupported
// platforms get one clear error. Each case runs in a child process, on a copy
// of dist/ that has no local .node beside it.
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const root = fileURLToPath(new URL('..', import.meta.url))
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const SUPPORTED = 'linux-x64-gnu, linux-arm64-gnu'
// This process's platform as the loader (src/binding.ts) tells it: musl under a musl Node.
const libc = process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'
const triple = `linux-${process.arch}-${libc}`
// The binary under test: the override (test:prebuilt sets it to a release build), the local
// build, else the installed platform package (test:runtimes puts the musl one on NODE_PATH).
const local = join(root, `sysv-shm.${triple}.node`)
const binary =
  process.env.SYSV_SHM_BINDING_PATH ?? (existsSync(local) ? local : createRequire(import.meta.url).resolve(`sysv-shm-${triple}`))

const work = mkdtempSync(join(tmpdir(), 'sysv-shm-loader-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

let n = 0
/** An installed-like layout: <dir>/app/node_modules/{sysv-shm, sysv-shm-<triple>?} (this process's triple unless given). Returns the entry point. */
function layout({ platformPackage } = {}) {
  const dir = join(work, String(++n), 'app')
  const pkg = join(dir, 'node_modules', 'sysv-shm')
  mkdirSync(pkg, { recursive: true })
  cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true })
  copyFileSync(join(root, 'package.json'), join(pkg, 'package.json'))
  if (platformPackage) {
    const t = platformPackage.triple ?? triple
    const dest = join(dir, 'node_modules', `sysv-shm-${t}`)
    mkdirSync(dest, { recursive: true })
    const file = `sysv-shm.${t}.node`
    writeFileSync(join(dest, 'package.json'), JSON.stringify({ name: `sysv-shm-${t}`, version: platformPackage.version ?? version, main: file }))
    if (platformPackage.garbage) writeFileSync(join(dest, file), 'not an ELF file')
    else copyFileSync(binary, join(dest, file))
  }
  return join(pkg, 'dist', 'index.js')
}

/** Runs `require(entry)` in a child, with `preload` code run first (to fake the platform). */
function load(entry, preload = '', code = 'm.listSegments(); console.log("loaded")') {
  const env = { ...process.env }
  delete env.SYSV_SHM_BINDING_PATH
  delete env.NODE_PATH // the layout alone decides which platform package there is
  const script = `${preload}\nconst m = require(${JSON.stringify(entry)});\n${code}`
  const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60_000 })
  return { ...r, out: r.stdout + r.stderr }
}

const fake = (platform, arch, musl = false) => `
Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });
Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });
process.report.getReport = () => ({ header: ${musl ? '{}' : "{ glibcVersionRuntime: '2.36' }"} });`

test('the platform package is loaded when there is no local build', (t) => {
  const r = load(layout({ platformPackage: {} }))
  t.is(r.status, 0, r.out)
  t.regex(r.stdout, /loaded/)
  t.notRegex(r.stderr, /Warning/)
})

for (const [platform, arch, musl, name] of [
  ['darwin', 'arm64', false, 'darwin-arm64'],
  ['win32', 'x64', false, 'win32-x64'],
  ['linux', 'ia32', false, 'linux-ia32-gnu'],
  ['linux', 'arm', false, 'linux-arm-gnu'],
]) {
  test(`unsupported platform ${name}: one clear error naming it and the supported list`, (t) => {
    const r = load(layout({ platformPackage: {} }), fake(platform, arch, musl))
    t.not(r.status, 0)
    t.true(r.stderr.includes(`sysv-shm: no prebuilt binary for ${name}`), r.out)
    t.true(r.stderr.includes(SUPPORTED), r.out)
  })
}

for (const arch of ['x64', 'arm64']) {
  test(`musl (linux-${arch}-musl) is supported: without its package, the error names it and --libc=musl`, (t) => {
    // The glibc package is there (as on a glibc machine), whatever libc this process has.
    const r = load(layout({ platformPackage: { triple: `linux-${process.arch}-gnu` } }), fake('linux', arch, true))
    t.not(r.status, 0)
    t.true(r.stderr.includes(`the package sysv-shm-linux-${arch}-musl could not be loaded`), r.out)
    t.true(r.stderr.includes('--libc=musl'), r.out)
    t.false(r.stderr.includes('no prebuilt binary'), r.out)
  })
}

test('a missing platform package: names it with the version to install, and both causes', (t) => {
  const r = load(layout())
  t.not(r.status, 0)
  t.true(r.stderr.includes(`the package sysv-shm-${triple} could not be loaded`), r.out)
  // Cause 1: optional dependencies omitted.
  t.regex(r.stderr, /--omit=optional/)
  // Cause 2: not fetched (offline, a mirror without it): install it by name, at this version.
  t.regex(r.stderr, /registry mirror/)
  t.true(r.stderr.includes(`\`npm install sysv-shm-${triple}@${version}\``), r.out)
})

test('a platform package whose binary cannot load: says so, with the cause', (t) => {
  const r = load(layout({ platformPackage: { garbage: true } }))
  t.not(r.status, 0)
  t.true(r.stderr.includes(`the package sysv-shm-${triple} is installed but its binary failed to load`), r.out)
  t.regex(r.stderr, libc === 'musl' ? /needs Linux with musl libc/ : /glibc 2\.17/)
})

test('a platform package of another version: loads, with a warning', (t) => {
  const r = load(layout({ platformPackage: { version: '0.0.0-other' } }))
  t.is(r.status, 0, r.out)
  t.regex(r.stdout, /loaded/)
  t.true(r.stderr.includes(`sysv-shm ${version} loaded sysv-shm-${triple} 0.0.0-other`), r.out)
})

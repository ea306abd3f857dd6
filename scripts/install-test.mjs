#!/usr/bin/env node
// The install test: installs the five tarballs of artifacts/ (`npm run
// pack:all`) the way a user would, with no compiler anywhere.
//
// 1. Starts verdaccio (scripts/setup-cross.sh installs it) on 127.0.0.1, with
//    the sysv-shm* packages local only (never proxied) and everything else
//    proxied to the npm registry, and publishes the five tarballs to it.
// 2. x64: in an empty folder, with a PATH that holds only `node` and `npm`
//    and a fresh HOME and npm cache, `npm install sysv-shm`; checks that
//    exactly one platform package (sysv-shm-linux-x64-gnu) and nothing else
//    came with it but the typings' dependency (@types/node, and its own), and
//    that no package has an install script. Then installs
//    typescript and @types/node, type-checks a .ts and a .mts file with tsc
//    (with a @ts-expect-error that only holds if the types are really loaded),
//    and runs: a CommonJS file, an ESM file, the two compiled files and
//    scripts/smoke.mjs, each creating, writing, reading and removing a segment.
// 3. arm64: the same with `npm install --cpu=arm64 --os=linux --libc=glibc`,
//    run with the arm64 Node under qemu-aarch64-static (on an arm64 machine,
//    natively, and x64 is the one left out: `--only <platform>` picks one).
// Always stops verdaccio and removes its temp folder. Ends with
// "install-test: N passed, M failed".
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { artifactsDir, nodeArm64, pkg, platforms, root, verdaccioBin } from './lib/platforms.mjs'

const QEMU = '/usr/bin/qemu-aarch64-static'
const FORBIDDEN_TOOLS = ['cargo', 'rustc', 'rustup', 'cc', 'gcc', 'g++', 'clang', 'make', 'python', 'python3', 'node-gyp']
const started = Date.now()
const log = (msg) => console.log(`install-test: [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`)

let passed = 0
let failed = 0
function check(name, fn) {
  try {
    const detail = fn()
    passed++
    log(`ok ${name}${detail === undefined ? '' : `: ${detail}`}`)
  } catch (e) {
    failed++
    log(`FAIL ${name}: ${e?.message ?? e}`)
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message)
}

// ---- the tarballs --------------------------------------------------------------
const tarballs = [
  ...platforms.map((p) => join(artifactsDir, `${p.packageName}-${pkg.version}.tgz`)),
  join(artifactsDir, `${pkg.name}-${pkg.version}.tgz`),
]
for (const t of tarballs) {
  if (!existsSync(t)) {
    console.error(`install-test: ${t} is missing: run npm run artifacts && npm run pack:all`)
    process.exit(2)
  }
}
// --only <platform>: test that platform alone (the GitHub workflow runs arm64 on an arm64 runner).
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null
const users = platforms.filter((p) => !only || p.platform === only)
if (users.length === 0) {
  console.error(`install-test: unknown platform ${only}`)
  process.exit(2)
}
// A platform of another architecture than this Node's runs under qemu.
const emulated = (p) => p.arch !== process.arch && p.libc === 'glibc'
for (const f of [verdaccioBin, ...(users.some(emulated) ? [nodeArm64, QEMU] : [])]) {
  if (!existsSync(f)) {
    console.error(`install-test: ${f} is missing: run scripts/setup-cross.sh`)
    process.exit(2)
  }
}

// ---- cleanup, whatever happens -------------------------------------------------
const work = mkdtempSync(join(tmpdir(), 'sysv-shm-install-'))
let verdaccio = null
function cleanup() {
  if (verdaccio && verdaccio.exitCode === null && verdaccio.signalCode === null) {
    verdaccio.kill('SIGKILL')
  }
  rmSync(work, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130))

/** Runs a command; returns stdout; throws with its output on failure. */
function run(cmd, args, { env, cwd, timeout = 300_000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 })
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

try {
  // ---- 1. the registry --------------------------------------------------------------
  const port = await freePort()
  const registry = `http://127.0.0.1:${port}/`
  const vdDir = join(work, 'verdaccio')
  mkdirSync(vdDir)
  writeFileSync(
    join(vdDir, 'config.yaml'),
    `storage: ./storage
auth:
  htpasswd:
    file: ./htpasswd
    max_users: 10
uplinks:
  npmjs:
    url: https://registry.npmjs.org/
    timeout: 60s
packages:
  '${pkg.name}':
    access: $all
    publish: $authenticated
  '${pkg.name}-*':
    access: $all
    publish: $authenticated
  '**':
    access: $all
    proxy: npmjs
web:
  enable: false
log: { type: stdout, format: pretty, level: warn }
`,
  )
  const vdLog = join(vdDir, 'verdaccio.log')
  const logFd = openSync(vdLog, 'a')
  verdaccio = spawn(process.execPath, [verdaccioBin, '--config', join(vdDir, 'config.yaml'), '--listen', `127.0.0.1:${port}`], {
    cwd: vdDir,
    stdio: ['ignore', logFd, logFd],
  })
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      if ((await fetch(`${registry}-/ping`)).ok) break
    } catch {}
    if (verdaccio.exitCode !== null || Date.now() > deadline) {
      throw new Error(`verdaccio did not start:\n${readFileSync(vdLog, 'utf8')}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  log(`verdaccio (pid ${verdaccio.pid}) on ${registry}`)

  const user = await fetch(`${registry}-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', password: 'install-test', type: 'user', roles: [], date: new Date().toISOString() }),
  })
  const { token } = await user.json()
  assert(user.ok && token, `could not add a registry user: ${user.status}`)
  const publisherRc = join(work, 'publisher.npmrc')
  writeFileSync(publisherRc, `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`)
  for (const t of tarballs) {
    run('npm', ['publish', t, '--userconfig', publisherRc, '--registry', registry, '--ignore-scripts', '--no-provenance'], {
      env: { ...process.env, HOME: work },
    })
    log(`published ${t.slice(root.length + 1)}`)
  }

  // ---- 2./3. the users ----------------------------------------------------------------
  // PATH: a folder with node and npm only.
  const bin = join(work, 'bin')
  mkdirSync(bin)
  symlinkSync(realpathSync(process.execPath), join(bin, 'node'))
  symlinkSync(realpathSync(run('sh', ['-c', 'command -v npm']).trim()), join(bin, 'npm'))
  const devTypes = ['typescript', '@types/node'].map((name) => {
    const { version } = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8'))
    return `${name}@${version}`
  })

  for (const p of users) {
    const dir = join(work, `user-${p.platform}`)
    const home = join(work, `home-${p.platform}`)
    mkdirSync(dir)
    mkdirSync(home)
    const env = {
      PATH: bin,
      HOME: home,
      npm_config_cache: join(home, '.npm'),
      npm_config_registry: registry,
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    }
    const platformFlags =
      p.arch === process.arch && p.libc === 'glibc' ? [] : [`--cpu=${p.arch}`, '--os=linux', `--libc=${p.libc}`]
    if (emulated(p) && p.arch !== 'arm64') throw new Error(`no emulator for ${p.platform} on ${process.arch}`)
    const exec = emulated(p) ? [QEMU, nodeArm64] : [realpathSync(process.execPath)]
    const label = `${p.platform}${emulated(p) ? ' (qemu)' : ''}`

    check(`${label}: the PATH has node and npm and no build tool`, () => {
      for (const tool of FORBIDDEN_TOOLS) {
        const r = spawnSync(tool, ['--version'], { env })
        assert(r.error?.code === 'ENOENT', `${tool} is reachable`)
      }
      return run('npm', ['--version'], { env, cwd: dir }).trim()
    })

    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'user-app', version: '1.0.0', private: true }, null, 2)}\n`)
    const t0 = Date.now()
    run('npm', ['install', ...platformFlags, pkg.name], { env, cwd: dir })
    log(`${label}: npm install ${[...platformFlags, pkg.name].join(' ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)

    check(`${label}: exactly one platform package, ${p.packageName}, the typings' dependencies and no install script`, () => {
      const lock = JSON.parse(readFileSync(join(dir, 'node_modules', '.package-lock.json'), 'utf8'))
      const installed = Object.keys(lock.packages).map((k) => k.replace(/^node_modules\//, ''))
      // The root's `dependencies` (@types/node, for the typings) and theirs.
      const wanted = new Set([pkg.name, p.packageName])
      for (let todo = Object.keys(pkg.dependencies ?? {}); todo.length; ) {
        const name = todo.pop()
        if (wanted.has(name)) continue
        wanted.add(name)
        todo.push(...Object.keys(lock.packages[`node_modules/${name}`]?.dependencies ?? {}))
      }
      assert(
        JSON.stringify(installed.sort()) === JSON.stringify([...wanted].sort()),
        `installed: ${installed.join(', ')}; expected: ${[...wanted].sort().join(', ')}`,
      )
      const platformDirs = readdirSync(join(dir, 'node_modules')).filter((d) => d.startsWith(`${pkg.name}-`))
      assert(JSON.stringify(platformDirs) === JSON.stringify([p.packageName]), `node_modules has ${platformDirs.join(', ')}`)
      const scripted = Object.entries(lock.packages).filter(([, v]) => v.hasInstallScript)
      assert(scripted.length === 0, `install scripts in ${scripted.map(([k]) => k).join(', ')}`)
      const manifest = JSON.parse(readFileSync(join(dir, 'node_modules', pkg.name, 'package.json'), 'utf8'))
      for (const q of platforms) {
        assert(manifest.optionalDependencies?.[q.packageName] === pkg.version, `optionalDependencies: ${JSON.stringify(manifest.optionalDependencies)}`)
      }
      return installed.join(' + ')
    })

    if (p.libc === 'musl') {
      // No musl build of Node exists here to run it with: check that the installed
      // binary is the one scripts/musl.sh built and checked (ELF, NEEDED, dlopen).
      check(`${label}: the installed ${p.nodeFile} is the checked musl build and needs only musl's libc.so`, () => {
        const installedNode = join(dir, 'node_modules', p.packageName, p.nodeFile)
        assert(readFileSync(installedNode).equals(readFileSync(join(p.dir, p.nodeFile))), 'differs from npm/' + p.platform)
        const needed = run('readelf', ['-d', installedNode]).match(/\(NEEDED\).*\[(.*)\]/g) ?? []
        assert(needed.length === 1 && needed[0].endsWith('[libc.so]'), `NEEDED: ${needed.join(', ')}`)
        return 'not run: no musl Node.js here (scripts/musl.sh check dlopens it from a musl program)'
      })
      continue
    }

    // The user's code: CommonJS, ESM, TypeScript (CJS and ESM output).
    const body = (label, file) => `
const text = 'hello from ${label} on ' + process.arch
let shm, key = 0
for (let projId = 1; !shm; projId++) {
  key = ftok(${file}, projId)
  try {
    shm = SharedMemory.create(key, 4096)
  } catch (e) {
    if (!(e instanceof ShmError && e.code === 'EEXIST') || projId > 250) throw e
  }
}
shm.write(text, 16)
const back = shm.read(16, Buffer.byteLength(text)).toString()
const size = shm.stat().size
shm.remove()
shm.detach()
let gone = false
try {
  SharedMemory.open(key)
} catch (e) {
  gone = e instanceof ShmError && e.code === 'ENOENT'
}
console.log(JSON.stringify({ label: '${label}', arch: process.arch, ok: back === text && size === 4096 && gone, back, binary: BINARY }))
`
    const binaryCjs = `require.resolve('${p.packageName}')`
    writeFileSync(
      join(dir, 'app.cjs'),
      `const { SharedMemory, ShmError, ftok } = require('${pkg.name}')\nconst BINARY = ${binaryCjs}\n${body('cjs', '__filename')}`,
    )
    writeFileSync(
      join(dir, 'app.mjs'),
      `import { SharedMemory, ShmError, ftok } from '${pkg.name}'\nimport { createRequire } from 'node:module'\n` +
        `const BINARY = createRequire(import.meta.url).resolve('${p.packageName}')\n${body('esm', 'new URL(import.meta.url)')}`,
    )
    // Never run: only there to be type-checked.
    const tsTypes = `
if (process.argv[2] === 'type-check only') {
  const info: SegmentInfo = SharedMemory.statById(1)
  const n: number = info.size + info.attachCount
  // @ts-expect-error size must be a number: this holds only if the package's types are loaded
  SharedMemory.create(IPC_PRIVATE, 'big', { mode: n })
}
`
    const tsImports = `import { SharedMemory, ShmError, ftok, IPC_PRIVATE, type SegmentInfo } from '${pkg.name}'\n`
    writeFileSync(
      join(dir, 'app.ts'),
      `${tsImports}const BINARY: string = require.resolve('${p.packageName}')\n${body('ts-cjs', '__filename')}${tsTypes}`,
    )
    writeFileSync(
      join(dir, 'app.mts'),
      `${tsImports}import { createRequire } from 'node:module'\n` +
        `const BINARY: string = createRequire(import.meta.url).resolve('${p.packageName}')\n` +
        `${body('ts-esm', 'new URL(import.meta.url)')}${tsTypes}`,
    )
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          skipLibCheck: false,
          noUnusedLocals: false,
          types: ['node'],
          outDir: 'out',
        },
        files: ['app.ts', 'app.mts'],
      }),
    )

    check(`${label}: tsc type-checks app.ts and app.mts against the installed types`, () => {
      run('npm', ['install', '--save-dev', ...platformFlags, ...devTypes], { env, cwd: dir })
      run(join(dir, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { env, cwd: dir })
      assert(existsSync(join(dir, 'out', 'app.js')) && existsSync(join(dir, 'out', 'app.mjs')), 'no output')
      return devTypes.join(', ')
    })

    for (const file of ['app.cjs', 'app.mjs', 'out/app.js', 'out/app.mjs']) {
      check(`${label}: node ${file} creates, writes, reads and removes a segment`, () => {
        const out = run(exec[0], [...exec.slice(1), file], { env, cwd: dir })
        const result = JSON.parse(out.trim().split('\n').pop())
        assert(result.ok, out)
        assert(result.arch === p.arch, `ran as ${result.arch}`)
        assert(result.binary.includes(`/node_modules/${p.packageName}/${p.nodeFile}`), `loaded ${result.binary}`)
        return `${result.back} (${result.binary.slice(dir.length + 1)})`
      })
    }

    check(`${label}: scripts/smoke.mjs against the installed package`, () => {
      copyFileSync(join(root, 'scripts', 'smoke.mjs'), join(dir, 'smoke.mjs'))
      const smokeEnv = { ...env, ...(emulated(p) ? { SYSV_SHM_SMOKE_WRAP: QEMU, SYSV_SHM_UNDER_QEMU: '1' } : {}) }
      const out = run(exec[0], [...exec.slice(1), 'smoke.mjs', '--package', pkg.name, '--expect-arch', p.arch], { env: smokeEnv, cwd: dir })
      return out.trim().split('\n').pop()
    })
  }
} catch (e) {
  failed++
  log(`FAIL ${e?.stack ?? e}`)
} finally {
  if (verdaccio) {
    verdaccio.kill('SIGTERM')
    const exited = await Promise.race([
      new Promise((r) => verdaccio.once('exit', () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 10_000)),
    ])
    if (!exited) verdaccio.kill('SIGKILL')
    log(`verdaccio stopped${exited ? '' : ' (killed)'}`)
  }
  cleanup()
}

console.log(`install-test: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)

#!/usr/bin/env node
// A smoke test of a built or installed sysv-shm that needs nothing but Node:
// it runs under qemu-user (arm64) as well as natively.
//
//   node scripts/smoke.mjs [--package SPEC] [--expect-arch arm64|x64]
//
// --package: what to import (default: this checkout's dist/index.js; in an
//   install test, `sysv-shm`). The binary is whatever the loader picks (set
//   SYSV_SHM_BINDING_PATH to test a given .node).
// SYSV_SHM_SMOKE_WRAP: a command the child process is started under, e.g.
//   `qemu-aarch64-static` (without binfmt_misc, an arm64 node cannot exec
//   another arm64 node directly).
//
// It checks that the native binary has every function that binding.d.ts
// declares; calls every function the package exports (the known ones with
// real arguments and checks, any other with none, which must return or throw
// an Error, not crash); and crosses a process boundary: the parent creates a
// segment by key and writes, a child opens it by key and by id, reads, writes
// back, and the parent reads the reply through its zero-copy buffer. Ends with
// "smoke: N passed, M failed"; exits non-zero on any failure. Leaves no segment.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const self = fileURLToPath(import.meta.url)
const argv = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : dflt
}
const spec = opt('--package', join(dirname(self), '..', 'dist', 'index.js'))
// A path is imported by URL; a name is resolved from the current directory, as a user's code would.
const isPath = spec.startsWith('/') || spec.startsWith('.')
const require = createRequire(join(process.cwd(), 'noop.js'))
const entry = isPath ? resolve(spec) : require.resolve(spec)
const m = await import(isPath ? pathToFileURL(entry).href : spec)
const { SharedMemory, ShmError, ftok, IPC_PRIVATE } = m

// ---- the child: `smoke.mjs --child KEY ID` ---------------------------------
if (argv[0] === '--child') {
  const key = Number(argv[1])
  const id = Number(argv[2])
  const byKey = SharedMemory.open(key)
  const byId = SharedMemory.openById(id)
  const ro = SharedMemory.open(key, { readOnly: true })
  const got = byKey.read(0, 64).toString().replace(/\0+$/, '')
  let readOnlyCode = null
  try {
    ro.write('x')
  } catch (e) {
    readOnlyCode = e instanceof ShmError ? e.code : `not a ShmError: ${e}`
  }
  const reply = `pong ${process.arch} ${process.pid}`
  byId.write(reply, 256)
  const attachCount = byKey.stat().attachCount
  for (const h of [byKey, byId, ro]) h.detach()
  process.stdout.write(JSON.stringify({ arch: process.arch, got, reply, readOnlyCode, attachCount }))
  process.exit(0)
}

// ---- the parent --------------------------------------------------------------
let passed = 0
let failed = 0
function check(name, fn) {
  try {
    const detail = fn()
    passed++
    console.log(`smoke: ok ${name}${detail === undefined ? '' : `: ${detail}`}`)
  } catch (e) {
    failed++
    console.log(`smoke: FAIL ${name}: ${e?.stack ?? e}`)
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message)
}
function throwsShmError(fn, codes) {
  try {
    fn()
  } catch (e) {
    assert(e instanceof ShmError, `threw ${e?.name}, not a ShmError: ${e?.message}`)
    assert(codes.includes(e.code), `code ${e.code}, expected one of ${codes.join(', ')}`)
    return e.code
  }
  throw new Error(`did not throw (expected ${codes.join(', ')})`)
}

const expectArch = opt('--expect-arch')
console.log(`smoke: node ${process.version} ${process.platform}-${process.arch}, package ${entry}`)
const tmp = mkdtempSync(join(tmpdir(), 'sysv-shm-smoke-'))
const created = []
const exercised = new Set()

try {
  check('architecture', () => {
    if (expectArch) assert(process.arch === expectArch, `process.arch is ${process.arch}, expected ${expectArch}`)
    return process.arch
  })

  check('the native binary has every function binding.d.ts declares', () => {
    const root = dirname(dirname(entry)) // <root>/dist/index.js
    const declared = [...readFileSync(join(root, 'binding.d.ts'), 'utf8').matchAll(/^export declare (?:function|class) (\w+)/gm)].map((x) => x[1])
    const { native } = createRequire(entry)(join(root, 'dist', 'src', 'binding.js'))
    const missing = declared.filter((name) => typeof native[name] !== 'function')
    assert(declared.length > 0, 'binding.d.ts declares nothing')
    assert(missing.length === 0, `missing from the binary: ${missing.join(', ')}`)
    return `${declared.length} functions`
  })

  // Every export, with real arguments for the known ones.
  const file = join(tmp, 'key-file')
  writeFileSync(file, 'sysv-shm smoke')
  const known = {
    IPC_PRIVATE: () => assert(IPC_PRIVATE === 0, `IPC_PRIVATE is ${IPC_PRIVATE}`),
    ftok: () => {
      const k = ftok(file, 1)
      assert(Number.isInteger(k) && k > 0 && k === ftok(file, 1) && k !== ftok(file, 2), `ftok gave ${k}`)
      throwsShmError(() => ftok(join(tmp, 'missing'), 1), ['ENOENT'])
      return `0x${k.toString(16)}`
    },
    listSegments: () => {
      const list = m.listSegments()
      assert(Array.isArray(list), 'not an array')
      return `${list.length} segments`
    },
    limits: () => {
      const l = m.limits()
      assert(l && typeof l === 'object' && Object.values(l).every((v) => typeof v === 'number' || typeof v === 'bigint'), JSON.stringify(l))
      return `${Object.keys(l).length} fields`
    },
    ShmError: () => {
      const e = new ShmError('test', 'ETEST')
      assert(e instanceof Error && e.code === 'ETEST', 'ShmError is not an Error with a code')
      return throwsShmError(() => SharedMemory.openById(0x7fffffff), ['EINVAL', 'EIDRM'])
    },
    SharedMemory: () => 'below',
  }
  for (const [name, value] of Object.entries(m)) {
    if (name === 'default' || name === '__esModule') continue
    check(`export ${name}`, () => {
      if (known[name]) return known[name]()
      if (typeof value !== 'function') return `a ${typeof value}`
      try {
        value()
        return 'called with no arguments: returned'
      } catch (e) {
        assert(e instanceof Error, `threw a non-Error: ${e}`)
        return `called with no arguments: threw ${e.name}`
      }
    })
  }

  // SharedMemory, every method, and a process boundary.
  const mark = (...names) => names.forEach((n) => exercised.add(n))
  let shm, key
  check('SharedMemory.create by key, write, read, readInto, buffer, stat, set', () => {
    for (let projId = 1 + (process.pid % 200); !shm; projId++) {
      key = ftok(file, projId)
      try {
        shm = SharedMemory.create(key, 4096, { mode: 0o600, exclusive: true })
      } catch (e) {
        if (!(e instanceof ShmError && e.code === 'EEXIST') || projId > 250) throw e
      }
    }
    created.push(shm)
    throwsShmError(() => SharedMemory.create(key, 4096), ['EEXIST'])
    const again = SharedMemory.create(key, 4096, { exclusive: false })
    again.detach()
    const msg = `ping ${process.arch} ${process.pid}`
    assert(shm.write(msg, 0) === Buffer.byteLength(msg), 'write count')
    assert(shm.read(0, msg.length).toString() === msg, 'read back')
    const into = Buffer.alloc(msg.length)
    assert(shm.readInto(into, 0) === msg.length && into.toString() === msg, 'readInto')
    assert(shm.buffer.length >= 4096 && shm.buffer.subarray(0, 4).toString() === 'ping', 'zero-copy buffer')
    const st = shm.stat()
    assert(st.size === 4096 && st.key === key >>> 0 && st.attachCount === 1 && (st.mode & 0o777) === 0o600, JSON.stringify(st))
    assert(SharedMemory.statById(st.id).id === st.id, 'statById')
    shm.set({ mode: 0o640 })
    assert((shm.stat().mode & 0o777) === 0o640, 'set mode')
    mark('create', 'write', 'read', 'readInto', 'buffer', 'stat', 'statById', 'set')
    return `key 0x${(key >>> 0).toString(16)}, id ${st.id}`
  })

  check('lock/unlock (SHM_LOCK needs CAP_IPC_LOCK or RLIMIT_MEMLOCK room)', () => {
    mark('lock', 'unlock')
    try {
      shm.lock()
    } catch (e) {
      assert(e instanceof ShmError && ['EPERM', 'ENOMEM'].includes(e.code), String(e))
      return `refused: ${e.code}`
    }
    assert(shm.stat().locked === true, 'not locked')
    shm.unlock()
    assert(shm.stat().locked === false, 'still locked')
    return 'locked and unlocked'
  })

  check('a child process opens it by key and by id, reads, and writes back', () => {
    const wrap = (process.env.SYSV_SHM_SMOKE_WRAP ?? '').split(' ').filter(Boolean)
    const args = [...wrap, process.execPath, self, '--child', String(key), String(shm.stat().id), '--package', spec]
    const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 120_000 })
    assert(r.status === 0, `child exited ${r.status} ${r.signal ?? ''}: ${r.error ?? ''} ${r.stderr}`)
    const child = JSON.parse(r.stdout)
    assert(child.got === `ping ${process.arch} ${process.pid}`, `child read ${JSON.stringify(child.got)}`)
    assert(child.readOnlyCode === 'ERR_SHM_READ_ONLY', `read-only write gave ${child.readOnlyCode}`)
    assert(child.attachCount === 4, `child saw attachCount ${child.attachCount}, expected 4 (parent + 3)`)
    const reply = shm.buffer.subarray(256, 256 + child.reply.length).toString()
    assert(reply === child.reply, `parent read ${JSON.stringify(reply)}`)
    assert(shm.stat().attachCount === 1, 'the child did not detach')
    mark('open', 'openById')
    return `child ${child.arch}: ${reply}`
  })

  check('openById, attached, zeroCopy:false, remove, removeById, detach', () => {
    const other = SharedMemory.openById(shm.stat().id, { zeroCopy: false })
    assert(other.attached && other.zeroCopy === false, 'zeroCopy:false')
    throwsShmError(() => other.buffer, ['ERR_SHM_NO_ZERO_COPY'])
    other.detach()
    throwsShmError(() => other.read(0, 1), ['ERR_SHM_DETACHED'])
    const id = shm.stat().id
    shm.remove()
    assert(shm.stat().removed === true, 'not marked removed')
    throwsShmError(() => SharedMemory.open(key), ['ENOENT'])
    shm.detach()
    assert(!shm.attached, 'still attached')
    throwsShmError(() => SharedMemory.statById(id), ['EINVAL', 'EIDRM'])
    const priv = SharedMemory.create(IPC_PRIVATE, 100)
    created.push(priv)
    const privId = priv.stat().id
    priv.detach()
    SharedMemory.removeById(privId)
    throwsShmError(() => SharedMemory.statById(privId), ['EINVAL', 'EIDRM'])
    mark('attached', 'zeroCopy', 'remove', 'removeById', 'detach')
  })

  check('every SharedMemory method was exercised', () => {
    const names = [
      ...Object.getOwnPropertyNames(SharedMemory).filter((n) => typeof SharedMemory[n] === 'function'),
      ...Object.getOwnPropertyNames(SharedMemory.prototype).filter((n) => n !== 'constructor'),
    ]
    const missed = names.filter((n) => !exercised.has(n))
    // New methods land often: name them, but only fail on the ones the issue lists.
    const required = ['create', 'open', 'openById', 'write', 'read', 'buffer', 'stat', 'remove', 'detach']
    assert(required.every((n) => exercised.has(n)), `not exercised: ${required.filter((n) => !exercised.has(n))}`)
    return missed.length ? `also has ${missed.join(', ')} (not called here)` : `${names.length} methods`
  })
} finally {
  for (const h of created) {
    try {
      if (h.attached) h.remove()
    } catch {}
    try {
      h.detach()
    } catch {}
  }
  rmSync(tmp, { recursive: true, force: true })
}

console.log(`smoke: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)

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
import { spawn } from 'node:child_process'
import { once } from 'node:events'
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
/** The byte offset of the wait cell the child notifies (SharedMemory.wait/notify). */
const FUTEX_CELL = 512

// ---- the child: `smoke.mjs --child JSON` ------------------------------------
// JSON: { key, id, sem?, queue?, channel? }, the keys the parent made.
if (argv[0] === '--child') {
  const ids = JSON.parse(argv[1])
  const byKey = SharedMemory.open(ids.key)
  const byId = SharedMemory.openById(ids.id)
  const ro = SharedMemory.open(ids.key, { readOnly: true })
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
  // Wake the parent blocked in wait() on the cell at FUTEX_CELL, if it has wait/notify.
  if (typeof byKey.notify === 'function') {
    Atomics.store(new Int32Array(byKey.buffer.buffer, byKey.buffer.byteOffset + FUTEX_CELL, 1), 0, 1)
    byKey.notify(FUTEX_CELL)
  }
  if (ids.sem) m.Semaphore.open(ids.sem).release(1)
  if (ids.queue) m.MessageQueue.open(ids.queue).send(`queue ${reply}`, { type: 7 })
  if (ids.channel) {
    const ch = m.Channel.open(ids.channel)
    ch.send(`channel ${reply}`)
    ch.detach()
  }
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
    // `ExternalObject<T>` is a type napi-rs declares for the values of `External`s: no runtime export.
    const declared = [...readFileSync(join(root, 'binding.d.ts'), 'utf8').matchAll(/^export declare (?:function|class) (\w+)/gm)]
      .map((x) => x[1])
      .filter((name) => name !== 'ExternalObject')
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
    // Publish/subscribe in one process, on the zero-copy view and on the copy path: on arm64 this
    // runs the seqlock's native fences (Words.fence), which x64 does not call.
    Publisher: () => {
      for (const zeroCopy of [true, false]) {
        const pub = m.Publisher.create(IPC_PRIVATE, { capacity: 4, maxMessage: 64, zeroCopy })
        try {
          const sub = m.Subscriber.openById(pub.id, { zeroCopy })
          try {
            for (let i = 0; i < 10; i++) assert(pub.publish(`m${i}`), 'publish returned false')
            const got = []
            for (let b; (b = sub.tryReceive()) !== null; ) got.push(String(b))
            // Overwrite policy, 4 slots: the last 4 are kept, 6 were missed.
            assert(got.join() === 'm6,m7,m8,m9' && sub.missed === 6, `zeroCopy ${zeroCopy}: got ${got.join()}, missed ${sub.missed}`)
            assert(String(sub.latest()) === 'm9', `zeroCopy ${zeroCopy}: latest ${sub.latest()}`)
          } finally {
            sub.close()
          }
        } finally {
          pub.close()
        }
      }
      return 'publish, tryReceive, latest on both paths'
    },
    Subscriber: () => 'with Publisher',
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

  // The other primitives, when this version has them: made here, used by the child by key.
  const others = {}
  const fresh = (make) => {
    for (let projId = 1 + (process.pid % 200); ; projId++) {
      const k = ftok(file, projId)
      try {
        return [k, make(k)]
      } catch (e) {
        if (!(e instanceof ShmError && e.code === 'EEXIST') || projId > 250) throw e
      }
    }
  }
  if (m.Semaphore) check('Semaphore.create', () => {
    ;[others.semKey, others.sem] = fresh((k) => m.Semaphore.create(k, { initial: 0 }))
    created.push(others.sem)
    return `id ${others.sem.id}`
  })
  if (m.MessageQueue) check('MessageQueue.create', () => {
    ;[others.queueKey, others.queue] = fresh((k) => m.MessageQueue.create(k))
    created.push(others.queue)
    return `id ${others.queue.id}`
  })
  if (m.Channel) check('Channel.create', () => {
    // (the first key tried is the segment's, which is taken: EEXIST, next)
    ;[others.channelKey, others.channel] = fresh((k) => m.Channel.create(k, 4096))
    created.push(others.channel)
    return `capacity ${others.channel.capacity}`
  })

  // The child runs while this process blocks in each wait below, so it is started, not waited for.
  const wrap = (process.env.SYSV_SHM_SMOKE_WRAP ?? '').split(' ').filter(Boolean)
  const ids = { key, id: shm.stat().id, sem: others.semKey, queue: others.queueKey, channel: others.channelKey }
  const args = [...wrap, process.execPath, self, '--child', JSON.stringify(ids), '--package', spec]
  const child = spawn(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let childOut = ''
  let childErr = ''
  child.stdout.on('data', (d) => (childOut += d))
  child.stderr.on('data', (d) => (childErr += d))
  const childExit = once(child, 'close')
  const WAIT = 120_000

  if (typeof shm.wait === 'function') check('SharedMemory.wait is woken by the child\'s notify', () => {
    mark('wait', 'notify')
    const cell = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset + FUTEX_CELL, 1)
    const result = shm.wait(FUTEX_CELL, 0, WAIT)
    assert(result !== 'timed-out' && Atomics.load(cell, 0) === 1, `wait: ${result}, cell ${Atomics.load(cell, 0)}`)
    return result
  })
  if (others.sem) check('Semaphore: acquire() gets what the child released', () => {
    assert(others.sem.acquire(1, { timeoutMs: WAIT }) === true, 'acquire timed out')
    assert(others.sem.value === 0, `value ${others.sem.value}`)
    return `semid ${others.sem.id}`
  })
  if (others.queue) check('MessageQueue: receive() gets what the child sent', () => {
    const msg = others.queue.receive({ type: 7, timeoutMs: WAIT })
    assert(msg.type === 7 && msg.data.toString().startsWith('queue pong'), `${msg.type} ${msg.data}`)
    return msg.data.toString()
  })
  if (others.channel) check('Channel: recv() gets what the child sent', () => {
    const msg = others.channel.recv(WAIT)
    assert(msg && msg.toString().startsWith('channel pong'), `got ${msg}`)
    return msg.toString()
  })

  const [code, signal] = await childExit
  if (typeof shm.waitAsync === 'function') {
    // Under qemu-user (7.2), which does not emulate futex_waitv, this takes the FUTEX_WAIT fallback.
    const r = await shm.waitAsync(FUTEX_CELL, 1, 50).catch((e) => e)
    check('SharedMemory.waitAsync times out when nobody notifies', () => {
      mark('waitAsync')
      assert(r === 'timed-out', String(r))
      return r
    })
  }
  check('a child process opens it by key and by id, reads, and writes back', () => {
    assert(code === 0, `child exited ${code} ${signal ?? ''}: ${childErr}`)
    const c = JSON.parse(childOut)
    assert(c.got === `ping ${process.arch} ${process.pid}`, `child read ${JSON.stringify(c.got)}`)
    assert(c.readOnlyCode === 'ERR_SHM_READ_ONLY', `read-only write gave ${c.readOnlyCode}`)
    assert(c.attachCount === 4, `child saw attachCount ${c.attachCount}, expected 4 (parent + 3)`)
    const reply = shm.buffer.subarray(256, 256 + c.reply.length).toString()
    assert(reply === c.reply, `parent read ${JSON.stringify(reply)}`)
    assert(shm.stat().attachCount === 1, 'the child did not detach')
    mark('open', 'openById')
    return `child ${c.arch}: ${reply}`
  })

  for (const [name, h] of Object.entries(others)) {
    if (typeof h !== 'object') continue
    check(`${h.constructor.name}.remove`, () => {
      h.remove()
      if (typeof h.detach === 'function') h.detach()
      return name
    })
  }

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
      if (h.attached !== false) h.remove()
    } catch {}
    try {
      h.detach?.()
    } catch {}
  }
  rmSync(tmp, { recursive: true, force: true })
}

console.log(`smoke: ${passed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)

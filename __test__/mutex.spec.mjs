import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { IPC_PRIVATE, Mutex, SharedMemory, ShmError } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { asleepInFutex, compileC, run, runNode, until } from './fixtures/procs.mjs'
import { PKG } from './helpers.mjs'

// The mutex is at OFF; the fixtures keep a plain counter at OFF + 32 and a stop flag at OFF + 40.
const OFF = 64
/** Linux's PID_MAX_LIMIT: the largest TID the layout allows. */
const PID_MAX = 1 << 22

// Removed at once: it lives while attached (children attach it by id).
function segment(t, size = 4096) {
  const shm = SharedMemory.create(IPC_PRIVATE, size)
  shm.remove()
  t.teardown(() => shm.detach())
  return shm
}
const counter = (shm) => shm.read(OFF + 32, 4).readUInt32LE(0)
const stop = (shm) => Atomics.store(new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset + OFF + 40, 1), 0, 1)
const lockWord = (shm) => shm.read(OFF + 8, 4).readUInt32LE(0)
const waiters = (shm) => shm.read(OFF + 12, 4).readUInt32LE(0)
const child = (args, opts) => runNode('mutex-child.mjs', args, opts)
/** Starts `hold`: resolves the running child once it printed "locked", and its exit promise. */
async function holder(shm) {
  let proc
  const done = child(['hold', shm.id, OFF], { started: (c) => (proc = c) })
  await until(() => proc && lockWord(shm) === proc.pid, 'the holder to lock')
  return { proc, done }
}

let peer
test.before(() => {
  peer = compileC('mutex-peer')
})
test.after.always(async () => {
  if (peer) await rm(peer, { force: true })
})

// 4 processes × 100,000 increments: each increment is a read and a separate write of the
// counter, so two holders at once lose increments; with a lock that does not exclude (checked:
// the fast path's compareExchange replaced by a store) the total falls short. One process uses
// the native path (no zero-copy view).
test('4 processes × 100,000 plain increments under the lock end exact', async (t) => {
  const shm = segment(t)
  Mutex.create(shm, OFF)
  const n = 100_000
  const rs = await Promise.all([0, 1, 2, 3].map((k) => child(['count', shm.id, OFF, n, k === 3 ? 'copy' : ''])))
  for (const r of rs) t.is(r.code, 0, r.stderr)
  t.is(counter(shm), 4 * n)
  t.is(lockWord(shm), 0)
})

test('a C program following the layout shares the lock with Node processes', async (t) => {
  const shm = segment(t)
  Mutex.create(shm, OFF)
  const n = 20_000
  const rs = await Promise.all([
    run(peer, ['count', shm.id, OFF, n]),
    run(peer, ['count', shm.id, OFF, n]),
    child(['count', shm.id, OFF, n]),
    child(['count', shm.id, OFF, n]),
  ])
  for (const r of rs) t.is(r.code, 0, r.stderr)
  t.is(counter(shm), 4 * n)
})

for (const mixed of [false, true]) {
  test(`holder killed (SIGKILL) while holding: exactly one waiter (${mixed ? 'sync and async' : 'sync'}) gets ownerDied`, async (t) => {
    const shm = segment(t)
    Mutex.create(shm, OFF)
    const h = await holder(shm)
    const pids = []
    const waiting = [0, 1, 2].map((k) =>
      child([mixed && k > 0 ? 'wait-async' : 'wait', shm.id, OFF], { started: (c) => pids.push(c.pid) }),
    )
    // All three wait (the sync ones asleep in the futex) before the holder dies.
    await until(() => pids.length === 3 && waiters(shm) >= (mixed ? 1 : 3), 'the waiters to sleep')
    h.proc.kill('SIGKILL')
    await h.done
    const rs = await Promise.all(waiting)
    for (const r of rs) t.is(r.code, 0, r.stderr)
    const died = rs.map((r) => JSON.parse(r.stdout).ownerDied)
    t.deepEqual(
      died.filter((d) => d),
      [true],
    )
    t.is(lockWord(shm), 0)
  })
}

/** A mutex whose holder, another process, was killed while holding it. */
async function orphaned(t) {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const h = await holder(shm)
  h.proc.kill('SIGKILL')
  await h.done
  return { shm, m }
}

test('ownerDied, unlock without consistent(): every later lock is ENOTRECOVERABLE', async (t) => {
  const { shm, m } = await orphaned(t)
  t.true(m.lock())
  t.true(m.ownerDied)
  m.unlock()
  for (const f of [() => m.lock(), () => m.tryLock(), () => m.lock(10)]) {
    t.is(t.throws(f, { instanceOf: ShmError }).code, 'ENOTRECOVERABLE')
  }
  await t.throwsAsync(m.lockAsync(), { code: 'ENOTRECOVERABLE' })
  const r = await child(['wait', shm.id, OFF])
  t.not(r.code, 0)
  t.regex(r.stderr, /ENOTRECOVERABLE/)
})

test('ownerDied, consistent(): the lock works on, across processes', async (t) => {
  const { shm, m } = await orphaned(t)
  t.true(m.tryLock())
  t.true(m.ownerDied)
  m.consistent()
  t.false(m.ownerDied)
  m.unlock()
  const r = await child(['count', shm.id, OFF, 1000])
  t.is(r.code, 0, r.stderr)
  t.is(counter(shm), 1000)
  t.true(m.tryLock())
  t.false(m.ownerDied)
  t.is(t.throws(() => m.consistent()).code, 'EINVAL')
  m.unlock()
})

test('unlock by a non-holder is EPERM: another process, another worker thread of this process', async (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  t.is(t.throws(() => m.unlock(), { instanceOf: ShmError }).code, 'EPERM')
  m.lock()
  const r = await child(['unlock', shm.id, OFF])
  t.is(r.stdout.trim(), 'EPERM', r.stderr)
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const { SharedMemory, Mutex } = require(workerData.pkg)
     const shm = SharedMemory.openById(workerData.id)
     const m = Mutex.at(shm, workerData.off)
     const out = {}
     try { m.unlock(); out.unlock = 'unlocked' } catch (e) { out.unlock = e.code }
     out.lock = m.lock(20)
     out.tryLock = m.tryLock()
     shm.detach()
     parentPort.postMessage(out)`,
    { eval: true, workerData: { pkg: PKG, id: shm.id, off: OFF } },
  )
  const out = await new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
  await w.terminate()
  // The worker is another owner: it neither unlocks nor takes the lock the main thread holds.
  t.deepEqual(out, { unlock: 'EPERM', lock: false, tryLock: false })
  t.true(m.held)
  m.unlock()
  t.false(m.held)
})

test('lockAsync cancelled by an AbortSignal rejects like waitAsync and never takes the lock', async (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const h = await holder(shm)
  const ac = new AbortController()
  const p = m.lockAsync({ signal: ac.signal })
  await until(() => waiters(shm) === 1, 'lockAsync to sleep')
  ac.abort()
  // The same rejection as SharedMemory.waitAsync's for that signal (name, code, cause).
  const err = await p.then(
    () => 'resolved',
    (e) => e,
  )
  const same = (e, ref) => {
    t.is(e.name, 'AbortError')
    t.is(e.name, ref.name)
    t.is(e.code, ref.code)
    t.is(e.cause, ref.cause)
  }
  same(err, await shm.waitAsync(OFF + 48, 0, undefined, { signal: ac.signal }).catch((e) => e))
  stop(shm)
  t.is((await h.done).code, 0)
  // The holder released it; the cancelled call left it free (no late acquisition).
  await new Promise((r) => setTimeout(r, 100))
  t.false(m.held)
  t.is(lockWord(shm), 0)
  const aborted = AbortSignal.abort()
  same(await m.lockAsync({ signal: aborted }).catch((e) => e), await shm.waitAsync(OFF + 48, 0, undefined, { signal: aborted }).catch((e) => e))
  t.is(lockWord(shm), 0)
  t.true(await m.lockAsync({ timeoutMs: 1000 }))
  m.unlock()
})

test('lock and lockAsync time out (false) while another process holds the lock; acquire throws ETIMEDOUT', async (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const h = await holder(shm)
  t.false(m.tryLock())
  t.false(m.lock(30))
  t.false(await m.lockAsync({ timeoutMs: 30 }))
  t.is(t.throws(() => m.acquire(10)).code, 'ETIMEDOUT')
  stop(shm)
  await h.done
  // What `using guard = m.acquire()` does (this Node has no `using` syntax): dispose at scope end.
  const guard = m.acquire()
  t.false(guard.ownerDied)
  t.true(m.held)
  guard[Symbol.dispose]()
  t.false(m.held)
  guard[Symbol.dispose]()
  t.is(t.throws(() => m.unlock()).code, 'EPERM')
})

// Starvation, as the issue defines it: a waiter that does not get the lock within 10 s while two
// other processes lock and unlock in a tight loop is starved. 10 s is that definition, a
// correctness bound (the handoff word gives the waiter its turn in milliseconds), not a speed one.
// The loops hold the lock HOLD_US each time and take it again at once, so the lock is free only
// for the instants between an unlock and the next lock. On this 2-CPU VM the waiter won one of
// those races within about a second even with the handoff turned off (tried with 100, 500 and
// 2000 us): the test guards the outcome, the handoff is what makes it hold on any scheduler.
const HOLD_US = 500
test('no starvation: a waiter gets the lock within 10 s while 2 processes hold it in a tight loop', async (t) => {
  const shm = segment(t)
  Mutex.create(shm, OFF)
  const loops = [child(['loop', shm.id, OFF, HOLD_US]), child(['loop', shm.id, OFF, HOLD_US])]
  t.teardown(() => stop(shm))
  await until(() => shm.read(OFF + 44, 4).readInt32LE(0) === 2, 'both loops to run')
  const r = await child(['lock', shm.id, OFF])
  stop(shm)
  const ls = await Promise.all(loops)
  for (const l of ls) t.true(Number(l.stdout) > 0, l.stderr)
  t.is(r.code, 0, r.stderr)
  const ms = Number(r.stdout.split(' ')[1])
  t.true(ms < 10_000, `the waiter got the lock after ${ms} ms`)
})

test('Mutex.at on garbage is ERR_MUTEX_CORRUPT; a lock word out of the rules too, never a hang', (t) => {
  const shm = segment(t)
  t.is(t.throws(() => Mutex.at(shm, OFF), { instanceOf: ShmError }).code, 'ERR_MUTEX_CORRUPT')
  const m = Mutex.create(shm, OFF)
  t.is(Mutex.at(shm, OFF).byteOffset, OFF)
  shm.buffer.writeUInt32LE(2, OFF + 4)
  t.regex(t.throws(() => Mutex.at(shm, OFF)).message, /version 2/)
  shm.buffer.writeUInt32LE(1, OFF + 4)
  for (const bad of [0x8000_0000, 0x4000_0000, (1 << 22) + 1, 0xffff_ffff]) {
    shm.buffer.writeUInt32LE(bad, OFF + 8)
    for (const f of [() => m.lock(), () => m.tryLock(), () => m.unlock(), () => Mutex.at(shm, OFF)]) {
      t.is(t.throws(f, { instanceOf: ShmError }).code, 'ERR_MUTEX_CORRUPT', `0x${bad.toString(16)}`)
    }
  }
  // A TID in range that names no live thread (the owner start does not match) is a dead holder.
  shm.buffer.writeUInt32LE(1, OFF + 8) // init, pid 1, alive, but its published start time is wrong
  shm.buffer.writeUInt32LE(1, OFF + 16)
  shm.buffer.writeUInt32LE(0xdead, OFF + 20)
  t.true(m.tryLock())
  t.true(m.ownerDied)
  m.consistent()
  m.unlock()
})

test('arguments are checked before any access', (t) => {
  const shm = segment(t, 100)
  t.throws(() => Mutex.create(shm, 4), { instanceOf: RangeError })
  t.throws(() => Mutex.create(shm, 72), { instanceOf: RangeError })
  t.throws(() => Mutex.create({}, 0), { instanceOf: TypeError })
  const ro = SharedMemory.openById(shm.id, { readOnly: true })
  t.teardown(() => ro.detach())
  t.is(t.throws(() => Mutex.create(ro, 64), { instanceOf: ShmError }).code, 'ERR_SHM_READ_ONLY')
  const m = Mutex.create(shm, 64)
  t.is(t.throws(() => Mutex.at(ro, 64), { instanceOf: ShmError }).code, 'ERR_SHM_READ_ONLY')
  t.throws(() => m.lock(-1), { instanceOf: RangeError })
  t.throws(() => m.lockAsync({ bogus: 1 }), { instanceOf: TypeError })
  shm.detach()
  t.is(t.throws(() => m.lock()).code, 'ERR_SHM_DETACHED')
})

test('without zero-copy views the native path locks the same words (a sleeping waiter is woken)', async (t) => {
  const shm = segment(t)
  const copy = SharedMemory.openById(shm.id, { zeroCopy: false })
  t.teardown(() => copy.detach())
  const m = Mutex.create(copy, OFF)
  t.false(copy.zeroCopy)
  t.true(m.lock())
  let pid
  const w = child(['lock', shm.id, OFF], { started: (c) => (pid = c.pid) })
  await until(() => pid && waiters(shm) === 1 && asleepInFutex(pid), 'the child to sleep on the lock')
  m.unlock()
  const r = await w
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /^locked/)
})

test('a worker thread that ends while holding the lock is a dead holder: the main thread gets ownerDied', async (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const { SharedMemory, Mutex } = require(workerData.pkg)
     const shm = SharedMemory.openById(workerData.id)
     Mutex.at(shm, workerData.off).lock()
     parentPort.postMessage('locked')
     setInterval(() => {}, 1000) // lives (holding the lock) until terminated`,
    { eval: true, workerData: { pkg: PKG, id: shm.id, off: OFF } },
  )
  await new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
  const tid = lockWord(shm)
  t.not(tid, process.pid) // the worker's own TID, not the process's
  t.false(m.tryLock()) // alive: not taken
  await w.terminate()
  t.true(m.lock())
  t.true(m.ownerDied)
  m.consistent()
  m.unlock()
})

test('a live TID in the lock word is never taken over: unpublished start time, or published and matching', (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const parent = process.ppid // alive while this test runs
  const start = Number(readFileSync(`/proc/${parent}/stat`, 'utf8').split(') ')[1].split(' ')[19])
  shm.buffer.writeUInt32LE(parent, OFF + 8)
  t.false(m.tryLock()) // owner_tid 0: not yet published, the TID exists: alive
  t.false(m.lock(20))
  shm.buffer.writeUInt32LE(start >>> 0, OFF + 20)
  shm.buffer.writeUInt32LE(parent, OFF + 16)
  t.false(m.tryLock()) // published and matching: alive
  shm.buffer.writeUInt32LE((start + 1) >>> 0, OFF + 20)
  t.true(m.tryLock()) // another start time: the TID was reused, the holder is dead
  t.true(m.ownerDied)
  m.consistent()
  m.unlock()
})

test('one thread is one owner: its tryLock is false, its lock is EDEADLK, a second lockAsync waits for the unlock', async (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  t.true(await m.lockAsync())
  t.false(m.tryLock())
  t.is(t.throws(() => m.lock(), { instanceOf: ShmError }).code, 'EDEADLK')
  let second
  const p = m.lockAsync().then((v) => (second = v))
  await until(() => waiters(shm) === 1, 'the second lockAsync to sleep')
  t.is(second, undefined)
  m.unlock()
  t.true(await p)
  t.true(m.held)
  m.unlock()
  t.is(lockWord(shm), 0)
})

test('a handoff word naming no waiter (stale, or written by a hostile peer) delays a locker, never blocks it', (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  shm.buffer.writeUInt32LE(0xffff_fff0, OFF + 24)
  t.true(m.tryLock()) // tryLock ignores the handoff word
  m.unlock()
  t.true(m.lock()) // lock defers to it for at most 250 ms, then clears it
  t.is(shm.read(OFF + 24, 4).readUInt32LE(0), 0)
  m.unlock()
})

test('two lockers that find the same holder dead: one takes the lock over, the other does not', (t) => {
  const shm = segment(t)
  const m = Mutex.create(shm, OFF)
  const other = Mutex.at(shm, OFF)
  shm.buffer.writeUInt32LE(PID_MAX, OFF + 8) // a TID that names no thread: a dead holder
  // The other locker takes it over between this one's liveness check and its compare-exchange.
  const alive = native.mutexHolderAlive
  let inner
  native.mutexHolderAlive = (...args) => {
    native.mutexHolderAlive = alive
    const dead = !alive(...args)
    inner = other.tryLock()
    return !dead
  }
  t.teardown(() => (native.mutexHolderAlive = alive))
  t.false(m.tryLock())
  t.true(inner)
  t.true(other.ownerDied)
  other.consistent()
  other.unlock()
})

import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { IPC_PRIVATE, Semaphore, ShmError, listSemaphores } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { PKG, removeOnTeardown, runNodeAsNobody, runNodeWithThreadLimit } from './helpers.mjs'
import { runNode, threadsNamed, until } from './fixtures/procs.mjs'

const semaphore = (t, options) => removeOnTeardown(t, Semaphore.create(IPC_PRIVATE, options))

test('create sets every value and marks the set initialised; values, setValue, setValues', (t) => {
  const sem = semaphore(t, { count: 3, initial: 2 })
  t.true(sem.created)
  t.deepEqual(sem.values(), [2, 2, 2])
  const st = sem.stat()
  t.is(st.count, 3)
  t.is(st.mode, 0o600)
  t.true(st.opTime instanceof Date, 'the no-op semop set sem_otime')
  sem.setValue(5, 1)
  t.is(sem.getValue(1), 5)
  t.is(sem.value, 2)
  sem.setValues([0, 1, 32767])
  t.deepEqual(sem.values(), [0, 1, 32767])
  t.throws(() => sem.setValues([1]), { instanceOf: RangeError })
  t.throws(() => sem.setValue(32768), { instanceOf: RangeError })
  t.throws(() => sem.release(1, { index: 2 }), { instanceOf: ShmError, code: 'ERANGE' })
  t.deepEqual(Semaphore.statById(sem.id).count, 3)
})

test('an index of 2**32 is a RangeError, in the TS face and in the binding: it never reads or sets semaphore 0', (t) => {
  const sem = semaphore(t, { count: 1, initial: 7 })
  for (const index of [2 ** 32, 2 ** 32 + 1, 2 ** 40]) {
    t.throws(() => sem.getValue(index), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => native.semGetValue(sem.id, index), { instanceOf: RangeError, message: /index/ })
    t.throws(() => native.semSetValue(sem.id, index, 3), { instanceOf: RangeError, message: /index/ })
    t.throws(() => native.semCounts(sem.id, index), { instanceOf: RangeError, message: /index/ })
    // semop's operations too: a u32 field would have wrapped these to semaphore 0.
    for (const op of [{ index, delta: -1 }, { index: 0, delta: 2 ** 32 - 1 }, { index: 0.5, delta: -1 }, { index: 0, delta: -1.5 }]) {
      t.throws(() => native.semOp(sem.id, [{ ...op, undo: false, nowait: true }], undefined), { instanceOf: RangeError, message: /semop index/ })
    }
  }
  t.is(sem.getValue(0), 7)
})

test('a value above SEMVMX is refused with the value given, never clamped to 65535 on the way (TS face, binding, create)', (t) => {
  const sem = semaphore(t, { count: 2, initial: 1 })
  for (const value of [32768, 65535, 65536, 70000, 2 ** 32 - 1]) {
    const message = new RegExp(`at most 32767, got ${value}$`)
    t.throws(() => sem.setValue(value), { instanceOf: RangeError, message })
    t.throws(() => native.semSetValue(sem.id, 0, value), { instanceOf: RangeError, message })
    t.throws(() => sem.setValues([0, value]), { instanceOf: RangeError, message })
    t.throws(() => Semaphore.create(IPC_PRIVATE, { initial: value }), { instanceOf: RangeError, message })
  }
  t.deepEqual(sem.values(), [1, 1])
})

test.serial('a terminated worker cancels its pending acquireAsync: its thread ends, and a unit released after stays', async (t) => {
  const sem = semaphore(t, { initial: 0 })
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const { Semaphore } = require(${JSON.stringify(PKG)});
     Semaphore.openById(${sem.id}).acquireAsync().then((ok) => parentPort.postMessage('acquired ' + ok));
     parentPort.postMessage('waiting');`,
    { eval: true },
  )
  const [msg] = await once(worker, 'message')
  t.is(msg, 'waiting')
  await until(() => sem.waiters().forIncrease === 1, 'the worker\'s semop asleep')
  await worker.terminate()
  // Before the fix the thread went on taking semop slices for a worker that no longer existed.
  await until(() => threadsNamed(process.pid, 'sysv-shm-wait').length === 0, 'the semop thread of the terminated worker ended')
  t.is(sem.waiters().forIncrease, 0)
  sem.release()
  t.is(sem.value, 1)
})

test('out of threads (RLIMIT_NPROC): acquireAsync rejects with EAGAIN; the pending ones still cancel and take nothing', async (t) => {
  // As a user of its own (root is not held to RLIMIT_NPROC), with room for Node's own threads and a few more.
  // Every *Async call rejects, never throws (since the async/cancel rework): a call that found no
  // thread rejects with EAGAIN from pthread_create; the others are cancelled by their tokens.
  const r = await runNodeWithThreadLimit(
    `import { native } from ${JSON.stringify(new URL('../dist/src/binding.js', import.meta.url).href)}
const { Semaphore } = shm
const sem = Semaphore.create(IPC_PRIVATE, { initial: 0 })
const take = [{ index: 0, delta: -1, undo: false, nowait: false }]
const tokens = Array.from({ length: 100 }, () => new native.WaitToken())
const pending = tokens.map((token) => native.semOpAsync(sem.id, take, undefined, token).then((v) => v, (e) => e))
await new Promise((r) => setTimeout(r, 50))
for (const token of tokens) token.cancel()
const results = await Promise.all(pending)
const failed = results.filter((e) => e.code !== 'ABORT_ERR')
const err = failed[0]
const value = sem.value
sem.remove()
console.log(JSON.stringify({ started: results.length - failed.length, name: err?.name, code: err?.code, syscall: err?.syscall,
  sameFailure: failed.every((e) => e.code === err.code && e.syscall === err.syscall), value }))`,
    {},
  )
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.true(out.started > 0 && out.started < 100, `started ${out.started}`)
  t.like(out, { name: 'ShmError', code: 'EAGAIN', syscall: 'pthread_create', sameFailure: true, value: 0 })
})

test('a holder killed with SIGKILL gives its unit back (SEM_UNDO)', async (t) => {
  const sem = semaphore(t, { initial: 1 })
  let child
  const done = runNode('sem-child.mjs', ['hold', sem.id], { started: (c) => (child = c) })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  await until(() => out.includes('held'), 'the child to hold the semaphore')
  t.is(sem.value, 0)
  t.false(sem.tryAcquire())
  child.kill('SIGKILL')
  const r = await done
  t.is(r.signal, 'SIGKILL')
  t.is(sem.value, 1, 'the kernel undid the acquire')
  t.true(sem.tryAcquire())
  sem.release()
})

test('without undo, a release by a process that exits stays', async (t) => {
  const sem = semaphore(t)
  const r = await runNode('sem-child.mjs', ['release', sem.id, 3, 'false'])
  t.is(r.stdout.trim(), 'released', r.stderr)
  t.is(sem.value, 3)
  const r2 = await runNode('sem-child.mjs', ['release', sem.id, 2, 'true'])
  t.is(r2.stdout.trim(), 'released', r2.stderr)
  t.is(sem.value, 3, 'an undo release is taken back at exit')
})

test('acquire waits for a release from another process', async (t) => {
  const sem = semaphore(t)
  const child = runNode('sem-child.mjs', ['acquire', sem.id])
  await until(() => sem.waiters().forIncrease === 1, 'the child to wait (GETNCNT)')
  sem.release(1, { undo: false })
  const r = await child
  t.is(r.stdout.trim(), 'true')
  t.is(sem.value, 1, 'the child took the unit with SEM_UNDO and exited: the kernel gave it back')
  t.is(sem.waiters().lastPid, r.pid)
})

test('timeouts: acquire and acquireAsync report false, the value is unchanged', async (t) => {
  const sem = semaphore(t)
  t.false(sem.acquire(1, { timeoutMs: 5 }))
  t.false(sem.acquire(1, { timeoutMs: 0 }))
  t.false(await sem.acquireAsync(1, { timeoutMs: 5 }))
  t.false(await sem.acquireAsync(1, { timeoutMs: 150 }), 'longer than one 100 ms slice')
  const r = await runNode('sem-child.mjs', ['acquire', sem.id, 5])
  t.is(r.stdout.trim(), 'false', r.stderr)
  t.is(sem.value, 0)
  t.false(sem.tryAcquire())
  sem.release(2)
  t.true(sem.tryAcquire(2))
  t.false(sem.tryAcquire())
})

test('removing the set wakes a sleeping waiter with EIDRM', async (t) => {
  const sem = Semaphore.create(IPC_PRIVATE)
  const child = runNode('sem-child.mjs', ['acquire', sem.id])
  await until(() => sem.waiters().forIncrease === 1, 'the child to sleep in semop')
  sem.remove()
  t.is((await child).stdout.trim(), 'EIDRM semop')
  t.throws(() => sem.value, { instanceOf: ShmError, code: 'EINVAL' })
})

test('acquireAsync rejects with EIDRM when the set is removed', async (t) => {
  const sem = Semaphore.create(IPC_PRIVATE)
  const p = sem.acquireAsync(1, { timeoutMs: 20_000 })
  await until(() => sem.waiters().forIncrease === 1, 'the async wait to sleep')
  sem.remove()
  const err = await t.throwsAsync(p, { instanceOf: ShmError })
  t.is(err.code, 'EIDRM')
  t.is(err.syscall, 'semtimedop')
})

test('zero-wait: waitForZero in another process returns when the value reaches 0', async (t) => {
  const sem = semaphore(t, { initial: 1 })
  const child = runNode('sem-child.mjs', ['zero', sem.id])
  await until(() => sem.waiters().forZero === 1, 'the child to wait for zero (GETZCNT)')
  t.true(sem.acquire())
  t.is((await child).stdout.trim(), 'true')
  t.true(sem.waitForZero({ timeoutMs: 0 }))
  sem.release()
  t.false(sem.waitForZero({ timeoutMs: 5 }))
})

test('acquireAsync does not block the event loop or the libuv pool; another process releases', async (t) => {
  const sem = semaphore(t)
  const waits = Array.from({ length: 6 }, () => sem.acquireAsync(1, { undo: false }))
  await until(() => sem.waiters().forIncrease === 6, 'six async waiters')
  const files = await Promise.all(Array.from({ length: 8 }, () => readFile(new URL(import.meta.url))))
  t.true(files.every((f) => f.length > 0))
  const r = await runNode('sem-child.mjs', ['release', sem.id, 6, 'false'])
  t.is(r.stdout.trim(), 'released', r.stderr)
  t.deepEqual(await Promise.all(waits), Array(6).fill(true))
  t.is(sem.value, 0)
})

test('an AbortSignal cancels acquireAsync without taking a unit', async (t) => {
  const sem = semaphore(t)
  const ac = new AbortController()
  const p = sem.acquireAsync(1, { signal: ac.signal })
  await until(() => sem.waiters().forIncrease === 1, 'the async wait')
  ac.abort()
  const err = await p.then(
    () => null,
    (e) => e,
  )
  t.is(err?.name, 'AbortError')
  sem.release(1, { undo: false })
  t.is(sem.value, 1, 'the cancelled wait took nothing')
  await until(() => sem.waiters().forIncrease === 0, 'the waiter thread to leave')
  const reason = new Error('no')
  // Since the async/cancel rework: Node's AbortError with the reason as its cause (was: the reason itself).
  const aborted = await t.throwsAsync(sem.acquireAsync(1, { signal: AbortSignal.abort(reason) }), { name: 'AbortError', code: 'ABORT_ERR' })
  t.is(aborted.cause, reason)
})

test('open by key, exclusive creation, and argument errors before any syscall', (t) => {
  const key = 0x5d000000 + (process.pid & 0xffff) * 16 + 5
  const a = Semaphore.create(key, { initial: 4 })
  t.teardown(() => a.remove())
  const b = Semaphore.open(key)
  t.is(b.id, a.id)
  t.is(b.value, 4)
  const c = Semaphore.create(key, { initial: 9, exclusive: false })
  t.false(c.created)
  t.is(c.value, 4, 'opening leaves values alone')
  const exists = t.throws(() => Semaphore.create(key), { instanceOf: ShmError, code: 'EEXIST' })
  t.is(exists.syscall, 'semget')
  t.is(Semaphore.statById(a.id).key, key >>> 0)

  t.throws(() => Semaphore.open(0), { instanceOf: RangeError })
  t.throws(() => Semaphore.create(IPC_PRIVATE, { count: 0 }), { instanceOf: RangeError })
  t.throws(() => Semaphore.create(IPC_PRIVATE, { initial: 40000 }), { instanceOf: RangeError })
  t.throws(() => Semaphore.create(IPC_PRIVATE, { size: 1 }), { instanceOf: TypeError })
  t.throws(() => a.acquire(0), { instanceOf: RangeError })
  t.throws(() => a.acquire(1, { timeoutMs: -1 }), { instanceOf: RangeError })
  t.throws(() => a.release(1, { undo: 'yes' }), { instanceOf: TypeError })
  t.throws(() => Semaphore.openById(0x7ffffff0), { instanceOf: ShmError, code: 'EINVAL' })
  a.set({ mode: 0o640 })
  t.is(a.stat().mode, 0o640)
})

test('listSemaphores lists every set as stat() shows it, also to a user who may not read it (SEM_STAT_ANY)', async (t) => {
  const key = 0x5d000000 + (process.pid & 0xffff) * 16 + 6
  const a = Semaphore.create(key, { count: 3, initial: 1, mode: 0o600 })
  t.teardown(() => a.remove())
  const b = semaphore(t, { mode: 0o644 })
  const listed = listSemaphores()
  t.deepEqual(listed.find((s) => s.id === a.id), a.stat())
  t.deepEqual(listed.find((s) => s.id === b.id), b.stat())
  t.like(listed.find((s) => s.id === a.id), { key, count: 3, mode: 0o600 })
  // Root reads everything; nobody may not read a 0600 set of root's, yet lists it.
  const r = await runNodeAsNobody(`
    const { Semaphore, listSemaphores } = shm;
    let stat;
    try { Semaphore.statById(${a.id}); stat = 'readable' } catch (e) { stat = e.code }
    const s = listSemaphores().find((s) => s.id === ${a.id});
    console.log(JSON.stringify({ stat, listed: s && { key: s.key, count: s.count, mode: s.mode, uid: s.uid } }));
  `)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { stat: 'EACCES', listed: { key, count: 3, mode: 0o600, uid: a.stat().uid } })
  b.remove()
  t.false(listSemaphores().some((s) => s.id === b.id))
})

// waitAsync, recvAsync and for-await without futex_waitv (Linux before 5.16, qemu-user): this file
// sets SYSV_SHM_FUTEX_WAITV=0 (fixtures/force-fallback.mjs, imported first), which forces the fallback (a pooled thread per pending wait, asleep
// in FUTEX_WAIT), then runs every test of futex.spec.mjs, channel.spec.mjs and async-cancel.spec.mjs again in this process,
// whose children inherit the variable; and adds tests of what is particular to the fallback.
import './fixtures/force-fallback.mjs'
import './futex.spec.mjs'
import './channel.spec.mjs'
import './async-cancel.spec.mjs'

import { release } from 'node:os'

import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ShmError } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { asleepInFutex, fallbackSleepers, run, runNode, threadsNamed, until } from './fixtures/procs.mjs'
import { runNodeWithThreadLimit } from './helpers.mjs'

function segment(t, size = 4096) {
  const shm = SharedMemory.create(IPC_PRIVATE, size)
  shm.remove()
  t.teardown(() => shm.detach())
  return shm
}

const view = (shm) => new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, shm.size >> 2)
const waiters = (shm, off) => new Uint32Array(shm.buffer.buffer, shm.buffer.byteOffset, shm.size >> 2)[(off >> 2) + 1]
const settled = (p) => p.then((v) => v, (e) => e)

function backendOf(value) {
  const script = `import { native } from ${JSON.stringify(new URL('../dist/src/binding.js', import.meta.url).href)}
process.stdout.write(native.futexAsyncBackend())`
  return run(process.execPath, ['--input-type=module', '-e', script], { env: { SYSV_SHM_FUTEX_WAITV: value } })
}

test.serial('SYSV_SHM_FUTEX_WAITV=0 selects the fallback here and in children; unset, the kernel decides', async (t) => {
  t.is(native.futexAsyncBackend(), 'futex')
  const forced = await backendOf('0')
  t.is(forced.stdout, 'futex', forced.stderr)
  const probed = await backendOf('')
  const [major, minor] = release().split('.').map(Number)
  // futex_waitv is Linux 5.16; qemu-user (SYSV_SHM_UNDER_QEMU=1 in scripts/test-prebuilt.sh) lacks it.
  const hasWaitv = (major > 5 || (major === 5 && minor >= 16)) && process.env.SYSV_SHM_UNDER_QEMU !== '1'
  t.is(probed.stdout, hasWaitv ? 'futex_waitv' : 'futex', probed.stderr)
})

// Serial (ava runs these before the concurrent tests): the thread counts are this process's.
test.serial('each pending wait sleeps in FUTEX_WAIT on a thread of its own; an abort wakes that thread only', async (t) => {
  const shm = segment(t)
  const plain = Array.from({ length: 5 }, (_, k) => shm.waitAsync(8 * k, 0))
  const ac = new AbortController()
  const aborted = settled(shm.waitAsync(40, 0, undefined, { signal: ac.signal }))
  // A synchronous waiter in another process on the aborted wait's cell.
  let pid
  let exited = false
  const child = runNode('futex-child.mjs', ['wait', shm.id, 40, 0, 60_000], { started: (c) => (pid = c.pid) }).then((r) => {
    exited = true
    return r
  })
  await until(() => fallbackSleepers(process.pid) === 6, 'six threads asleep in FUTEX_WAIT')
  t.is(threadsNamed(process.pid, 'sysv-shm-waiter').length, 0, 'no futex_waitv thread')
  await until(() => waiters(shm, 40) === 2 && asleepInFutex(pid), 'the child asleep on the same cell')

  ac.abort()
  t.is((await aborted)?.name, 'AbortError')
  t.is(waiters(shm, 40), 1, 'the aborted wait gave its count back; the child still counts')
  // The timer signal ends the aborted wait's FUTEX_WAIT (with no timeout it would sleep forever).
  await until(() => fallbackSleepers(process.pid) === 5, "the aborted wait's thread to leave FUTEX_WAIT")
  // A FUTEX_WAKE on the cell would have woken the child too ('ok' at once). Give it time to show.
  await new Promise((r) => setTimeout(r, 100))
  t.false(exited, 'the other process was not woken')
  t.true(asleepInFutex(pid))

  const i32 = view(shm)
  for (let k = 0; k < 5; k++) {
    Atomics.store(i32, 2 * k, 1)
    t.is(shm.notify(8 * k), 1, `cell ${8 * k}: one waiter, its own thread`)
  }
  t.deepEqual(await Promise.all(plain), Array(5).fill('ok'))
  Atomics.store(i32, 10, 1)
  t.is(shm.notify(40), 1)
  t.is((await child).stdout.trim(), 'ok')
  await until(() => fallbackSleepers(process.pid) === 0, 'every thread back in the pool')
})

test.serial('detach ends every pending wait and frees their threads; a new wait reuses one', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  const other = SharedMemory.openById(shm.id)
  shm.remove()
  t.teardown(() => other.detach())
  const waits = Array.from({ length: 20 }, (_, k) => settled(shm.waitAsync(8 * k, 0)))
  await until(() => fallbackSleepers(process.pid) === 20, '20 threads asleep in FUTEX_WAIT')
  const threads = new Set(threadsNamed(process.pid, 'sysv-shm-wait'))
  shm.detach()
  for (const r of await Promise.all(waits)) {
    t.true(r instanceof ShmError)
    t.is(r.code, 'ERR_SHM_DETACHED')
  }
  for (let k = 0; k < 20; k++) t.is(waiters(other, 8 * k), 0)
  await until(() => fallbackSleepers(process.pid) === 0, 'the threads to leave FUTEX_WAIT')
  // A pooled thread serves the next wait (no new thread).
  t.is(await other.waitAsync(0, 0, 1), 'timed-out')
  t.true(threadsNamed(process.pid, 'sysv-shm-wait').every((tid) => threads.has(tid)))
})

test('out of threads (RLIMIT_NPROC): waitAsync rejects with EAGAIN, pending waits still resolve, freed threads serve again', async (t) => {
  // As a user of its own (root is not held to RLIMIT_NPROC), with room for Node's own threads and a few more
  // (on top of nobody's threads elsewhere, e.g. another test file's children).
  const r = await runNodeWithThreadLimit(
    `const seg = SharedMemory.create(IPC_PRIVATE, 800)
seg.remove()
const i32 = new Int32Array(seg.buffer.buffer, seg.buffer.byteOffset, 200)
// Every *Async call rejects, never throws (since the async/cancel rework): a wait that found no
// thread rejects at once.
const waits = Array.from({ length: 100 }, (_, k) => seg.waitAsync(8 * k, 0).then((v) => v, (e) => e))
await new Promise((r) => setTimeout(r, 50))
for (let k = 0; k < 100; k++) { Atomics.store(i32, 2 * k, 1); seg.notify(8 * k) }
const results = await Promise.all(waits)
const errors = results.filter((x) => x !== 'ok')
const err = errors[0]
const after = await seg.waitAsync(8 * 99, 1, 1)
seg.detach()
console.log(JSON.stringify({ started: results.length - errors.length, name: err?.name, code: err?.code, syscall: err?.syscall,
  allOk: errors.every((e) => e.code === err.code && e.syscall === err.syscall), after }))`,
    { env: { SYSV_SHM_FUTEX_WAITV: '0' } },
  )
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.true(out.started > 0 && out.started < 100, `started ${out.started}`)
  t.like(out, { name: 'ShmError', code: 'EAGAIN', syscall: 'pthread_create', allOk: true, after: 'timed-out' })
})

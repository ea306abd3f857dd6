// Every blocking asynchronous call of every kind, driven by one table: each is cancelled by an
// AbortSignal at once and rejects with Node's AbortError; each rejects with the same ShmError
// shape when its object goes away; each frees its thread when the worker that started it is
// terminated. Plus the queue race (a message taken as its worker is terminated is not lost) and a
// semaphore wait that sleeps without 100 ms slices. futex-fallback.spec.mjs runs this file again
// with the fallback (a pooled thread per futex wait).
import { once } from 'node:events'
import { readFileSync, readdirSync } from 'node:fs'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { Channel, IPC_PRIVATE, MessageQueue, Semaphore, SharedMemory, ShmError } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { until } from './fixtures/procs.mjs'
import { PKG } from './helpers.mjs'

/** System call numbers of the calls a pooled thread blocks in. */
const NR = {
  x64: { msgsnd: 69, msgrcv: 70, semop: 65, semtimedop: 220, futex: 202 },
  arm64: { msgsnd: 189, msgrcv: 188, semop: 193, semtimedop: 192, futex: 98 },
}[process.arch]

/** This process's threads of sysv-shm (`sysv-shm-*`) blocked in one of `calls`: [{ tid, call }]. */
function blockedIn(calls) {
  const out = []
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (!readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('sysv-')) continue
      const f = readFileSync(`/proc/self/task/${tid}/syscall`, 'utf8').trim().split(' ')
      for (const call of calls) {
        // A futex counts only as a shared FUTEX_WAIT (op 0), the fallback's sleep on a cell;
        // idle pooled threads sleep in private futex ops.
        if (f[0] === String(NR[call]) && (call !== 'futex' || Number(f[2]) === 0)) out.push({ tid, call })
      }
    } catch {
      // the thread ended meanwhile
    }
  }
  return out
}

/** Removes `obj` when the test ends, unless the test removed it already. */
function removeLater(t, obj) {
  t.teardown(() => {
    try {
      obj.remove()
    } catch {
      // removed by the test
    }
  })
}

const pooledFutex = () => native.futexAsyncBackend() === 'futex'

/** futex_waitv(2)'s number: one in the generic table, 449 on x86_64 and arm64 alike. */
const SYS_FUTEX_WAITV = '449'

/**
 * How many asynchronous futex waits of this process are asleep in the kernel: with futex_waitv,
 * the waits listed by the sysv-shm-waiter threads blocked in futex_waitv (its 2nd argument, the
 * list's length, counts the thread's control word too); with the fallback, the pooled threads in
 * a shared FUTEX_WAIT. Seen from /proc like any other process would; unlike a waiter count it
 * covers waits on a word without one (a channel's receiver flag).
 */
function futexWaitsAsleep() {
  if (pooledFutex()) return blockedIn(['futex']).length
  let n = 0
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() !== 'sysv-shm-waiter') continue
      const f = readFileSync(`/proc/self/task/${tid}/syscall`, 'utf8').trim().split(' ')
      if (f[0] === SYS_FUTEX_WAITV) n += Number(f[2]) - 1
    } catch {
      // the thread ended meanwhile
    }
  }
  return n
}
const cellWaiters = (shm, off) => new Uint32Array(shm.buffer.buffer, shm.buffer.byteOffset, shm.size >> 2)[(off >> 2) + 1]

/**
 * The table: each kind makes its object (removed by `t.teardown`) and returns
 * - `start(signal)`: the pending call;
 * - `asleep()`: whether the call is asleep in the kernel (lower bound for "it blocks");
 * - `calls`: the system calls its pooled thread sleeps in (when it has one: `pooled()`);
 * - `gone()`: ends the object under the call, and `gone: { code, syscall }` the rejection;
 * - `worker`: code for a worker that starts the same call on the object (`ID` is its id).
 */
const KINDS = [
  {
    name: 'SharedMemory.waitAsync',
    pooled: pooledFutex,
    calls: ['futex'],
    make(t) {
      const shm = SharedMemory.create(IPC_PRIVATE, 4096)
      shm.remove()
      const other = SharedMemory.openById(shm.id)
      t.teardown(() => {
        shm.detach()
        other.detach()
      })
      return {
        id: shm.id,
        start: (signal) => shm.waitAsync(0, 0, undefined, { signal }),
        asleep: () => cellWaiters(other, 0) === 1,
        gone: () => shm.detach(),
        worker: `SharedMemory.openById(ID).waitAsync(0, 0)`,
        freed: () => cellWaiters(other, 0) === 0,
      }
    },
    gone: { code: 'ERR_SHM_DETACHED' },
  },
  {
    name: 'Channel.recvAsync',
    pooled: pooledFutex,
    calls: ['futex'],
    make(t) {
      const ch = Channel.create(IPC_PRIVATE, 4096)
      ch.remove()
      t.teardown(() => ch.detach())
      // No waiter count on the receiver's flag: the waits asleep in the kernel, counted from
      // /proc (futexWaitsAsleep), one more than before the call once it is armed, as many when
      // it is gone (cancelled, or its worker terminated).
      const before = futexWaitsAsleep()
      return {
        id: ch.id,
        start: (signal) => ch.recvAsync({ signal }),
        asleep: () => futexWaitsAsleep() === before + 1,
        gone: () => ch.detach(),
        worker: `Channel.openById(ID).recvAsync()`,
        freed: () => futexWaitsAsleep() === before,
      }
    },
    gone: { code: 'ERR_SHM_DETACHED' },
  },
  {
    name: 'Semaphore.acquireAsync',
    pooled: () => true,
    calls: ['semop', 'semtimedop'],
    make(t) {
      const sem = Semaphore.create(IPC_PRIVATE, { initial: 0 })
      removeLater(t, sem)
      return {
        id: sem.id,
        start: (signal) => sem.acquireAsync(1, { signal }),
        asleep: () => sem.waiters().forIncrease === 1,
        gone: () => sem.remove(),
        worker: `Semaphore.openById(ID).acquireAsync()`,
        freed: () => sem.waiters().forIncrease === 0,
        peer: () => sem.release(1, { undo: false }),
        intact: () => sem.value === 1,
      }
    },
    gone: { code: 'EIDRM', syscall: 'semop' },
  },
  {
    name: 'MessageQueue.receiveAsync',
    pooled: () => true,
    calls: ['msgrcv'],
    make(t) {
      const q = MessageQueue.create(IPC_PRIVATE)
      removeLater(t, q)
      return {
        id: q.id,
        start: (signal) => q.receiveAsync({ signal }),
        asleep: () => blockedIn(['msgrcv']).length > 0,
        gone: () => q.remove(),
        worker: `MessageQueue.openById(ID).receiveAsync()`,
        freed: () => blockedIn(['msgrcv']).length === 0,
        peer: () => q.send('later'),
        intact: () => q.stat().messages === 1,
      }
    },
    gone: { code: 'EIDRM', syscall: 'msgrcv' },
  },
  {
    name: 'MessageQueue.sendAsync',
    pooled: () => true,
    calls: ['msgsnd'],
    make(t) {
      const q = MessageQueue.create(IPC_PRIVATE, { maxBytes: 16 })
      removeLater(t, q)
      q.send('0123456789abcdef')
      return {
        id: q.id,
        start: (signal) => q.sendAsync('more', { signal }),
        asleep: () => blockedIn(['msgsnd']).length > 0,
        gone: () => q.remove(),
        worker: `MessageQueue.openById(ID).sendAsync('more')`,
        freed: () => blockedIn(['msgsnd']).length === 0,
        peer: () => q.receive(),
        intact: () => q.stat().messages === 0,
      }
    },
    gone: { code: 'EIDRM', syscall: 'msgsnd' },
  },
]

/** Node's AbortError with the signal's reason as cause: the one abort rejection. */
function isAbortError(t, err, reason) {
  t.is(err?.name, 'AbortError')
  t.is(err?.code, 'ABORT_ERR')
  t.is(err?.cause, reason)
}

const settled = (p) => p.then((v) => ({ value: v }), (e) => ({ error: e }))

for (const kind of KINDS) {
  test.serial(`${kind.name}: an abort rejects at once with AbortError; an aborted signal too; it never throws`, async (t) => {
    const o = kind.make(t)
    const ac = new AbortController()
    const p = settled(o.start(ac.signal))
    await until(o.asleep, `${kind.name} asleep`)
    const reason = new Error('stop')
    ac.abort(reason)
    // No timeout was given: only the abort can end the wait.
    isAbortError(t, (await p).error, reason)
    if (o.peer) {
      // A peer acts after the abort settled: the cancelled call took no part in it.
      o.peer()
      t.true(o.intact(), 'the cancelled call had no effect')
    }
    const early = new Error('early')
    isAbortError(t, (await settled(o.start(AbortSignal.abort(early)))).error, early)
    // Argument errors are rejections too, never synchronous throws.
    let p2
    t.notThrows(() => {
      p2 = o.start({ not: 'a signal' })
    })
    const bad = (await settled(p2)).error
    t.true(bad instanceof TypeError)
    t.is(bad.code, 'ERR_INVALID_ARG_TYPE')
  })

  test.serial(`${kind.name}: its object going away rejects with the same ShmError shape`, async (t) => {
    const o = kind.make(t)
    const p = settled(o.start(undefined))
    await until(o.asleep, `${kind.name} asleep`)
    o.gone()
    const err = (await p).error
    t.true(err instanceof ShmError, String(err))
    t.is(err.name, 'ShmError')
    t.is(err.code, kind.gone.code)
    t.is(typeof err.message, 'string')
    if (kind.gone.syscall) {
      t.is(err.syscall, kind.gone.syscall)
      t.is(typeof err.errno, 'number')
    } else {
      t.is(err.errno, undefined)
      t.is(err.syscall, undefined)
    }
  })

  test.serial(`${kind.name}: terminating the worker that started it frees its thread`, async (t) => {
    const o = kind.make(t)
    const before = blockedIn(kind.calls).length
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const { Channel, MessageQueue, Semaphore, SharedMemory } = require(${JSON.stringify(PKG)});
       ${o.worker.replace('ID', String(o.id))};
       parentPort.postMessage('waiting');`,
      { eval: true },
    )
    await once(worker, 'message')
    if (kind.pooled()) await until(() => blockedIn(kind.calls).length === before + 1, `the worker's ${kind.name} thread asleep`)
    else await until(o.asleep, `the worker's ${kind.name} asleep`)
    await worker.terminate()
    // The check where the call has no pooled thread (futex_waitv): `freed`, a count from outside.
    await until(o.freed, `the thread of the terminated worker's ${kind.name} freed`)
    t.is(blockedIn(kind.calls).length, before)
  })
}

test.serial('a semaphore wait sleeps in semop without slices (a cancel needs no 100 ms slice to be seen)', async (t) => {
  const sem = Semaphore.create(IPC_PRIVATE, { initial: 0 })
  t.teardown(() => sem.remove())
  const ac = new AbortController()
  const p = settled(sem.acquireAsync(1, { signal: ac.signal }))
  await until(() => sem.waiters().forIncrease === 1 && blockedIn(['semop', 'semtimedop']).length === 1, 'the semop asleep')
  const [{ tid }] = blockedIn(['semop', 'semtimedop'])
  const switches = () => Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))[1])
  const at = switches()
  // A lower bound: over 350 ms a thread woken every 100 ms (the old slices) switches at least 3 times.
  await new Promise((r) => setTimeout(r, 350))
  t.is(switches(), at, 'the waiting thread did not wake up')
  ac.abort()
  t.is((await p).error?.name, 'AbortError')
})

/**
 * A worker that starts `call` (an expression of class `cls` of the package, a promise) and sets
 * `got[0]` to 1 when it resolves in the worker's JS; returned once the call was started.
 */
async function raceWorker(cls, call) {
  const got = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const { ${cls} } = require(${JSON.stringify(PKG)});
     ${call}.then(() => Atomics.store(workerData, 0, 1));
     parentPort.postMessage('waiting');`,
    { eval: true, workerData: got },
  )
  await once(worker, 'message')
  return { worker, got }
}

test.serial('semaphore race: a unit is never lost when the worker waiting for it is terminated', async (t) => {
  // As the queue race: semop may take the released unit for the dying worker, whose promise will
  // never be seen; SEM_UNDO would not help (the adjustment is this process's, which lives on).
  // The unit is either the worker's (its promise resolved in JS) or given back to the set.
  const sem = Semaphore.create(IPC_PRIVATE, { initial: 0 })
  t.teardown(() => sem.remove())
  let acquired = 0
  let givenBack = 0
  for (let round = 0; round < 30; round++) {
    const { worker, got } = await raceWorker('Semaphore', `Semaphore.openById(${sem.id}).acquireAsync()`)
    await until(() => sem.waiters().forIncrease === 1 && blockedIn(['semop', 'semtimedop']).length === 1, 'the worker\'s semop asleep')
    const terminated = worker.terminate()
    sem.release()
    await terminated
    await until(() => blockedIn(['semop', 'semtimedop']).length === 0, 'the semop thread to finish')
    await until(() => Atomics.load(got, 0) + sem.value >= 1, `round ${round}: the unit acquired or in the set`)
    const left = sem.value
    t.is(Atomics.load(got, 0) + left, 1, `round ${round}: acquired ${Atomics.load(got, 0)}, in the set ${left}`)
    // Another acquirer gets the unit given back.
    if (left) t.true(sem.tryAcquire(), `round ${round}: tryAcquire of the unit given back`)
    acquired += Atomics.load(got, 0)
    givenBack += left
  }
  t.log(`acquired by the worker ${acquired}, given back ${givenBack}`)
})

test.serial('queue race: a message is never lost when the worker waiting for it is terminated', async (t) => {
  const q = MessageQueue.create(IPC_PRIVATE)
  t.teardown(() => q.remove())
  let delivered = 0
  let kept = 0
  for (let round = 0; round < 30; round++) {
    const { worker, got } = await raceWorker('MessageQueue', `MessageQueue.openById(${q.id}).receiveAsync()`)
    await until(() => blockedIn(['msgrcv']).length === 1, 'the worker\'s msgrcv asleep')
    // The termination is under way (JS can no longer run in the worker) when the message comes:
    // msgrcv may still take it for the dying worker, whose promise will never be seen. (A message
    // sent before the termination may reach the worker's promise just before it stops, a window
    // no library can close: that message was delivered, to a worker that died.)
    const terminated = worker.terminate()
    q.send(`round ${round}`)
    await terminated
    // Either the worker got it, or it is still (or again: put back) in the queue.
    await until(() => Atomics.load(got, 0) + q.stat().messages >= 1, `round ${round}: the message delivered or in the queue`)
    await until(() => blockedIn(['msgrcv']).length === 0, 'the msgrcv thread to finish')
    const left = q.stat().messages
    t.is(Atomics.load(got, 0) + left, 1, `round ${round}: delivered ${Atomics.load(got, 0)}, in the queue ${left}`)
    delivered += Atomics.load(got, 0)
    kept += left
    if (left) q.receive()
  }
  t.log(`delivered ${delivered}, kept in the queue ${kept}`)
})

#!/usr/bin/env node
// Benchmark of Mutex (build first: npm run build).
//
//   node bench/mutex.mjs [--n 1000000]
//
// 1. uncontended: lock() + unlock() in one process, ns per pair (JS Atomics only: no system call),
//    beside Semaphore acquire() + release() (a semop system call each).
// 2. contended: two processes each lock, increment a plain counter and unlock N/10 times at once:
//    ns per lock+unlock pair, wall time over all pairs of both (futex sleeps and wake-ups included).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { IPC_PRIVATE, Mutex, Semaphore, SharedMemory } from '../dist/index.js'

const arg = (name, d) => {
  const i = process.argv.indexOf(name)
  return i < 0 ? d : Number(process.argv[i + 1])
}

if (process.argv[2] === 'child') {
  const shm = SharedMemory.openById(Number(process.argv[3]))
  const m = Mutex.at(shm, 0)
  const n = Number(process.argv[4])
  const b = shm.buffer
  for (let i = 0; i < n; i++) {
    m.lock()
    b.writeUInt32LE(b.readUInt32LE(32) + 1, 32)
    m.unlock()
  }
  shm.detach()
} else {
  const n = arg('--n', 1_000_000)
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  shm.remove()
  const m = Mutex.create(shm, 0)
  const time = (k, f) => {
    f(Math.min(k, 10_000))
    const t0 = process.hrtime.bigint()
    f(k)
    return Number(process.hrtime.bigint() - t0) / k
  }
  const mutexNs = time(n, (k) => {
    for (let i = 0; i < k; i++) {
      m.lock()
      m.unlock()
    }
  })
  const sem = Semaphore.create(IPC_PRIVATE, { initial: 1 })
  const semNs = time(n / 10, (k) => {
    for (let i = 0; i < k; i++) {
      sem.acquire()
      sem.release()
    }
  })
  sem.remove()
  const k = n / 10
  const t0 = process.hrtime.bigint()
  await Promise.all(
    [0, 1].map(
      () =>
        new Promise((resolve, reject) =>
          spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', shm.id, k], { stdio: 'inherit' })
            .on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`child exited ${code}`))))
            .on('error', reject),
        ),
    ),
  )
  const contendedNs = Number(process.hrtime.bigint() - t0) / (2 * k)
  const exact = shm.buffer.readUInt32LE(32) === 2 * k
  shm.detach()
  const r = (v) => Math.round(v)
  console.log(`Mutex lock+unlock, uncontended:         ${r(mutexNs)} ns`)
  console.log(`Semaphore acquire+release (semop each): ${r(semNs)} ns`)
  console.log(`Mutex lock+unlock, 2 processes at once: ${r(contendedNs)} ns per pair (counter exact: ${exact})`)
}

#!/usr/bin/env node
// The main job of sysv-shm: two real processes exchange data through one
// System V shared memory segment, with no copy through the kernel.
//
//   npm run demo
//
// The parent creates a segment under a key made with ftok(), writes a
// message, and starts a child process. The child opens the segment by key,
// reads the message from its zero-copy Buffer, and writes an answer. Both
// print the attach count; the parent removes the segment and shows that the
// kernel freed it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

import { SharedMemory, ftok, listSegments } from '../dist/index.js'

const self = fileURLToPath(import.meta.url)
const key = ftok(self, 0x42)
const hex = (k) => '0x' + (k >>> 0).toString(16).padStart(8, '0')

if (process.argv[2] === 'child') {
  // --- the child process ---
  const shm = SharedMemory.open(key)
  const text = shm.buffer.toString('utf8', 0, shm.buffer.indexOf(0))
  console.log(`[child  ${process.pid}] opened key ${hex(key)} (id ${shm.id}), read: "${text}"`)
  console.log(`[child  ${process.pid}] attach count now ${shm.stat().attachCount} (parent + child)`)
  const answer = `pong from pid ${process.pid}`
  shm.write(answer + '\0', 1024)
  console.log(`[child  ${process.pid}] wrote "${answer}" at offset 1024, detaching`)
  shm.detach()
} else {
  // --- the parent process ---
  const shm = SharedMemory.create(key, 4096, { mode: 0o600, exclusive: false })
  try {
    console.log(`[parent ${process.pid}] ${shm.created ? 'created' : 'opened'} key ${hex(key)} -> id ${shm.id}, ${shm.size} bytes, mode 0600`)
    const message = `ping from pid ${process.pid} at ${new Date().toISOString()}`
    shm.buffer.fill(0)
    shm.write(message + '\0')
    console.log(`[parent ${process.pid}] wrote "${message}"`)

    const child = spawn(process.execPath, [self, 'child'], { stdio: 'inherit' })
    const [code] = await once(child, 'exit')
    if (code !== 0) throw new Error(`child exited with ${code}`)

    const reply = shm.read(1024, 256)
    console.log(`[parent ${process.pid}] read the child's answer: "${reply.toString('utf8', 0, reply.indexOf(0))}"`)
    console.log(`[parent ${process.pid}] attach count after the child exited: ${shm.stat().attachCount}`)
  } finally {
    const id = shm.id
    shm.remove()
    console.log(`[parent ${process.pid}] removed: marked for destruction while attached (removed=${shm.stat().removed}, key now ${hex(shm.stat().key)})`)
    shm.detach()
    const gone = !listSegments().some((s) => s.id === id)
    console.log(`[parent ${process.pid}] detached; the kernel ${gone ? 'freed the segment (ipcs -m no longer lists it)' : 'still lists it!'}`)
    if (!gone) process.exitCode = 1
  }
}

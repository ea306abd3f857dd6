// One side of one benchmark scenario, run as its own process by bench/run.mjs:
//   node bench/peer.mjs '{"scenario":"bulk","impl":"channel","role":"send",...}'
// Prints "ready" when a server side is listening, and the result as a JSON line {"value": N} at the end.
import { fork } from 'node:child_process'
import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { once } from 'node:events'
import net from 'node:net'
import { Worker } from 'node:worker_threads'
import { constants as bufferConstants } from 'node:buffer'

import { Channel, IPC_PRIVATE, MessageQueue, Mutex, Semaphore, SharedMemory } from '../dist/index.js'
import { native } from '../dist/src/binding.js'

const opts = JSON.parse(process.argv[2] ?? '{}')
const { scenario, impl, role } = opts
// `asyncBackend: 'futex'` forces the fallback of kernels without futex_waitv (read by the addon at
// the first asynchronous wait); either way the backend in use must be the one asked for.
if (opts.asyncBackend === 'futex') process.env.SYSV_SHM_FUTEX_WAITV = '0'
if (opts.asyncBackend && native.futexAsyncBackend() !== opts.asyncBackend) {
  throw new Error(`asked for ${opts.asyncBackend}, the addon uses ${native.futexAsyncBackend()}`)
}
const say = (x) => process.stdout.write(JSON.stringify(x) + '\n')
const now = () => process.hrtime.bigint()
const secs = (t0) => Number(now() - t0) / 1e9

// ---------------------------------------------------------------------------------------------
// Bulk: `count` messages of `size` bytes one way; the writer fills each (memset to (i % 4) + 1,
// then a 4-byte sequence stamp), the reader checks the stamp and memcmps the rest. The reader
// times messages warm..count and reports bytes per second.

function makeExpected(size) {
  return [1, 2, 3, 4].map((v) => Buffer.alloc(size, v))
}

function fillMessage(buf, i) {
  buf.fill((i % 4) + 1)
  buf.writeUInt32LE(i, 0)
}

class Verifier {
  constructor(size, count, warm) {
    Object.assign(this, { size, count, warm, bad: 0, i: 0, t0: null })
    this.expected = makeExpected(size)
  }
  check(buf) {
    const i = this.i
    if (i === this.warm) this.t0 = now()
    if (buf.length !== this.size || buf.readUInt32LE(0) !== i >>> 0 || buf.compare(this.expected[i % 4], 4, this.size, 4, this.size) !== 0) {
      this.bad++
    }
    this.i++
    return this.i === this.count
  }
  result() {
    if (this.bad) throw new Error(`${this.bad} corrupt messages`)
    return (this.count - this.warm) * this.size / secs(this.t0)
  }
}

function readFull(fd, buf) {
  let off = 0
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, null)
    if (n === 0) throw new Error('EOF')
    off += n
  }
}

function writeFull(fd, buf) {
  let off = 0
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off)
}

/** Receives a stream of fixed-size messages from socket chunks. */
function framer(size, onMessage) {
  let msg = Buffer.allocUnsafe(size)
  let have = 0
  return (chunk) => {
    let off = 0
    while (off < chunk.length) {
      const n = Math.min(size - have, chunk.length - off)
      chunk.copy(msg, have, off, off + n)
      have += n
      off += n
      if (have === size) {
        have = 0
        if (onMessage(msg)) return
      }
    }
  }
}

async function bulk() {
  const { size, count, warm } = opts
  const v = new Verifier(size, count, warm)
  switch (`${impl}/${role}`) {
    case 'none/both': {
      // No IPC: the writer's and the reader's work on one buffer in one process, the bound of every row.
      const buf = Buffer.alloc(size)
      for (let i = 0; ; i++) {
        fillMessage(buf, i)
        if (v.check(buf)) break
      }
      return say({ value: v.result() })
    }
    case 'channel/send': {
      const ch = Channel.openById(opts.id)
      const buf = Buffer.alloc(size)
      for (let i = 0; i < count; i++) {
        fillMessage(buf, i)
        ch.send(buf)
      }
      ch.detach()
      return
    }
    case 'channel/recv': {
      const ch = Channel.openById(opts.id)
      const buf = Buffer.alloc(size)
      for (;;) {
        const n = ch.recvInto(buf)
        if (n !== size) throw new Error(`got ${n} bytes`)
        if (v.check(buf)) break
      }
      ch.detach()
      return say({ value: v.result() })
    }
    case 'channel-zc/send': {
      const ch = Channel.openById(opts.id)
      for (let i = 0; i < count; i++) ch.sendWith(size, (view) => fillMessage(view, i))
      ch.detach()
      return
    }
    case 'channel-zc/recv': {
      const ch = Channel.openById(opts.id)
      let done = false
      while (!done) {
        if (!ch.recvWith((view) => (done = v.check(view)))) throw new Error('channel closed early')
      }
      ch.detach()
      return say({ value: v.result() })
    }
    case 'slots/send':
    case 'slots/recv':
      return slots(v)
    case 'shm-typed-array/send':
    case 'shm-typed-array/recv':
      return shmTypedArray(v)
    case 'pipe/send': {
      const fd = openSync(opts.path, 'w')
      const buf = Buffer.alloc(size)
      for (let i = 0; i < count; i++) {
        fillMessage(buf, i)
        writeFull(fd, buf)
      }
      closeSync(fd)
      return
    }
    case 'pipe/recv': {
      const fd = openSync(opts.path, 'r')
      const buf = Buffer.alloc(size)
      for (;;) {
        readFull(fd, buf)
        if (v.check(buf)) break
      }
      closeSync(fd)
      return say({ value: v.result() })
    }
    case 'unix/recv': {
      const server = net.createServer((sock) => {
        sock.on(
          'data',
          framer(size, (m) => {
            if (!v.check(m)) return false
            say({ value: v.result() })
            sock.destroy()
            server.close()
            return true
          }),
        )
      })
      server.listen(opts.path, () => say('ready'))
      return
    }
    case 'unix/send': {
      const sock = net.connect(opts.path)
      await once(sock, 'connect')
      for (let i = 0; i < count; i++) {
        // socket.write keeps the buffer until it is flushed: a new one per message.
        const buf = Buffer.allocUnsafe(size)
        fillMessage(buf, i)
        if (!sock.write(buf)) await once(sock, 'drain')
      }
      sock.end()
      await once(sock, 'close')
      return
    }
    case 'process.send/send': {
      const child = fork(new URL(import.meta.url), [JSON.stringify({ ...opts, role: 'recv' })], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      const buf = Buffer.alloc(size)
      let inflight = 0
      let resume = null
      for (let i = 0; i < count; i++) {
        fillMessage(buf, i)
        inflight++
        // The message is serialized (copied) inside send(), so the buffer can be refilled.
        child.send(buf, () => {
          inflight--
          resume?.()
        })
        while (inflight >= 8) await new Promise((r) => (resume = r))
      }
      await once(child, 'exit')
      return
    }
    case 'process.send/recv': {
      process.on('message', (m) => {
        const buf = Buffer.from(m.buffer, m.byteOffset, m.byteLength)
        if (v.check(buf)) {
          say({ value: v.result() })
          process.disconnect()
        }
      })
      return
    }
    default:
      throw new Error(`unknown ${scenario} ${impl}/${role}`)
  }
}

/** Two slots in a SharedMemory segment, filled and checked in place, with wait/notify handoff. */
function slots(v) {
  const { size, count } = opts
  const shm = SharedMemory.openById(opts.id)
  const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 1024)
  const slot = [shm.buffer.subarray(4096, 4096 + size), shm.buffer.subarray(4096 + size, 4096 + 2 * size)]
  // Cell k (at byte 64 * k) counts the messages put in slot k; cell 2 + k those taken from it.
  const put = (k) => 16 * k
  const took = (k) => 16 * (2 + k)
  const spinUntil = (idx, want) => {
    for (let s = 0; s < 2000; s++) if (Atomics.load(i32, idx) === want) return
    for (let cur; (cur = Atomics.load(i32, idx)) !== want; ) shm.wait(idx * 4, cur)
  }
  if (role === 'send') {
    for (let i = 0; i < count; i++) {
      const k = i & 1
      const round = i >> 1
      spinUntil(took(k), round)
      fillMessage(slot[k], i)
      Atomics.store(i32, put(k), round + 1)
      shm.notify(put(k) * 4)
    }
  } else {
    for (let i = 0; ; i++) {
      const k = i & 1
      const round = i >> 1
      spinUntil(put(k), round + 1)
      const done = v.check(slot[k])
      Atomics.store(i32, took(k), round + 1)
      shm.notify(took(k) * 4)
      if (done) break
    }
    say({ value: v.result() })
  }
  shm.detach()
}

/** shm-typed-array: the same two slots, with an Atomics spin handshake (it has no wait/notify). */
async function shmTypedArray(v) {
  const { size, count } = opts
  const shmta = (await import('shm-typed-array')).default
  const total = 4096 + 2 * size
  const buf = role === 'send' ? shmta.create(total, 'Buffer', opts.key) : shmta.get(opts.key, 'Buffer')
  if (!buf) throw new Error(`shm-typed-array could not ${role === 'send' ? 'create' : 'get'} key ${opts.key}`)
  if (role === 'send') say('ready')
  const i32 = new Int32Array(buf.buffer, buf.byteOffset, 1024)
  const slot = [buf.subarray(4096, 4096 + size), buf.subarray(4096 + size, total)]
  const put = (k) => 16 * k
  const took = (k) => 16 * (2 + k)
  if (role === 'send') {
    for (let i = 0; i < count; i++) {
      const k = i & 1
      while (Atomics.load(i32, took(k)) !== i >> 1);
      fillMessage(slot[k], i)
      Atomics.store(i32, put(k), (i >> 1) + 1)
    }
    // Wait for the reader to take the last message, then remove the segment.
    const k = (count - 1) & 1
    while (Atomics.load(i32, took(k)) !== ((count - 1) >> 1) + 1);
    shmta.destroy(opts.key)
  } else {
    for (let i = 0; ; i++) {
      const k = i & 1
      while (Atomics.load(i32, put(k)) !== (i >> 1) + 1);
      const done = v.check(slot[k])
      Atomics.store(i32, took(k), (i >> 1) + 1)
      if (done) break
    }
    say({ value: v.result() })
    shmta.detach(opts.key)
  }
}

// ---------------------------------------------------------------------------------------------
// Ping-pong: `count` round trips of an 8-byte message after `warm`; the pinger reports ns per
// round trip.

async function pingpong() {
  const { count, warm } = opts
  const total = count + warm
  const pinger = role === 'ping'
  let t0
  const mark = (i) => {
    if (i === warm) t0 = now()
  }
  const done = () => say({ value: Number(now() - t0) / count })
  switch (impl) {
    case 'wait/notify':
    case 'spin': {
      const shm = SharedMemory.openById(opts.id)
      const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 1024)
      const [mine, theirs] = pinger ? [0, 32] : [32, 0]
      const spin = impl === 'spin'
      for (let i = 0; i < total; i++) {
        if (pinger) {
          mark(i)
          Atomics.store(i32, mine, i + 1)
          if (!spin) shm.notify(mine * 4)
        }
        if (spin) while (Atomics.load(i32, theirs) !== i + 1);
        else for (let cur; (cur = Atomics.load(i32, theirs)) !== i + 1; ) shm.wait(theirs * 4, cur)
        if (!pinger) {
          Atomics.store(i32, mine, i + 1)
          if (!spin) shm.notify(mine * 4)
        }
      }
      if (pinger) done()
      shm.detach()
      return
    }
    case 'wait-async': {
      // wait/notify with the waiting side in waitAsync (the event loop stays free).
      const shm = SharedMemory.openById(opts.id)
      const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 1024)
      const [mine, theirs] = pinger ? [0, 32] : [32, 0]
      for (let i = 0; i < total; i++) {
        if (pinger) {
          mark(i)
          Atomics.store(i32, mine, i + 1)
          shm.notify(mine * 4)
        }
        for (let cur; (cur = Atomics.load(i32, theirs)) !== i + 1; ) await shm.waitAsync(theirs * 4, cur)
        if (!pinger) {
          Atomics.store(i32, mine, i + 1)
          shm.notify(mine * 4)
        }
      }
      if (pinger) done()
      shm.detach()
      return
    }
    case 'channel-async': {
      // Channel send / recvAsync.
      const out = Channel.openById(pinger ? opts.id : opts.id2, { wait: 'park' })
      const inn = Channel.openById(pinger ? opts.id2 : opts.id, { wait: 'park' })
      const msg = Buffer.alloc(8)
      for (let i = 0; i < total; i++) {
        if (pinger) {
          mark(i)
          msg.writeUInt32LE(i, 0)
          out.send(msg)
        }
        const got = await inn.recvAsync()
        if (got === null || got.length !== 8 || got.readUInt32LE(0) !== i) throw new Error('bad message')
        if (!pinger) out.send(got)
      }
      if (pinger) done()
      out.detach()
      inn.detach()
      return
    }
    case 'channel': {
      const w = { wait: opts.wait ?? 'spin-then-park' }
      const out = Channel.openById(pinger ? opts.id : opts.id2, w)
      const inn = Channel.openById(pinger ? opts.id2 : opts.id, w)
      const msg = Buffer.alloc(8)
      for (let i = 0; i < total; i++) {
        if (pinger) {
          mark(i)
          msg.writeUInt32LE(i, 0)
          out.send(msg)
        }
        if (inn.recvInto(msg) !== 8 || msg.readUInt32LE(0) !== i) throw new Error('bad message')
        if (!pinger) out.send(msg)
      }
      if (pinger) done()
      out.detach()
      inn.detach()
      return
    }
    case 'pipe': {
      // Open order matters for FIFOs: ping opens a→b for writing first, pong opens it for reading first.
      const [outPath, inPath] = pinger ? [opts.path, opts.path2] : [opts.path2, opts.path]
      const fdOut = pinger ? openSync(outPath, 'w') : null
      const fdIn = openSync(inPath, 'r')
      const fdOut2 = fdOut ?? openSync(outPath, 'w')
      const msg = Buffer.alloc(8)
      for (let i = 0; i < total; i++) {
        if (pinger) {
          mark(i)
          msg.writeUInt32LE(i, 0)
          writeFull(fdOut2, msg)
        }
        readFull(fdIn, msg)
        if (msg.readUInt32LE(0) !== i) throw new Error('bad message')
        if (!pinger) writeFull(fdOut2, msg)
      }
      if (pinger) done()
      closeSync(fdIn)
      closeSync(fdOut2)
      return
    }
    case 'unix': {
      if (!pinger) {
        const server = net.createServer((sock) => {
          sock.setNoDelay(true)
          sock.on(
            'data',
            framer(8, (m) => {
              sock.write(Buffer.from(m))
              return false
            }),
          )
          sock.on('end', () => server.close())
        })
        server.listen(opts.path, () => say('ready'))
        return
      }
      const sock = net.connect(opts.path)
      await once(sock, 'connect')
      let i = 0
      let finish
      const finished = new Promise((r) => (finish = r))
      const send = () => {
        mark(i)
        const m = Buffer.alloc(8)
        m.writeUInt32LE(i, 0)
        sock.write(m)
      }
      sock.on(
        'data',
        framer(8, (m) => {
          if (m.readUInt32LE(0) !== i) throw new Error('bad message')
          if (++i === total) {
            finish()
            return true
          }
          send()
          return false
        }),
      )
      send()
      await finished
      done()
      sock.end()
      return
    }
    case 'process.send': {
      if (!pinger) {
        process.on('message', (m) => process.send(m))
        return
      }
      const child = fork(new URL(import.meta.url), [JSON.stringify({ ...opts, role: 'pong' })], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      await roundTrips((m) => child.send(m), (h) => child.on('message', h), total, mark)
      done()
      child.disconnect()
      return
    }
    case 'worker': {
      const worker = new Worker(
        `const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m))`,
        { eval: true },
      )
      await roundTrips((m) => worker.postMessage(m), (h) => worker.on('message', h), total, mark)
      done()
      await worker.terminate()
      return
    }
    case 'atomics-async': {
      // The reference of the event-loop hop: the main thread and a worker thread of one process,
      // each waiting in Atomics.waitAsync on a SharedArrayBuffer (V8 queues a task on the waiter's
      // event loop when Atomics.notify wakes it), the same protocol as 'wait-async': store, notify,
      // wait for the peer's store. No sysv-shm, no waiter thread.
      const sab = new SharedArrayBuffer(256)
      const i32 = new Int32Array(sab)
      const loop = async (i32, mine, theirs, pinger, total, mark) => {
        // A pending Atomics.waitAsync does not keep an event loop alive: this timer does.
        const alive = setInterval(() => {}, 1 << 30)
        for (let i = 0; i < total; i++) {
          if (pinger) {
            mark(i)
            Atomics.store(i32, mine, i + 1)
            Atomics.notify(i32, mine)
          }
          for (let cur; (cur = Atomics.load(i32, theirs)) !== i + 1; ) await Atomics.waitAsync(i32, theirs, cur).value
          if (!pinger) {
            Atomics.store(i32, mine, i + 1)
            Atomics.notify(i32, mine)
          }
        }
        clearInterval(alive)
      }
      const worker = new Worker(`const { workerData } = require('node:worker_threads');
        (${loop})(new Int32Array(workerData.sab), 32, 0, false, workerData.total, () => {})`, {
        eval: true,
        workerData: { sab, total },
      })
      const exited = new Promise((resolve, reject) => {
        worker.on('error', reject)
        worker.on('exit', resolve)
      })
      await loop(i32, 0, 32, true, total, mark)
      done()
      await exited
      return
    }
    default:
      throw new Error(`unknown ${scenario} ${impl}/${role}`)
  }
}

/** Ping-pong over an event-based transport: send, wait for the echo, repeat. */
function roundTrips(send, listen, total, mark) {
  return new Promise((resolve) => {
    let i = 0
    const msg = () => {
      mark(i)
      const m = Buffer.alloc(8)
      m.writeUInt32LE(i, 0)
      send(m)
    }
    listen((m) => {
      if (Buffer.from(m.buffer, m.byteOffset, m.byteLength).readUInt32LE(0) !== i) throw new Error('bad message')
      if (++i === total) resolve()
      else msg()
    })
    msg()
  })
}

// ---------------------------------------------------------------------------------------------
// Channel message rate: `count` messages of `size` bytes one way; the receiver checks each
// sequence stamp and reports messages per second.

/**
 * The plain-JavaScript reference of the message rate: a minimal single-producer single-consumer
 * ring of fixed 64-byte records on a segment's zero-copy Buffer (head at byte 0, tail at byte 64,
 * 1024 slots from byte 128), one `Atomics.store` of the head (or tail) per message, `Buffer#copy`
 * in and out, spinning when empty or full: no checks, no wake-ups. The JS limit for 64 B messages
 * (bench/c/ring.c is the same ring in C).
 */
function jsRing() {
  const { size, count, warm } = opts
  const SLOTS = 1024
  const shm = SharedMemory.openById(opts.id)
  const buf = shm.buffer
  const i32 = new Int32Array(buf.buffer, buf.byteOffset, 32)
  const HEAD = 0
  const TAIL = 16
  const msg = Buffer.alloc(size)
  let h = 0
  let t = 0
  if (role === 'send') {
    for (let i = 0; i < count; i++) {
      while (h - t === SLOTS) t = Atomics.load(i32, TAIL)
      msg.writeUInt32LE(i, 0)
      const at = 128 + (h % SLOTS) * size
      msg.copy(buf, at, 0, size)
      Atomics.store(i32, HEAD, ++h)
    }
  } else {
    let t0
    for (let i = 0; i < count; i++) {
      if (i === warm) t0 = now()
      while (t === h) h = Atomics.load(i32, HEAD)
      const at = 128 + (t % SLOTS) * size
      buf.copy(msg, 0, at, at + size)
      if (msg.readUInt32LE(0) !== i) throw new Error(`bad message ${i}`)
      Atomics.store(i32, TAIL, ++t)
    }
    say({ value: (count - warm) / secs(t0) })
  }
  shm.detach()
}

function rate() {
  const { size, count, warm, batch } = opts
  if (impl === 'js-ring') return jsRing()
  const ch = Channel.openById(opts.id)
  if (role === 'send') {
    if (batch) {
      const msgs = Array.from({ length: batch }, () => Buffer.alloc(size))
      let i = 0
      while (i < count) {
        const n = Math.min(batch, count - i)
        for (let k = 0; k < n; k++) msgs[k].writeUInt32LE(i + k, 0)
        let sent = 0
        while (sent < n) {
          const s = ch.trySendMany(sent === 0 && n === batch ? msgs : msgs.slice(sent, n))
          if (s > 0) {
            sent += s
          } else {
            ch.send(msgs[sent]) // full: wait (spin, then sleep) for room for one
            sent++
          }
        }
        i += n
      }
    } else {
      const msg = Buffer.alloc(size)
      for (let i = 0; i < count; i++) {
        msg.writeUInt32LE(i, 0)
        ch.send(msg)
      }
    }
  } else {
    let t0
    if (batch) {
      const target = Buffer.alloc(size * batch)
      const lengths = new Uint32Array(batch)
      for (let i = 0; i < count; ) {
        if (t0 === undefined && i >= warm) t0 = now()
        const got = ch.recvMany(target, lengths)
        for (let k = 0; k < got; k++, i++) {
          if (lengths[k] !== size || target.readUInt32LE(k * size) !== i) throw new Error(`bad message ${i}`)
        }
      }
    } else {
      const target = Buffer.alloc(size)
      for (let i = 0; i < count; i++) {
        if (i === warm) t0 = now()
        if (ch.recvInto(target) !== size || target.readUInt32LE(0) !== i) throw new Error(`bad message ${i}`)
      }
    }
    say({ value: (count - warm) / secs(t0) })
  }
  ch.detach()
}

// ---------------------------------------------------------------------------------------------
// Message queue rate, beside the Channel's: `count` messages of `size` bytes one way through a
// System V message queue (the kernel's default msg_qbytes, 16 KiB), each with the same 4-byte
// sequence stamp the Channel rate checks. `impl` 'sync' uses send / receive (blocking msgsnd /
// msgrcv), 'async' sendAsync / receiveAsync (await per message, as an event-loop program would).

async function mqRate() {
  const { size, count, warm, impl: how } = opts
  const q = MessageQueue.openById(opts.id)
  if (role === 'send') {
    const msg = Buffer.alloc(size)
    for (let i = 0; i < count; i++) {
      msg.writeUInt32LE(i, 0)
      if (how === 'async') await q.sendAsync(msg)
      else q.send(msg)
    }
    return
  }
  let t0
  for (let i = 0; i < count; i++) {
    if (i === warm) t0 = now()
    const m = how === 'async' ? await q.receiveAsync() : q.receive()
    if (m.data.length !== size || m.data.readUInt32LE(0) !== i) throw new Error(`bad message ${i}`)
  }
  say({ value: (count - warm) / secs(t0) })
}

// ---------------------------------------------------------------------------------------------
// Costs: attach + detach of an existing segment, and notify with no waiter.

function costs() {
  const { count } = opts
  if (impl === 'napi-call') {
    // SharedMemory#attached: a native getter before, JavaScript's own state now (what every call's
    // attach check costs).
    const shm = SharedMemory.openById(opts.id)
    let k = 0
    for (let i = 0; i < 100_000; i++) k += shm.attached ? 1 : 0
    const t0 = now()
    for (let i = 0; i < count; i++) k += shm.attached ? 1 : 0
    const ns = Number(now() - t0) / count
    shm.detach()
    return say({ value: ns, k })
  }
  if (impl === 'plain-fn' || impl === 'plain-fn-arg' || impl === 'getter' || impl === 'method' || impl === 'external-fn') {
    // The cost of entering the addon: a plain #[napi] function (futexAsyncBackend: it returns a
    // static string; with no argument, napi-rs 3 skips its per-call borrow scope), one with a
    // number argument (setMaxBufferLength, given the value the loader set: an atomic store), a
    // getter of the native Mapping class (id: class glue, left only on cold calls), the native
    // call of the hot paths (mappingNotify on a cell nobody waits on, a bare callback over the
    // mapping's External, hot.rs: it checks the waiter count and returns 0), and the copy path's
    // function over the External (mappingReadInto of an empty view: no bytes copied).
    const mapping = native.mappingAttach(opts.id, false)[0]
    const handle = mapping.copyHandle()
    const empty = Buffer.alloc(0)
    const call = {
      'plain-fn': () => native.futexAsyncBackend(),
      'plain-fn-arg': () => native.setMaxBufferLength(bufferConstants.MAX_LENGTH),
      getter: () => mapping.id,
      method: () => native.mappingNotify(handle, 0, 1),
      'external-fn': () => native.mappingReadInto(handle, empty, 0),
    }[impl]
    let k = 0
    for (let i = 0; i < 100_000; i++) k += call() ? 1 : 0
    const t0 = now()
    for (let i = 0; i < count; i++) k += call() ? 1 : 0
    const ns = Number(now() - t0) / count
    mapping.detach(null)
    return say({ value: ns, k })
  }
  if (impl === 'write64' || impl === 'readInto64' || impl === 'copy64' || impl === 'copyOut64') {
    // 64 bytes into (or out of) a segment: SharedMemory#write / #readInto against Buffer#copy into
    // the same mapping (its zero-copy Buffer), at offsets that walk the segment.
    const shm = SharedMemory.openById(opts.id, { zeroCopy: opts.zeroCopy ?? true })
    const data = Buffer.alloc(64, 7)
    const view = opts.zeroCopy === false ? null : shm.buffer
    const step =
      impl === 'write64'
        ? (off) => shm.write(data, off)
        : impl === 'readInto64'
          ? (off) => shm.readInto(data, off)
          : impl === 'copy64'
            ? (off) => data.copy(view, off)
            : (off) => view.copy(data, 0, off, off + 64)
    const slots = Math.floor(shm.size / 64)
    let k = 0
    for (let i = 0; i < 100_000; i++) k += step((i % slots) * 64)
    const t0 = now()
    for (let i = 0; i < count; i++) k += step((i % slots) * 64)
    const ns = Number(now() - t0) / count
    shm.detach()
    return say({ value: ns, k })
  }
  if (impl === 'trySend' || impl === 'tryRecvInto') {
    // One process, a ring large enough for every message: the cost of one call of each side.
    const ch = Channel.openById(opts.id)
    const msg = Buffer.alloc(64)
    const target = Buffer.alloc(64)
    let sent = 0
    const t0 = now()
    while (sent < count && ch.trySend(msg)) sent++
    const t1 = now()
    for (let i = 0; i < sent; i++) ch.tryRecvInto(target)
    const t2 = now()
    ch.detach()
    return say({ value: Number(impl === 'trySend' ? t1 - t0 : t2 - t1) / sent })
  }
  if (impl === 'attach') {
    for (let i = 0; i < 1000; i++) SharedMemory.openById(opts.id).detach()
    const t0 = now()
    for (let i = 0; i < count; i++) SharedMemory.openById(opts.id).detach()
    return say({ value: Number(now() - t0) / count })
  }
  const shm = SharedMemory.openById(opts.id, { zeroCopy: impl === 'notify' })
  let woke = 0
  for (let i = 0; i < 100_000; i++) woke += shm.notify(0)
  const t0 = now()
  for (let i = 0; i < count; i++) woke += shm.notify(0)
  const ns = Number(now() - t0) / count
  shm.detach()
  if (woke !== 0) throw new Error('woke someone')
  say({ value: ns })
}

// ---------------------------------------------------------------------------------------------
// Locks: `count` lock + unlock pairs. 'mutex' (zero-copy: JavaScript Atomics) and 'mutex-native'
// (zeroCopy: false: native word operations) alone in this process, 'semaphore' (a semop each)
// alone, 'mutex-contended' in two processes at once, each incrementing a plain counter under the
// lock (checked at the end): the time of this process's pairs while the other runs its own.

function lock() {
  const { count } = opts
  let pair
  let done = () => {}
  if (impl === 'semaphore') {
    const sem = Semaphore.create(IPC_PRIVATE, { initial: 1 })
    pair = () => {
      sem.acquire()
      sem.release()
    }
    done = () => sem.remove()
  } else {
    const shm = SharedMemory.openById(opts.id, { zeroCopy: impl !== 'mutex-native' })
    const m = impl === 'mutex-contended' ? Mutex.at(shm, 0) : Mutex.create(shm, 0)
    const b = shm.zeroCopy ? shm.buffer : null
    pair =
      impl === 'mutex-contended'
        ? () => {
            m.lock()
            b.writeUInt32LE(b.readUInt32LE(64) + 1, 64)
            m.unlock()
          }
        : () => {
            m.lock()
            m.unlock()
          }
    done = () => shm.detach()
  }
  const warm = Math.min(count, 10_000)
  for (let i = 0; i < warm; i++) pair()
  const t0 = now()
  for (let i = 0; i < count; i++) pair()
  const ns = Number(now() - t0) / count
  done()
  say({ value: ns })
}

switch (scenario) {
  case 'lock':
    lock()
    break
  case 'bulk':
    await bulk()
    break
  case 'pingpong':
    await pingpong()
    break
  case 'rate':
    rate()
    break
  case 'mqrate':
    await mqRate()
    break
  case 'costs':
    costs()
    break
  default:
    throw new Error(`unknown scenario ${scenario}`)
}

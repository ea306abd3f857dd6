// A conformance script for JavaScript runtimes other than Node's ava suite can
// run under (Bun, Deno; it runs under Node too): every export of the package,
// across two processes. Plain JS with its own asserts; ends with
// "conformance: N passed, M failed" and exits non-zero on any failure.
//
//   node|bun scripts/conformance.mjs [--peer EXECUTABLE]
//   deno run -A scripts/conformance.mjs [--peer EXECUTABLE]
//
// The peer processes run under this runtime, or under --peer (e.g. Node, for
// the cross-runtime pairs: a Bun parent writes and a Node child reads; a Deno
// parent and a Node child exchange messages through Channels both ways). An
// executable named deno* is started as `deno run -A`. SYSV_SHM_BINDING_PATH
// picks the .node as for the rest of the package. Leaves no IPC object.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const pkgPath = join(dirname(self), '..', 'dist', 'index.js')
const require = createRequire(import.meta.url)
const shm = require(pkgPath)
const { SharedMemory, Channel, Semaphore, MessageQueue, ShmError, IPC_PRIVATE } = shm

const runtime = typeof Bun !== 'undefined' ? `bun ${Bun.version}` : typeof Deno !== 'undefined' ? `deno ${Deno.version.deno}` : `node ${process.versions.node}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The command line that starts this script under EXE. */
function commandFor(exe, args) {
  return basename(exe).startsWith('deno') ? [exe, ['run', '-A', self, ...args]] : [exe, [self, ...args]]
}

// --- child side ---------------------------------------------------------------
// A child gets its role and a JSON argument; it talks in JSON lines: `say` to the
// parent (stdout), `next` awaits a line from the parent (stdin).
if (process.argv[2] === '--child') {
  const rl = createInterface({ input: process.stdin })
  const lines = rl[Symbol.asyncIterator]()
  const next = async () => JSON.parse((await lines.next()).value)
  const say = (x) => process.stdout.write(JSON.stringify(x) + '\n')
  const arg = JSON.parse(process.argv[4])
  const roles = {
    async segment({ key }) {
      const s = SharedMemory.open(key)
      say({ runtime, read: s.read(0, 11).toString(), attachCount: s.stat().attachCount, zeroCopy: s.buffer.toString('utf8', 0, 11) })
      s.write('from-child', 100)
      await next() // the parent removed it
      const st = s.stat()
      s.write('after-remove', 200)
      say({ removed: st.removed, key: st.key, read: s.read(200, 12).toString(), attachCount: st.attachCount })
      await next()
      s.detach()
      say({ detached: !s.attached })
    },
    async futex({ id }) {
      const s = SharedMemory.openById(id)
      say('waiting')
      const sync = s.wait(0, 0, 60_000)
      say({ sync, value: new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 4)[0] })
      await next() // the parent waits with waitAsync on cell 8
      const i32 = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 4)
      for (let i = 0; i < 6000 && Atomics.load(i32, 3) === 0; i++) await sleep(10)
      const waiters = Atomics.load(i32, 3)
      Atomics.store(i32, 2, 7)
      // 1, or 0 if the parent's waiter woke for another reason (a signal) after the store
      // and resolved on the changed value by itself: the parent checks its promise.
      say({ waiters, woke: s.notify(8) })
      s.detach()
    },
    async channel({ toChild, toParent }) {
      const down = Channel.openById(toChild)
      const up = Channel.openById(toParent)
      const got = []
      for (let i = 0; i < 3; i++) got.push(down.recv(60_000).toString())
      let viaWith = ''
      down.recvWith((v) => (viaWith = v.toString()), 60_000)
      up.send(`echo:${got.join(',')}`, 60_000)
      up.sendWith(6, (v) => v.write('inline'), 60_000)
      const rest = []
      for await (const m of down) rest.push(m.toString()) // ends when the parent closes
      say({ got, viaWith, rest, closed: down.closed })
      down.detach()
      up.detach()
    },
    async semaphore({ id }) {
      const sem = Semaphore.openById(id)
      say('acquiring')
      const ok = sem.acquire(1, { timeoutMs: 60_000, undo: false })
      sem.release(2, { undo: false })
      say({ ok })
    },
    async queue({ id }) {
      const q = MessageQueue.openById(id)
      const m = q.receive({ type: 3, timeoutMs: 60_000 })
      q.send(`reply:${m.data.toString()}`, { type: 7 })
      say({ type: m.type, data: m.data.toString() })
    },
  }
  try {
    await roles[process.argv[3]](arg)
    rl.close()
    process.exit(0)
  } catch (e) {
    process.stderr.write(`child ${process.argv[3]}: ${e?.stack ?? e}\n`)
    process.exit(1)
  }
}

// --- parent side --------------------------------------------------------------
const argv = process.argv.slice(2)
const peerExe = argv.includes('--peer') ? argv[argv.indexOf('--peer') + 1] : process.execPath
const peerName = peerExe === process.execPath ? runtime : basename(peerExe)

/** Starts a child in ROLE with ARG; returns { next, send, done }. */
function child(role, arg) {
  const [cmd, args] = commandFor(peerExe, ['--child', role, JSON.stringify(arg)])
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  p.stderr.on('data', (d) => (stderr += d))
  const it = createInterface({ input: p.stdout })[Symbol.asyncIterator]()
  const done = new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal, stderr })))
  return {
    async next() {
      const r = await it.next()
      if (r.done) throw new Error(`child ${role} ended early: ${JSON.stringify(await done)}`)
      return JSON.parse(r.value)
    },
    send: (x) => p.stdin.write(JSON.stringify(x) + '\n'),
    async done() {
      p.stdin.end()
      const r = await done
      if (r.code !== 0) throw new Error(`child ${role} exited ${r.code ?? r.signal}: ${r.stderr}`)
      return r
    },
  }
}

let passed = 0
let failed = 0
const cleanups = []
function check(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`)
}
function eq(actual, expected, what) {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  check(a === e, `${what}: got ${a}, expected ${e}`)
}
function throwsCode(f, ctor, code, what) {
  try {
    f()
  } catch (e) {
    check(e instanceof ctor, `${what}: threw ${e?.constructor?.name}, expected ${ctor.name}`)
    if (code) eq(e.code, code, `${what}: code`)
    return e
  }
  throw new Error(`assertion failed: ${what}: did not throw`)
}
async function scenario(name, body) {
  try {
    await body()
    passed++
    console.log(`  ok   ${name}`)
  } catch (e) {
    failed++
    console.log(`  FAIL ${name}\n       ${String(e?.stack ?? e).split('\n').join('\n       ')}`)
  }
  while (cleanups.length) {
    try {
      cleanups.pop()()
    } catch {}
  }
}
const uniqueKey = (() => {
  let n = 0
  return () => ((0x5c << 24) | ((process.pid & 0xffff) << 8) | ++n) >>> 0
})()

console.log(`conformance: ${runtime}, peers under ${peerName}`)

await scenario('exports: exactly the known set', () => {
  eq(Object.keys(shm).sort(), ['Channel', 'IPC_PRIVATE', 'MUTEX_SIZE', 'MessageQueue', 'Mutex', 'MutexGuard', 'Publisher', 'Semaphore', 'SharedMemory', 'ShmError', 'Subscriber', 'ftok', 'limits', 'listQueues', 'listSegments', 'listSemaphores', 'topicKey'], 'exports')
  eq(IPC_PRIVATE, 0, 'IPC_PRIVATE')
})

await scenario('ftok, limits, bad arguments before any syscall', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-conf-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const k = shm.ftok(dir, 1)
  eq(shm.ftok(dir, 1), k, 'same ftok key')
  check(shm.ftok(dir, 2) !== k, 'another project id, another key')
  throwsCode(() => shm.ftok(join(dir, 'missing'), 1), ShmError, 'ENOENT', 'ftok of a missing path')
  const l = shm.limits()
  check(l.maxSegmentSize > 0 && l.maxSegments > 0, 'limits() has the kernel limits')
  throwsCode(() => SharedMemory.create(IPC_PRIVATE, 0), RangeError, 'ERR_OUT_OF_RANGE', 'size 0')
  throwsCode(() => SharedMemory.create('x', 64), TypeError, null, 'a string key')
  throwsCode(() => SharedMemory.open(uniqueKey()), ShmError, 'ENOENT', 'open of a missing key')
})

await scenario(`segment lifecycle across processes (${peerName}): create, open by key, zero-copy and copy, deferred remove`, async () => {
  const key = uniqueKey()
  const s = SharedMemory.create(key, 4096)
  cleanups.push(() => s.attached && (s.remove(), s.detach()))
  check(s.zeroCopy, 'zero-copy by default')
  s.buffer.write('from-parent', 0) // zero-copy: no call
  const c = child('segment', { key })
  const first = await c.next()
  eq([first.read, first.zeroCopy, first.attachCount], ['from-parent', 'from-parent', 2], 'child read (copy and zero-copy) and attach count')
  const listed = shm.listSegments().find((x) => x.id === s.id)
  eq([listed?.key, listed?.size, listed?.attachCount], [key, 4096, 2], 'listSegments()')
  for (let i = 0; i < 6000 && s.buffer.toString('utf8', 100, 110) !== 'from-child'; i++) await sleep(10)
  eq(s.buffer.toString('utf8', 100, 110), 'from-child', "the child's write seen through the parent's buffer")
  const into = Buffer.alloc(10)
  eq(s.readInto(into, 100), 10, 'readInto')
  eq(into.toString(), 'from-child', 'readInto bytes')
  const id = s.id
  s.remove() // deferred: the child is still attached
  eq([s.stat().removed, s.stat().key], [true, 0], 'marked removed, key 0')
  throwsCode(() => SharedMemory.open(key), ShmError, 'ENOENT', 'open(key) after remove')
  s.detach()
  c.send('removed')
  const second = await c.next()
  eq(second, { removed: true, key: 0, read: 'after-remove', attachCount: 1 }, 'the holder keeps going after remove')
  c.send('go')
  eq(await c.next(), { detached: true }, 'child detached')
  await c.done()
  throwsCode(() => SharedMemory.statById(id), ShmError, null, 'freed at the last detach')
  throwsCode(() => s.read(), ShmError, 'ERR_SHM_DETACHED', 'read after detach')
})

await scenario(`wait/notify and waitAsync across processes (${peerName})`, async () => {
  const s = SharedMemory.create(IPC_PRIVATE, 64)
  cleanups.push(() => s.attached && (s.remove(), s.detach()))
  const i32 = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 16)
  const c = child('futex', { id: s.id })
  eq(await c.next(), 'waiting', 'child ready')
  // The cell's waiter count (the Uint32 after the value) says when the child sleeps.
  for (let i = 0; i < 6000 && Atomics.load(i32, 1) === 0; i++) await sleep(10)
  eq(Atomics.load(i32, 1), 1, "the cell's waiter count")
  Atomics.store(i32, 0, 1)
  let woke = 0
  for (let i = 0; i < 6000 && woke === 0; i++) {
    woke = s.notify(0)
    if (woke === 0) await sleep(10)
  }
  eq(woke, 1, 'notify woke the child')
  eq(await c.next(), { sync: 'ok', value: 1 }, "the child's wait")
  const p = s.waitAsync(8, 0, 60_000)
  c.send('notify')
  eq(await p, 'ok', 'waitAsync woken by the child')
  eq(i32[2], 7, 'the value the child stored')
  const r = await c.next()
  check(r.waiters === 1 && r.woke <= 1, `the child saw the parent's waiter and woke at most it: ${JSON.stringify(r)}`)
  await c.done()
  eq(s.wait(0, 5, 10), 'not-equal', 'wait on another value')
  eq(s.wait(0, 1, 20), 'timed-out', 'wait times out')
  throwsCode(() => s.wait(4, 0), RangeError, 'ERR_OUT_OF_RANGE', 'a cell not at a multiple of 8')
  s.remove()
  s.detach()
})

await scenario(`Channel both ways (${peerName}): send/recv, sendWith/recvWith, recvAsync, async iteration until close`, async () => {
  const down = Channel.create(IPC_PRIVATE, 4096)
  const up = Channel.create(IPC_PRIVATE, 4096)
  cleanups.push(() => down.attached && (down.remove(), down.detach()), () => up.attached && (up.remove(), up.detach()))
  const c = child('channel', { toChild: down.id, toParent: up.id })
  for (const m of ['a', 'bb', 'ccc']) check(down.send(m, 60_000), `send ${m}`)
  check(down.sendWith(4, (v) => v.write('with'), 60_000), 'sendWith')
  eq((await up.recvAsync()).toString(), 'echo:a,bb,ccc', 'recvAsync from the child')
  let inline = ''
  check(up.recvWith((v) => (inline = v.toString()), 60_000), 'recvWith')
  eq(inline, 'inline', "the child's sendWith")
  down.send('x', 60_000)
  down.send('y', 60_000)
  down.close()
  eq(await c.next(), { got: ['a', 'bb', 'ccc'], viaWith: 'with', rest: ['x', 'y'], closed: true }, 'what the child received')
  await c.done()
  throwsCode(() => down.trySend('z'), ShmError, 'ERR_CHANNEL_CLOSED', 'send after close')
  down.remove()
  down.detach()
  up.remove()
  up.detach()
})

await scenario(`Semaphore across processes (${peerName}): acquire blocks until released, acquireAsync`, async () => {
  const sem = Semaphore.create(IPC_PRIVATE, { initial: 0 })
  cleanups.push(() => sem.remove())
  const c = child('semaphore', { id: sem.id })
  eq(await c.next(), 'acquiring', 'child ready')
  const info = shm.listSemaphores().find((x) => x.id === sem.id)
  check(info !== undefined, 'listSemaphores() lists the set')
  sem.release(1, { undo: false })
  eq(await sem.acquireAsync(2, { timeoutMs: 60_000, undo: false }), true, 'acquireAsync of what the child released')
  eq(await c.next(), { ok: true }, "the child's acquire")
  await c.done()
  eq(sem.value, 0, 'value back to 0')
  eq(sem.tryAcquire(1), false, 'tryAcquire on 0')
  sem.remove()
})

await scenario(`MessageQueue across processes (${peerName}): send by type, receive, receiveAsync`, async () => {
  const q = MessageQueue.create(IPC_PRIVATE)
  cleanups.push(() => q.remove())
  const c = child('queue', { id: q.id })
  q.send('other', { type: 5 })
  q.send('hello', { type: 3 })
  const reply = await q.receiveAsync({ type: 7, timeoutMs: 60_000 })
  eq([reply.type, reply.data.toString()], [7, 'reply:hello'], 'receiveAsync of the reply')
  eq(await c.next(), { type: 3, data: 'hello' }, "the child's receive by type")
  await c.done()
  check(shm.listQueues().some((x) => x.id === q.id), 'listQueues() lists it')
  eq(q.tryReceive()?.data.toString(), 'other', 'the type-5 message is still there')
  q.remove()
})

const gc = typeof Bun !== 'undefined' ? () => Bun.gc(true) : globalThis.gc
await scenario('GC detaches dropped handles', async () => {
  if (!gc) throw new Error('gc() is not exposed: Node and Deno need --expose-gc (Deno: --v8-flags=--expose-gc)')
  const base = SharedMemory.create(IPC_PRIVATE, 4096)
  cleanups.push(() => base.attached && (base.remove(), base.detach()))
  const drop = () => {
    for (let i = 0; i < 200; i++) SharedMemory.openById(base.id, { zeroCopy: i % 2 === 0 }).write('x', i)
  }
  drop()
  check(base.stat().attachCount > 1, 'dropped handles are attached until GC')
  for (let i = 0; i < 100 && base.stat().attachCount > 1; i++) {
    gc()
    await sleep(10)
  }
  eq(base.stat().attachCount, 1, 'attach count after GC')
  base.remove()
  base.detach()
})

const workerThreads = await import('node:worker_threads').catch(() => null)
await scenario('worker threads: a worker attaches by id, writes, detaches; the main thread sees it', async () => {
  check(workerThreads?.Worker, 'node:worker_threads has Worker')
  const s = SharedMemory.create(IPC_PRIVATE, 4096)
  cleanups.push(() => s.attached && (s.remove(), s.detach()))
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-conf-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'worker.mjs')
  writeFileSync(
    file,
    `import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const { SharedMemory } = createRequire(import.meta.url)(workerData.pkg);
const s = SharedMemory.openById(workerData.id);
s.buffer.write('from-worker', 0);
const n = s.stat().attachCount;
s.detach();
parentPort.postMessage(n);\n`,
  )
  const w = new workerThreads.Worker(file, { workerData: { id: s.id, pkg: pkgPath } })
  const n = await new Promise((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
  })
  await w.terminate()
  eq(n, 2, "attach count seen in the worker (main's and its own)")
  eq(s.buffer.toString('utf8', 0, 11), 'from-worker', "the worker's write")
  eq(s.stat().attachCount, 1, 'the worker detached')
  s.remove()
  s.detach()
})

// shm.sharedBuffer where the runtime exports node_api_create_external_sharedarraybuffer (Bun 1.4.4,
// Node 22.23.5/24.19/26.12 and newer), decided apart from the package: whether the runtime's binary
// names the function. Elsewhere (Deno 2.9.6) the error that says so.
const SAB_CALL = 'node_api_create_external_sharedarraybuffer'
const hasSabCall = readFileSync(process.execPath).includes(SAB_CALL)
await scenario(
  hasSabCall
    ? 'sharedBuffer: the main thread and a worker write and read one mapping; Atomics.wait in the worker, Atomics.notify in main; detach() with the worker still holding it'
    : `sharedBuffer: ERR_SHM_NO_SHARED_ARRAY_BUFFER (${runtime} has no ${SAB_CALL})`,
  async () => {
    const s = SharedMemory.create(IPC_PRIVATE, 4096)
    cleanups.push(() => s.attached && (s.remove(), s.detach()))
    if (!hasSabCall) {
      const e = throwsCode(() => s.sharedBuffer, ShmError, 'ERR_SHM_NO_SHARED_ARRAY_BUFFER', 'sharedBuffer')
      check(e.message.includes(SAB_CALL), `the message names the call: ${e.message}`)
      s.remove()
      s.detach()
      return
    }
    check(workerThreads?.Worker, 'node:worker_threads has Worker')
    const sab = s.sharedBuffer
    check(sab instanceof SharedArrayBuffer, 'a SharedArrayBuffer')
    check(s.sharedBuffer === sab, 'the same object each time')
    const i32 = new Int32Array(sab)
    const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-conf-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'sab-worker.mjs')
    writeFileSync(
      file,
      `import { parentPort } from 'node:worker_threads';
parentPort.once('message', (sab) => {
  const u8 = new Uint8Array(sab), i32 = new Int32Array(sab);
  u8[100] = 42;
  Atomics.store(i32, 0, 1);
  Atomics.notify(i32, 0);
  const woke = Atomics.wait(i32, 1, 0);
  for (let i = 0; i < 1000; i++) Atomics.add(i32, 3, 1);
  parentPort.postMessage({ woke, seen: u8[101] });
});\n`,
    )
    const w = new workerThreads.Worker(file)
    const reply = new Promise((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })
    w.postMessage(sab)
    for (let i = 0; i < 6000 && Atomics.load(i32, 0) !== 1; i++) await sleep(10)
    eq(Atomics.load(i32, 0), 1, "the worker's flag")
    eq(s.read(100, 1)[0], 42, "the worker's write, read from the segment by the copy API")
    s.write(Buffer.from([99]), 101)
    const other = SharedMemory.openById(s.id, { zeroCopy: false })
    cleanups.push(() => other.attached && (other.remove(), other.detach()))
    s.detach() // the worker still holds the buffer: the shmdt waits for its collection
    check(!s.attached, 'the handle reads as detached at once')
    let woken = 0
    for (let i = 0; i < 6000 && (woken = Atomics.notify(i32, 1, 1)) === 0; i++) await sleep(10)
    eq(woken, 1, 'Atomics.notify woke the worker')
    eq(await reply, { woke: 'ok', seen: 99 }, 'the worker woke and saw the main thread write')
    await w.terminate()
    eq(other.read(12, 4).readInt32LE(0), 1000, "the worker's writes after detach() are in the segment")
    other.remove()
    other.detach()
  },
)

console.log(`conformance: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)

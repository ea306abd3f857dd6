// MessageQueue: the msgget/msgsnd/msgrcv/msgctl family across real
// processes (node children, a C program compiled here, Python's sysv_ipc),
// the type rules of msgrcv, limits, timeouts, aborts, permissions, errors.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs'
import { constants } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { IPC_PRIVATE, MessageQueue, ShmError, listQueues } from '../dist/index.js'
import { madeQueues, newQueue, runNodeWithThreadLimit } from './helpers.mjs'

import { HANG_GUARD_MS, runNodeAsNobody as runNodeAsNobodyWith } from './helpers.mjs'

const PKG = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const LIMITS = MessageQueue.limits()

// ---------------------------------------------------------------- helpers

let counter = 0
/** A key unique to this process and call: 0x4dPPPPCC ('M', pid, counter). */
function uniqueKey() {
  counter = (counter + 1) & 0xff
  return ((0x4d << 24) | ((process.pid & 0xffff) << 8) | counter) >>> 0
}
const ourKey = (key) => key >>> 24 === 0x4d && ((key >>> 8) & 0xffff) === (process.pid & 0xffff)

/** Ids of queues this file made (private ones cannot be told apart by key). */
const made = madeQueues

test.after.always('no queue left behind', (t) => {
  const left = listQueues().filter((q) => made.has(q.id) || ourKey(q.key))
  for (const q of left) spawnSync('ipcrm', ['-q', String(q.id)])
  t.deepEqual(
    left.map((q) => q.id),
    [],
    'queues left behind',
  )
})

const prelude = `import * as pkg from ${JSON.stringify(PKG)};\nconst { MessageQueue, ShmError, listQueues } = pkg;\n`

/** Runs ESM code in a new node process with the package imported; resolves with { code, stdout, stderr }. */
function runNode(code, { env, wrap = [] } = {}) {
  const args = [...wrap, process.execPath, '--input-type=module', '-e', prelude + code]
  const child = spawn(args[0], args.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  return collect(child)
}
/** Runs code as the user nobody, with the package copy nobody can read (helpers.mjs, runNodeAsNobody). */
const runNodeAsNobody = (code) => runNodeAsNobodyWith(`const { MessageQueue, listQueues } = shm;\n${code}`)

/** Every child process started here, killed at the end if still running. */
const children = new Set()
test.after.always('no child left running', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})

function collect(child) {
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return once(child, 'close').then(([code, signal]) => ({ code, signal, stdout, stderr, pid: child.pid }))
}

/** Runs a command in the background: { pid, done } where done resolves as collect() does. */
function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  return { pid: child.pid, done: collect(child) }
}

/** A node child driven by lines: its code gets `next()` and `say(x)`. */
function startNode(code) {
  const body = `${prelude}
import { createInterface } from 'node:readline';
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value;
const say = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
${code}
`
  const child = spawn(process.execPath, ['--input-type=module', '-e', body], { stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(child)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const it = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const exited = once(child, 'close')
  return {
    pid: child.pid,
    kill: () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'),
    send: (line) => child.stdin.write(line + '\n'),
    next: async () => {
      const r = await it.next()
      if (r.done) throw new Error(`child ended early: ${stderr}`)
      return JSON.parse(r.value)
    },
    exit: async () => {
      child.stdin.end()
      const [code] = await exited
      return { code, stderr }
    },
  }
}

/** Runs a command and returns its stdout; throws with stderr on failure. */
function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error ?? r.stderr}`)
  return r.stdout
}

/** Waits until fn() is truthy (a liveness bound, not a timing assertion: see HANG_GUARD_MS). */
async function eventually(fn, ms = HANG_GUARD_MS) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error('condition not reached in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** The system call numbers of msgsnd and msgrcv, to see a thread blocked in one. */
const SYSCALL = { x64: { msgsnd: 69, msgrcv: 70 }, arm64: { msgsnd: 189, msgrcv: 188 } }[process.arch]

/** Whether thread `tid` of process `pid` is blocked in this system call (/proc/PID/task/TID/syscall). */
function blockedIn(pid, tid, call) {
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ')[0] === String(SYSCALL[call])
  } catch {
    return false
  }
}

/** Tids of this process's threads that wait on queues for the async calls. */
function waitThreads() {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'sysv-shm-wait'
    } catch {
      return false
    }
  })
}

const CAP_SYS_RESOURCE = 24
/** Whether this process has a capability in its effective set (/proc/self/status CapEff). */
function hasCapability(bit) {
  const eff = BigInt('0x' + /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1])
  return ((eff >> BigInt(bit)) & 1n) === 1n
}

/** Whether thread `tid` of this process is asleep in a system call other than `call` (or gone). */
function sleepingOutside(tid, call) {
  let now
  try {
    now = readFileSync(`/proc/self/task/${tid}/syscall`, 'utf8').split(' ')[0]
  } catch {
    return true
  }
  return /^\d+$/.test(now) && now !== String(SYSCALL[call])
}

/** Tids of our wait threads now blocked in this system call. */
const blockedThreads = (call) => waitThreads().filter((tid) => blockedIn(process.pid, tid, call))

/** The test pattern of the C and Python peers: byte i = (i*31 + seed) & 0xff. */
function pattern(len, seed) {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

// ---------------------------------------------------------------- one process

test('create(IPC_PRIVATE) makes an empty queue: mode 0600, maxBytes msgmnb, listed by listQueues', (t) => {
  const q = newQueue(t)
  t.true(q.created)
  t.is(q.key, 0)
  t.true(q.id >= 0)
  const st = q.stat()
  t.is(st.id, q.id)
  t.is(st.key, 0)
  t.is(st.mode, 0o600)
  t.is(st.messages, 0)
  t.is(st.bytes, 0)
  t.is(st.maxBytes, LIMITS.defaultMaxBytes)
  t.is(st.uid, process.getuid())
  t.is(st.cuid, process.getuid())
  t.is(st.lastSendPid, 0)
  t.is(st.lastReceivePid, 0)
  t.is(st.sendTime, null)
  t.is(st.receiveTime, null)
  t.true(st.changeTime instanceof Date)
  t.deepEqual(
    listQueues().find((i) => i.id === q.id),
    st,
  )
  const l = MessageQueue.limits()
  t.true(l.maxMessageSize > 0 && l.defaultMaxBytes > 0 && l.maxQueues > 0)
  t.true(l.usedQueues >= 1)
})

test('create is exclusive by default (EEXIST); exclusive:false, open(key) and openById reach the same queue', (t) => {
  const key = uniqueKey()
  t.is(t.throws(() => MessageQueue.open(key), { instanceOf: ShmError }).code, 'ENOENT')
  const a = newQueue(t, key, { mode: 0o640, maxBytes: 1000 })
  t.is(a.key, key)
  t.true(a.created)
  const err = t.throws(() => MessageQueue.create(key), { instanceOf: ShmError })
  t.is(err.code, 'EEXIST')
  t.is(err.errno, constants.errno.EEXIST)
  t.is(err.syscall, 'msgget')
  t.regex(err.message, new RegExp(`0x${key.toString(16).padStart(8, '0')}`))
  const b = MessageQueue.create(key, { exclusive: false, maxBytes: 5 })
  t.false(b.created)
  t.is(b.id, a.id)
  t.is(b.stat().maxBytes, 1000, 'maxBytes is not applied to an existing queue')
  t.is(b.stat().mode, 0o640)
  const c = MessageQueue.open(key)
  t.is(c.id, a.id)
  t.false(c.created)
  const d = MessageQueue.openById(a.id)
  t.is(d.key, key)
  a.send('via a')
  t.is(d.receive().data.toString(), 'via a')
  a.remove()
  t.is(t.throws(() => MessageQueue.openById(a.id), { instanceOf: ShmError }).syscall, 'msgctl')
  t.is(t.throws(() => a.send('x'), { instanceOf: ShmError }).code, 'EINVAL')
  t.throws(() => MessageQueue.open(0), { instanceOf: RangeError, message: /openById/ })
})

test('receive type rules: 0 the oldest, >0 that type, <0 the lowest type <= |type|, except any other', (t) => {
  const q = newQueue(t)
  for (const [type, text] of [
    [3, 'c1'],
    [1, 'a1'],
    [2, 'b1'],
    [1, 'a2'],
    [5, 'e1'],
    [3, 'c2'],
  ]) {
    q.send(text, { type })
  }
  const st = q.stat()
  t.is(st.messages, 6)
  t.is(st.bytes, 12)
  t.is(st.lastSendPid, process.pid)
  t.true(st.sendTime instanceof Date)
  const r = (o) => {
    const m = q.receive(o)
    return `${m.type}:${m.data}`
  }
  t.is(r({ type: 3 }), '3:c1')
  t.is(r({ type: -2 }), '1:a1')
  t.is(r({ type: -2 }), '1:a2')
  t.is(r({ type: -2 }), '2:b1')
  t.is(r({ type: 5, except: true }), '3:c2')
  t.is(q.tryReceive({ type: 4 }), null)
  t.is(q.tryReceive({ type: -4 }), null)
  t.is(r({}), '5:e1')
  t.is(q.tryReceive(), null)
  const st2 = q.stat()
  t.is(st2.messages, 0)
  t.is(st2.lastReceivePid, process.pid)
  t.true(st2.receiveTime instanceof Date)
})

test('data: strings as UTF-8, any view or ArrayBuffer, empty messages, large types; each receive is a new Buffer', (t) => {
  const q = newQueue(t)
  q.send('héllo ✓')
  q.send(new Uint16Array([0x0201, 0x0403]))
  q.send(new DataView(new Uint8Array([9, 8, 7]).buffer, 1, 2))
  q.send(new Uint8Array([5, 6]).buffer)
  q.send(Buffer.alloc(0), { type: 2 })
  q.send(new Uint8Array(0), { type: Number.MAX_SAFE_INTEGER })
  t.is(q.receive().data.toString('utf8'), 'héllo ✓')
  t.deepEqual([...q.receive().data], [1, 2, 3, 4])
  t.deepEqual([...q.receive().data], [8, 7])
  t.deepEqual([...q.receive().data], [5, 6])
  const empty = q.receive()
  t.is(empty.type, 2)
  t.true(Buffer.isBuffer(empty.data))
  t.is(empty.data.length, 0)
  t.is(q.receive().type, Number.MAX_SAFE_INTEGER)
  const src = Buffer.from('stable')
  q.send(src)
  src.fill(0)
  const got = q.receive().data
  t.is(got.toString(), 'stable', 'send copies the bytes')
  q.send('again')
  const got2 = q.receive().data
  t.is(got.toString(), 'stable')
  t.not(got.buffer, got2.buffer)
})

test('a message of exactly msgmax bytes goes through; one byte more is EINVAL naming msgmax', (t) => {
  const q = newQueue(t)
  const max = LIMITS.maxMessageSize
  const big = pattern(max, 7)
  q.send(big, { type: 4 })
  const m = q.receive()
  t.is(m.type, 4)
  t.true(m.data.equals(big))
  const err = t.throws(() => q.send(Buffer.alloc(max + 1)), { instanceOf: ShmError })
  t.is(err.code, 'EINVAL')
  t.is(err.syscall, 'msgsnd')
  t.regex(err.message, new RegExp(`msgmax, ${max} bytes`))
})

test('maxBytes (msg_qbytes) bounds bytes and message count: trySend false, EAGAIN, E2BIG for a message that never fits', (t) => {
  const q = newQueue(t, IPC_PRIVATE, { maxBytes: 100 })
  t.is(q.stat().maxBytes, 100)
  t.true(q.trySend(Buffer.alloc(100)), 'a message at the byte limit fits')
  t.false(q.trySend('x'))
  const err = t.throws(() => q.send('x', { block: false }), { instanceOf: ShmError })
  t.is(err.code, 'EAGAIN')
  t.is(err.errno, constants.errno.EAGAIN)
  t.is(err.syscall, 'msgsnd')
  t.is(q.receive().data.length, 100)
  const never = t.throws(() => q.send(Buffer.alloc(101)), { instanceOf: ShmError })
  t.is(never.code, 'E2BIG')
  t.regex(never.message, /never fit.*100 bytes/)
  t.is(q.stat().messages, 0)
  // msg_qbytes also bounds the number of messages: 4 empty ones fill a queue of 4 bytes.
  q.set({ maxBytes: 4 })
  for (let i = 0; i < 4; i++) t.true(q.trySend(''))
  t.false(q.trySend(''))
  t.is(q.stat().messages, 4)
})

test('a maxSize far above the message (64 KiB + 1 up to 2 GiB - 1) receives exactly the message: its bytes, its length, nothing after it', async (t) => {
  // The receive buffer of such a maxSize is not zero-filled: only what msgrcv wrote may come back.
  const q = newQueue(t)
  const sizes = [64 * 1024 + 1, 1 << 20, 16 << 20, 256 << 20, 2 ** 31 - 1]
  const big = Buffer.alloc(8000, 0xa5)
  for (const maxSize of sizes) {
    // A long message first, so that a reused buffer would hold its bytes past the short one's end.
    q.send(big, { type: 2 })
    const long = q.receive({ maxSize })
    t.is(long.type, 2)
    t.true(long.data.equals(big), `maxSize ${maxSize}: the 8000-byte message`)
    for (const text of ['', 'x', 'seven b', 'eight by', 'a message of some length']) {
      q.send(text, { type: 3 })
      const m = q.receive({ maxSize })
      t.is(m.type, 3)
      t.is(m.data.length, Buffer.byteLength(text), `maxSize ${maxSize}: ${JSON.stringify(text)}`)
      t.is(m.data.toString(), text)
    }
    q.send('async', { type: 4 })
    const a = await q.receiveAsync({ maxSize })
    t.deepEqual([a.type, a.data.toString()], [4, 'async'])
    q.send('0123456789', { type: 5 })
    const cut = q.receive({ maxSize, truncate: true })
    t.deepEqual([cut.type, cut.data.toString()], [5, '0123456789'])
  }
  t.is(q.stat().messages, 0)
})

test('E2BIG leaves a message longer than maxSize in the queue; truncate cuts it', (t) => {
  const q = newQueue(t)
  q.send('0123456789', { type: 6 })
  const err = t.throws(() => q.receive({ maxSize: 4 }), { instanceOf: ShmError })
  t.is(err.code, 'E2BIG')
  t.is(err.syscall, 'msgrcv')
  t.is(t.throws(() => q.tryReceive({ maxSize: 9 })).code, 'E2BIG')
  t.is(q.stat().messages, 1)
  const m = q.receive({ maxSize: 10 })
  t.is(m.data.toString(), '0123456789')
  q.send('0123456789', { type: 6 })
  const cut = q.receive({ maxSize: 4, truncate: true })
  t.is(cut.type, 6)
  t.is(cut.data.toString(), '0123')
  t.is(q.stat().messages, 0)
})

test('timeouts: receive throws ENOMSG and send EAGAIN after waiting at least timeoutMs', (t) => {
  const q = newQueue(t, IPC_PRIVATE, { maxBytes: 1 })
  let t0 = process.hrtime.bigint()
  const e1 = t.throws(() => q.receive({ timeoutMs: 40 }), { instanceOf: ShmError })
  t.true(process.hrtime.bigint() - t0 >= 40_000_000n)
  t.is(e1.code, 'ENOMSG')
  t.is(e1.errno, constants.errno.ENOMSG)
  t.regex(e1.message, /no message came for 40 ms/)
  t.is(t.throws(() => q.receive({ block: false })).code, 'ENOMSG')
  t.is(t.throws(() => q.receive({ timeoutMs: 0 })).code, 'ENOMSG')
  q.send('x')
  t0 = process.hrtime.bigint()
  const e2 = t.throws(() => q.send('y', { timeoutMs: 40 }), { instanceOf: ShmError })
  t.true(process.hrtime.bigint() - t0 >= 40_000_000n)
  t.is(e2.code, 'EAGAIN')
  t.regex(e2.message, /stayed full for 40 ms/)
  // A message that is there is taken whatever the timeout.
  t.is(q.receive({ timeoutMs: 0 }).data.toString(), 'x')
})

test('bad arguments throw TypeError/RangeError before any system call', (t) => {
  const before = listQueues().length
  const q = newQueue(t)
  const range = { instanceOf: RangeError }
  const type = { instanceOf: TypeError }
  t.throws(() => MessageQueue.create('1'), type)
  t.throws(() => MessageQueue.create(2 ** 32), range)
  t.throws(() => MessageQueue.create(IPC_PRIVATE, { mode: 0o1000 }), range)
  t.throws(() => MessageQueue.create(IPC_PRIVATE, { maxBytes: -1 }), range)
  t.throws(() => MessageQueue.create(IPC_PRIVATE, { exclusive: 1 }), type)
  t.throws(() => MessageQueue.create(IPC_PRIVATE, { size: 1 }), { instanceOf: TypeError, message: /Unknown option "size"/ })
  t.throws(() => MessageQueue.openById(-1), range)
  t.throws(() => q.send(42), type)
  t.throws(() => q.send(null), type)
  t.throws(() => q.send('x', { type: 0 }), range)
  t.throws(() => q.send('x', { type: -1 }), range)
  t.throws(() => q.send('x', { type: 1.5 }), range)
  t.throws(() => q.send('x', { type: '1' }), type)
  t.throws(() => q.send('x', { block: false, timeoutMs: 5 }), { instanceOf: RangeError, message: /block: true/ })
  t.throws(() => q.send('x', { timeoutMs: -1 }), range)
  t.throws(() => q.trySend('x', { block: true }), type)
  t.throws(() => q.receive({ type: 2 ** 53 }), range)
  t.throws(() => q.receive({ maxSize: -1 }), range)
  t.throws(() => q.receive({ except: true }), { instanceOf: RangeError, message: /except/ })
  t.throws(() => q.receive({ truncate: true }), { instanceOf: RangeError, message: /maxSize/ })
  t.throws(() => q.receive({ signal: new AbortController().signal }), type)
  t.throws(() => q.set({ mode: 0o1777 }), range)
  t.throws(() => q.set(), range)
  t.throws(() => q.set({ maxBytes: 1.5 }), range)
  t.is(q.stat().lastSendPid, 0, 'nothing was sent')
  t.is(listQueues().length, before + 1)
})

test('async calls reject (not throw) on bad arguments and an already-aborted signal', async (t) => {
  const q = newQueue(t)
  const p = q.receiveAsync({ type: 'x' })
  t.true(p instanceof Promise)
  await t.throwsAsync(p, { instanceOf: TypeError })
  await t.throwsAsync(q.receiveAsync({ signal: 'no' }), { instanceOf: TypeError })
  await t.throwsAsync(q.sendAsync('x', { type: 0 }), { instanceOf: RangeError })
  const reason = new Error('why')
  const aborted = AbortSignal.abort(reason)
  q.send('stay')
  const e = await t.throwsAsync(q.receiveAsync({ signal: aborted }), { name: 'AbortError' })
  t.is(e.code, 'ABORT_ERR')
  t.is(e.cause, reason)
  await t.throwsAsync(q.sendAsync('no', { signal: aborted }), { name: 'AbortError' })
  t.is(q.stat().messages, 1, 'an aborted call takes and sends nothing')
})

test('set changes mode, owner and maxBytes; after remove the id is invalid', (t) => {
  const q = newQueue(t)
  q.set({ mode: 0o604, maxBytes: 2048 })
  const st = q.stat()
  t.is(st.mode, 0o604)
  t.is(st.maxBytes, 2048)
  q.set({ uid: process.getuid(), gid: process.getgid() })
  t.is(q.stat().uid, process.getuid())
  q.remove()
  const err = t.throws(() => q.stat(), { instanceOf: ShmError })
  t.true(['EINVAL', 'EIDRM'].includes(err.code))
  t.false(listQueues().some((i) => i.id === q.id))
})

// ---------------------------------------------------------------- async and threads

test.serial('receiveAsync waits on a thread of its own, blocked in msgrcv, and the event loop runs on', async (t) => {
  const q = newQueue(t)
  let ticks = 0
  const timer = setInterval(() => ticks++, 2)
  t.teardown(() => clearInterval(timer))
  const p = q.receiveAsync({ type: 7 })
  const [tid] = await eventually(() => {
    const b = blockedThreads('msgrcv')
    return b.length === 1 && b
  })
  t.not(Number(tid), process.pid, 'not the main thread')
  // The application's signals (SIGCHLD of the child below, SIGINT) are blocked in the wait thread,
  // so they go to the application's threads and never break its msgrcv with EINTR.
  const blocked = BigInt('0x' + /SigBlk:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))[1])
  for (const [name, n] of [['SIGCHLD', 17], ['SIGINT', 2], ['SIGTERM', 15]]) t.is((blocked >> BigInt(n - 1)) & 1n, 1n, `${name} blocked`)
  const at = ticks
  await eventually(() => ticks >= at + 3)
  q.send('not for it', { type: 8 })
  const r = await runNode(`MessageQueue.openById(${q.id}).send('from a child', { type: 7 })`)
  t.is(r.code, 0, r.stderr)
  const m = await p
  t.is(m.type, 7)
  t.is(m.data.toString(), 'from a child')
  t.is(q.stat().messages, 1)
  await eventually(() => !blockedIn(process.pid, tid, 'msgrcv'))
})

test.serial('aborting receiveAsync interrupts the blocked msgrcv, frees the thread and takes no message', async (t) => {
  const q = newQueue(t)
  const ac = new AbortController()
  const p = q.receiveAsync({ signal: ac.signal })
  const [tid] = await eventually(() => {
    const b = blockedThreads('msgrcv')
    return b.length === 1 && b
  })
  ac.abort(new Error('enough'))
  const err = await t.throwsAsync(p, { name: 'AbortError' })
  t.is(err.code, 'ABORT_ERR')
  t.is(err.cause.message, 'enough')
  await eventually(() => !blockedIn(process.pid, tid, 'msgrcv'))
  q.send('after')
  t.is(q.stat().messages, 1, 'no leftover wait took the message')
})

test.serial('many aborts at every stage of the wait never hang and leave no wait behind', async (t) => {
  const q = newQueue(t)
  for (let i = 0; i < 100; i++) {
    const ac = new AbortController()
    const p = q.receiveAsync({ signal: ac.signal, type: 1 + (i % 3) })
    if (i % 3 === 1) await new Promise((r) => setImmediate(r))
    if (i % 3 === 2) await new Promise((r) => setTimeout(r, 1))
    ac.abort()
    await t.throwsAsync(p, { name: 'AbortError' })
  }
  await eventually(() => blockedThreads('msgrcv').length === 0)
  t.true(waitThreads().length <= 2, 'finished waits reuse their threads')
  q.send('kept')
  t.is(q.stat().messages, 1)
})

test('out of threads (RLIMIT_NPROC): receiveAsync rejects with ShmError EAGAIN (pthread_create), the process still exits, the pending ones still cancel', async (t) => {
  // As a user of its own (root is not held to RLIMIT_NPROC), with room for Node's own threads and a few more.
  // Before, the failed call's promise was never settled and kept the event loop alive: the child
  // never exited.
  const r = await runNodeWithThreadLimit(
    `const { MessageQueue } = shm
const q = MessageQueue.create(IPC_PRIVATE)
const ac = new AbortController()
const pending = []
for (let k = 0; k < 100; k++) pending.push(q.receiveAsync({ signal: ac.signal }).then(() => 'received', (e) => [e.name, e.code, e.syscall].join(' ')))
ac.abort()
const results = await Promise.all(pending)
q.remove()
const count = {}
for (const x of results) count[x] = (count[x] ?? 0) + 1
console.log(JSON.stringify(count))`,
    {},
  )
  t.is(r.code, 0, r.stderr)
  const count = JSON.parse(r.stdout)
  t.deepEqual(Object.keys(count).sort(), ['AbortError ABORT_ERR ', 'ShmError EAGAIN pthread_create'])
  t.true(count['AbortError ABORT_ERR '] > 0 && count['ShmError EAGAIN pthread_create'] > 0, JSON.stringify(count))
})

test.serial('a terminated worker cancels its pending receive', async (t) => {
  const q = newQueue(t)
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const { MessageQueue } = require(${JSON.stringify(PKG)});
     MessageQueue.openById(${q.id}).receiveAsync().then((m) => parentPort.postMessage('got ' + m.data));
     parentPort.postMessage('waiting');`,
    { eval: true },
  )
  const [msg] = await once(worker, 'message')
  t.is(msg, 'waiting')
  await eventually(() => blockedThreads('msgrcv').length === 1)
  await worker.terminate()
  // Not only out of msgrcv but asleep elsewhere (back in the pool, or gone): a thread that a stray
  // signal (SIGCHLD of another test's child) took out of msgrcv reads as "running" while it loops
  // back, and the teardown's cancel may not have reached it yet.
  await eventually(() => waitThreads().every((tid) => sleepingOutside(tid, 'msgrcv')))
  q.send('after')
  t.is(q.stat().messages, 1)
})

test.serial('removing the queue wakes blocked receivers in other processes and here with EIDRM', async (t) => {
  const q = newQueue(t)
  const child = startNode(`
    const q = MessageQueue.openById(Number(await next()));
    say('ready');
    try { q.receive() } catch (e) { say({ code: e.code, syscall: e.syscall }) }`)
  t.teardown(() => child.kill())
  child.send(String(q.id))
  t.is(await child.next(), 'ready')
  await eventually(() => blockedIn(child.pid, child.pid, 'msgrcv'))
  const here = q.receiveAsync()
  await eventually(() => blockedThreads('msgrcv').length === 1)
  q.remove()
  t.deepEqual(await child.next(), { code: 'EIDRM', syscall: 'msgrcv' })
  const e = await t.throwsAsync(here, { instanceOf: ShmError })
  t.is(e.code, 'EIDRM')
  t.is((await child.exit()).code, 0)
})

test.serial('a wait thread left idle ends by itself within seconds', async (t) => {
  const q = newQueue(t)
  const p = q.receiveAsync()
  await eventually(() => blockedThreads('msgrcv').length === 1)
  q.send('x')
  await p
  t.true(waitThreads().length >= 1)
  await eventually(() => waitThreads().length === 0, 15_000)
})

test('receiveAsync: timeoutMs rejects ENOMSG; a ready message resolves at once; many concurrent waits by type', async (t) => {
  const q = newQueue(t)
  const e = await t.throwsAsync(q.receiveAsync({ timeoutMs: 30 }), { instanceOf: ShmError })
  t.is(e.code, 'ENOMSG')
  t.is(e.syscall, 'msgrcv')
  await t.throwsAsync(q.receiveAsync({ timeoutMs: 0 }), { instanceOf: ShmError, code: 'ENOMSG' })
  q.send('ready', { type: 3 })
  t.is((await q.receiveAsync({ type: 3, timeoutMs: 0 })).data.toString(), 'ready')
  const waits = [1, 2, 3, 4, 5].map((type) => q.receiveAsync({ type, timeoutMs: 60_000 }))
  for (const type of [5, 3, 1, 4, 2]) q.send(`t${type}`, { type })
  const got = await Promise.all(waits)
  t.deepEqual(
    got.map((m) => `${m.type}:${m.data}`),
    ['1:t1', '2:t2', '3:t3', '4:t4', '5:t5'],
  )
})

test('messages() iterates as messages come; break takes no more; abort ends it with AbortError', async (t) => {
  const q = newQueue(t)
  for (const text of ['a', 'b', 'c', 'd']) q.send(text, { type: text === 'c' ? 2 : 1 })
  const got = []
  for await (const m of q.messages({ type: 1 })) {
    got.push(m.data.toString())
    if (got.length === 3) break
  }
  t.deepEqual(got, ['a', 'b', 'd'])
  t.is(q.stat().messages, 1)
  const ac = new AbortController()
  const later = []
  const loop = (async () => {
    for await (const m of q.messages({ signal: ac.signal })) {
      later.push(m.data.toString())
      if (later.length === 2) ac.abort()
    }
  })()
  setTimeout(() => q.send('e'), 10)
  await t.throwsAsync(loop, { name: 'AbortError' })
  t.deepEqual(later, ['c', 'e'])
})

test('sendAsync waits for room without blocking the loop; timeout EAGAIN; abort sends nothing', async (t) => {
  const q = newQueue(t, IPC_PRIVATE, { maxBytes: 8 })
  await q.sendAsync('12345678', { type: 1 })
  const e = await t.throwsAsync(q.sendAsync('9', { timeoutMs: 20 }), { instanceOf: ShmError })
  t.is(e.code, 'EAGAIN')
  const ac = new AbortController()
  const aborted = q.sendAsync('never', { signal: ac.signal, type: 2 })
  const pending = q.sendAsync('later', { type: 3 })
  await eventually(() => blockedThreads('msgsnd').length >= 2)
  ac.abort()
  await t.throwsAsync(aborted, { name: 'AbortError' })
  t.is(q.receive().data.toString(), '12345678')
  await pending
  t.is(q.receive().data.toString(), 'later')
  t.is(q.tryReceive(), null, 'the aborted send sent nothing')
  await t.throwsAsync(q.sendAsync(Buffer.alloc(9)), { instanceOf: ShmError, code: 'E2BIG' })
})

test('both wait strategies (signal, poll) time out, wake on a message and abort alike', async (t) => {
  const code = `
    const q = MessageQueue.create(0);
    const out = { strategy: MessageQueue.waitStrategy };
    try {
      try { q.receive({ timeoutMs: 20 }) } catch (e) { out.timeout = e.code }
      setTimeout(() => q.send('late', { type: 2 }), 20);
      out.timed = (await q.receiveAsync({ type: 2, timeoutMs: 60000 })).data.toString();
      const ac = new AbortController();
      const p = q.receiveAsync({ signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      try { await p } catch (e) { out.abort = e.name }
      q.send('kept');
      out.left = q.stat().messages;
    } finally { q.remove() }
    console.log(JSON.stringify(out));`
  for (const [env, strategy] of [
    [{}, 'signal'],
    [{ SYSV_SHM_MSG_WAIT: 'poll' }, 'poll'],
  ]) {
    const r = await runNode(code, { env })
    t.is(r.code, 0, r.stderr)
    t.deepEqual(JSON.parse(r.stdout), { strategy, timeout: 'ENOMSG', timed: 'late', abort: 'AbortError', left: 1 })
  }
})

// ---------------------------------------------------------------- across processes

test('a child blocked in msgrcv wakes on our send; one blocked in msgsnd wakes when we receive', async (t) => {
  const q = newQueue(t, IPC_PRIVATE, { maxBytes: 16 })
  const child = startNode(`
    const q = MessageQueue.openById(Number(await next()));
    say('ready');
    const m = q.receive({ type: -10 });
    say({ type: m.type, data: m.data.toString() });
    q.send('full!!!!!');          // 7 + 9 bytes: the queue is full
    q.send('more', { type: 2 });  // blocks until we receive
    say('sent');
    await next();`)
  t.teardown(() => child.kill())
  child.send(String(q.id))
  t.is(await child.next(), 'ready')
  await eventually(() => blockedIn(child.pid, child.pid, 'msgrcv'))
  q.send('ignored', { type: 11 })
  q.send('hi', { type: 4 })
  t.deepEqual(await child.next(), { type: 4, data: 'hi' })
  await eventually(() => blockedIn(child.pid, child.pid, 'msgsnd'))
  t.is(q.stat().bytes, 16)
  t.is(q.receive({ type: 11 }).data.toString(), 'ignored')
  t.is(await child.next(), 'sent')
  t.is(q.receive().data.toString(), 'full!!!!!')
  t.is(q.receive().data.toString(), 'more')
  t.is(q.stat().lastSendPid, child.pid)
  child.send('bye')
  t.is((await child.exit()).code, 0)
})

test('1000 messages of 3 types from a child arrive complete and in order per type', async (t) => {
  const q = newQueue(t)
  const r = runNode(`
    const q = MessageQueue.openById(${q.id});
    for (let i = 0; i < 1000; i++) await q.sendAsync(JSON.stringify({ i }), { type: 1 + (i % 3) });`)
  const seen = { 1: [], 2: [], 3: [] }
  for (let n = 0; n < 1000; n++) {
    const m = await q.receiveAsync({ type: n % 2 ? -3 : 0 })
    seen[m.type].push(JSON.parse(m.data).i)
  }
  t.is((await r).code, 0)
  for (const type of [1, 2, 3]) {
    const want = [...Array(1000).keys()].filter((i) => 1 + (i % 3) === type)
    t.deepEqual(seen[type], want)
  }
})

test('permissions: nobody gets EACCES without mode bits, EPERM for owner-only calls and for maxBytes above msgmnb', async (t) => {
  const q = newQueue(t)
  const key = uniqueKey()
  const r1 = await runNodeAsNobody(
    `const q = MessageQueue.openById(${q.id});
     const codes = [];
     for (const f of [() => q.trySend('x'), () => q.tryReceive(), () => q.remove(), () => q.set({ mode: 0o666 })]) {
       try { f(); codes.push('ok') } catch (e) { codes.push(e.code) }
     }
     console.log(JSON.stringify(codes));`,
  )
  t.is(r1.code, 0, r1.stderr)
  t.deepEqual(JSON.parse(r1.stdout), ['EACCES', 'EACCES', 'EPERM', 'EPERM'])
  // Others may write but not read: a mailbox.
  q.set({ mode: 0o602 })
  const r2 = await runNodeAsNobody(
    `const q = MessageQueue.openById(${q.id});
     const codes = [q.key];
     try { codes.push(q.trySend('from nobody', { type: 9 })) } catch (e) { codes.push(e.code) }
     try { q.tryReceive(); codes.push('ok') } catch (e) { codes.push(e.code) }
     try { q.stat(); codes.push('ok') } catch (e) { codes.push(e.code) }
     console.log(JSON.stringify(codes));`,
  )
  t.is(r2.code, 0, r2.stderr)
  t.deepEqual(JSON.parse(r2.stdout), [0, true, 'EACCES', 'EACCES'])
  t.is(q.receive({ type: 9 }).data.toString(), 'from nobody')
  const over = LIMITS.defaultMaxBytes + 1
  const r3 = await runNodeAsNobody(
    `const out = {};
     try { MessageQueue.create(${key}, { maxBytes: ${over} }) } catch (e) { out.create = e.code }
     out.leftAfterCreate = listQueues().filter((i) => i.key === ${key}).length;
     const q = MessageQueue.create(${key}, { maxBytes: 10 });
     try {
       try { q.set({ maxBytes: ${over} }) } catch (e) { out.raise = e.code }
       q.set({ maxBytes: ${LIMITS.defaultMaxBytes} });
       out.max = q.stat().maxBytes;
       out.uid = q.stat().uid;
     } finally { q.remove() }
     console.log(JSON.stringify(out));`,
  )
  t.is(r3.code, 0, r3.stderr)
  t.deepEqual(JSON.parse(r3.stdout), {
    create: 'EPERM',
    leftAfterCreate: 0,
    raise: 'EPERM',
    max: LIMITS.defaultMaxBytes,
    uid: 65534,
  })
  // Raising it above msgmnb takes CAP_SYS_RESOURCE, which even root may lack (containers).
  if (hasCapability(CAP_SYS_RESOURCE)) {
    q.set({ maxBytes: over })
    t.is(q.stat().maxBytes, over)
  } else {
    t.is(t.throws(() => q.set({ maxBytes: over }), { instanceOf: ShmError }).code, 'EPERM')
    t.is(q.stat().maxBytes, LIMITS.defaultMaxBytes)
  }
})

// ---------------------------------------------------------------- C interop

const BUILD = fileURLToPath(new URL('./.build/', import.meta.url))
const C_PEER = `${BUILD}msgq-peer`
let cBuilt

function cPeer() {
  if (!cBuilt) {
    mkdirSync(BUILD, { recursive: true })
    const src = fileURLToPath(new URL('./fixtures/msgq-peer.c', import.meta.url))
    const r = spawnSync('cc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O2', '-o', C_PEER, src], { encoding: 'utf8' })
    if (r.error || r.status !== 0) {
      throw new Error(`compiling the C peer failed (is a C compiler installed? run scripts/setup.sh): ${r.error ?? r.stderr}`)
    }
    cBuilt = true
  }
  return C_PEER
}

/** Parses a peer's "TYPE HEX" line. */
function parseMessage(stdout) {
  const [type, hex = ''] = stdout.trim().split(' ')
  return { type: Number(type), data: Buffer.from(hex, 'hex') }
}

test('C → Node and Node → C: types, priority receive, a message at msg_qbytes and at msgmax', async (t) => {
  const peer = cPeer()
  const key = uniqueKey()
  const limit = 5000
  const q = newQueue(t, key, { maxBytes: limit })
  const hexKey = '0x' + key.toString(16)
  const c = (...args) => spawnSync(peer, args.map(String), { encoding: 'utf8' })

  // Node → C.
  q.send('three', { type: 3 })
  q.send('one', { type: 1 })
  q.send('two', { type: 2 })
  t.deepEqual(c('stat', hexKey).stdout.trim().split(' ').slice(0, 3), ['3', '11', String(limit)])
  let r = c('recv', hexKey, -2, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 1, data: Buffer.from('one') })
  r = c('recv', hexKey, 0, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 3, data: Buffer.from('three') })
  r = c('recv', hexKey, 2, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 2, data: Buffer.from('two') })
  const atLimit = pattern(limit, 99)
  q.send(atLimit, { type: 8 })
  t.false(q.trySend('x'), 'the queue is full at msg_qbytes')
  r = c('recv', hexKey, 8, limit)
  t.is(r.status, 0, r.stdout + r.stderr)
  t.deepEqual(parseMessage(r.stdout), { type: 8, data: atLimit })
  t.is(q.stat().lastReceivePid > 0 && q.stat().lastReceivePid !== process.pid, true)

  // C → Node: a message at the byte limit fills the queue, so the next C send blocks
  // until Node receives.
  r = c('send', hexKey, 9, limit, 5)
  t.is(r.stdout.trim(), 'sent')
  const blocked = start(peer, ['send', hexKey, '4', '3', '1'])
  await eventually(() => blockedIn(blocked.pid, blocked.pid, 'msgsnd'))
  const m9 = await q.receiveAsync({ type: 9, timeoutMs: 30_000 })
  t.true(m9.data.equals(pattern(limit, 5)))
  t.is((await blocked.done).stdout.trim(), 'sent')
  const m4 = q.receive({ type: -5 })
  t.is(m4.type, 4)
  t.deepEqual([...m4.data], [...pattern(3, 1)])
  t.is(q.stat().lastSendPid, blocked.pid)

  // msgmax in both directions (raise the limit first: root may).
  const max = LIMITS.maxMessageSize
  q.set({ maxBytes: max })
  q.send(pattern(max, 3), { type: 12 })
  r = c('recv', hexKey, 12, max)
  t.true(parseMessage(r.stdout).data.equals(pattern(max, 3)))
  r = c('send', hexKey, 13, max, 4)
  t.is(r.status, 0, r.stdout)
  t.true(q.receive().data.equals(pattern(max, 4)))

  // A C receiver blocked in msgrcv wakes on a send from Node.
  const waiting = start(peer, ['recv', hexKey, '21', '10'])
  await eventually(() => blockedIn(waiting.pid, waiting.pid, 'msgrcv'))
  q.send('wake', { type: 21 })
  t.deepEqual(parseMessage((await waiting.done).stdout), { type: 21, data: Buffer.from('wake') })
})

// ---------------------------------------------------------------- Python interop

let python
/** The venv python with sysv_ipc, set up by scripts/setup-python.sh; throws if that cannot be done. */
function pythonPeer() {
  if (python) return python
  const venv = `${ROOT}.venv/bin/python`
  const ok = existsSync(venv) && spawnSync(venv, ['-c', 'import sysv_ipc']).status === 0
  if (!ok) {
    const r = spawnSync('bash', [`${ROOT}scripts/setup-python.sh`], { encoding: 'utf8' })
    if (r.error || r.status !== 0) {
      throw new Error(
        'The Python interop tests need Python 3 with sysv_ipc in .venv/; scripts/setup-python.sh ' +
          `could not set it up (install python3, python3-venv, python3-dev):\n${r.error ?? ''}${r.stdout}${r.stderr}`,
      )
    }
  }
  python = venv
  return python
}
const PY_PEER = fileURLToPath(new URL('./fixtures/msgq_peer.py', import.meta.url))

test('Python sysv_ipc ↔ Node: a queue made by Python, types both ways, messages at msg_qbytes and msgmax', async (t) => {
  const py = pythonPeer()
  const run = (...args) => spawnSync(py, [PY_PEER, ...args.map(String)], { encoding: 'utf8' })
  const key = uniqueKey()
  const limit = 3000
  let r = run('create', key, limit)
  t.is(r.status, 0, r.stdout + r.stderr)
  const q = MessageQueue.open(key)
  t.teardown(() => {
    try {
      q.remove()
    } catch {}
  })
  t.is(q.id, Number(r.stdout.trim()))
  t.false(q.created)
  t.is(q.stat().maxBytes, limit)
  t.is(q.stat().mode, 0o600)

  // Node → Python.
  q.send('five', { type: 5 })
  q.send('three', { type: 3 })
  q.send('four', { type: 4 })
  r = run('recv', key, -4, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 3, data: Buffer.from('three') })
  r = run('recv', key, 5, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 5, data: Buffer.from('five') })
  r = run('recv', key, 0, 100)
  t.deepEqual(parseMessage(r.stdout), { type: 4, data: Buffer.from('four') })
  const atLimit = pattern(limit, 42)
  q.send(atLimit, { type: 7 })
  t.false(q.trySend('x'), 'full at msg_qbytes')
  t.true(q.trySend(''), 'an empty message still fits: only the count limit applies to it')
  t.is(q.receive({ type: 1 }).data.length, 0)
  t.deepEqual(run('stat', key).stdout.trim().split(' ').slice(0, 2), ['1', String(limit)])
  r = run('recv', key, 0, limit)
  t.deepEqual(parseMessage(r.stdout), { type: 7, data: atLimit })

  // Python → Node, with Node already waiting (async) for type 2.
  const waiting = q.receiveAsync({ type: 2, timeoutMs: 30_000 })
  const sender = start(py, [PY_PEER, 'send', String(key), '2', String(limit), '9'])
  const m2 = await Promise.race([waiting, sender.done.then((r) => (r.code === 0 ? waiting : Promise.reject(new Error(r.stderr))))])
  t.is(m2.type, 2)
  t.true(m2.data.equals(pattern(limit, 9)))
  t.is((await sender.done).stdout.trim(), 'sent')
  t.is(q.stat().lastSendPid, sender.pid)
  r = run('send', key, 1, 10, 0)
  t.is(r.stdout.trim(), 'sent')
  t.deepEqual(q.receive(), { type: 1, data: pattern(10, 0) })

  // msgmax both ways.
  const max = LIMITS.maxMessageSize
  q.set({ maxBytes: max })
  r = run('send', key, 6, max, 1)
  t.is(r.status, 0, r.stdout + r.stderr)
  t.true(q.receive().data.equals(pattern(max, 1)))
  q.send(pattern(max, 2), { type: 6 })
  r = run('recv', key, 6, max)
  t.true(parseMessage(r.stdout).data.equals(pattern(max, 2)))

  // A Python receiver blocked in msgrcv wakes on a send from Node.
  const blocked = start(py, [PY_PEER, 'recv', String(key), '-3', '100'])
  await eventually(() => blockedIn(blocked.pid, blocked.pid, 'msgrcv'))
  q.send('wake', { type: 3 })
  t.deepEqual(parseMessage((await blocked.done).stdout), { type: 3, data: Buffer.from('wake') })
})

// ---------------------------------------------------------------- the CLI

const CLI = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url))
const cli = (...args) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } })

test('sysv-shm ls -q lists queues as ipcs -q does; -l shows the pids of ipcs -q -p; --json, --key, --mine', async (t) => {
  const key = uniqueKey()
  const a = newQueue(t, key, { mode: 0o640, maxBytes: 1000 })
  const b = newQueue(t)
  a.send('hello', { type: 3 })
  a.send('world!', { type: 1 })
  const r = await runNode(`MessageQueue.openById(${a.id}).receive({ type: 3 })`)
  t.is(r.code, 0, r.stderr)

  const ipcs = new Map()
  for (const line of sh('ipcs', ['-q']).split('\n')) {
    const w = line.trim().split(/\s+/)
    if (/^0x[0-9a-f]{8}$/.test(w[0])) ipcs.set(Number(w[1]), w)
  }
  const ls = cli('ls', '-q')
  t.is(ls.status, 0, ls.stderr)
  const [head, ...lines] = ls.stdout.trim().split('\n')
  t.deepEqual(head.split(/\s+/), ['key', 'msqid', 'owner', 'perms', 'mode', 'used-bytes', 'messages'])
  for (const q of [a, b]) {
    const row = lines.map((l) => l.split(/\s+/)).find((w) => Number(w[1]) === q.id)
    const [k, id, owner, perms, bytes, messages] = ipcs.get(q.id)
    t.deepEqual([row[0], row[1], row[2], row[4].slice(1), row[5], row[6]], [k, id, owner, perms, bytes, messages])
  }
  t.deepEqual(
    lines.find((l) => l.startsWith(`0x${key.toString(16)}`)).split(/\s+/).slice(3),
    ['rw-r-----', '0640', '6', '1'],
  )

  const long = cli('ls', '-q', '-l', '--key', '0x' + key.toString(16))
  t.is(long.status, 0, long.stderr)
  const [, row] = long.stdout.trim().split('\n')
  const cells = row.split(/ {2,}/)
  const pids = sh('ipcs', ['-q', '-p']).split('\n').find((l) => l.startsWith(`${a.id} `)).trim().split(/\s+/)
  t.deepEqual([cells[8], cells[11], cells[12]], ['1000', pids[2], pids[3]])
  t.is(Number(pids[3]), r.pid, 'the last receive was the child')

  const json = JSON.parse(cli('ls', '-q', '--json', '--mine').stdout)
  const ja = json.find((q) => q.id === a.id)
  t.deepEqual(
    { ...ja, user: undefined, group: undefined, creatorUser: undefined, creatorGroup: undefined },
    {
      id: a.id, key, keyHex: '0x' + key.toString(16).padStart(8, '0'), mode: 0o640, modeOctal: '0640', perms: 'rw-r-----',
      uid: process.getuid(), user: undefined, gid: process.getgid(), group: undefined, cuid: process.getuid(),
      creatorUser: undefined, cgid: process.getgid(), creatorGroup: undefined, messages: 1, bytes: 6, maxBytes: 1000,
      lastSendPid: process.pid, lastReceivePid: r.pid, sendTime: ja.sendTime, receiveTime: ja.receiveTime, changeTime: ja.changeTime,
    },
  )
  t.is(Date.parse(ja.sendTime), a.stat().sendTime.getTime())
  t.true(json.some((q) => q.id === b.id))
  t.deepEqual(JSON.parse(cli('ls', '-q', '--json', '--key', String(key)).stdout).map((q) => q.id), [a.id])
  t.deepEqual(JSON.parse(cli('ls', '-q', '--json', '--older-than', '1h', '--key', String(key)).stdout), [])

  const bad = cli('ls', '-q', '--orphans')
  t.is(bad.status, 2)
  t.regex(bad.stderr, /--orphans is about segments/)
})

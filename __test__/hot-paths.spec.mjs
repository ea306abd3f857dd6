// The hot paths that run in JavaScript where a zero-copy view exists: SharedMemory read, readInto
// and write copy through the view and check their ranges themselves, with no native call (shown by
// counting the calls into the addon's Mapping class); without a view (zeroCopy: false, read-only,
// Electron) they call the native copy. Both paths must give the same bytes and the same errors.
import test from 'ava'

import { Channel, IPC_PRIVATE, Mutex, SharedMemory, ShmError } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { dispose, noLeaks, runNode } from './helpers.mjs'

noLeaks(test)

/**
 * Counts the calls into the native class of `proto` (default: Mapping) and the addon's plain
 * functions (the copy path's, the waits' and wakes' over the External) while `fn` runs: every
 * method and getter of the prototype, and the addon's functions, are wrapped for that time.
 */
function nativeCalls(fn, proto = native.Mapping.prototype) {
  const saved = [proto, native].flatMap((proto) =>
    Object.getOwnPropertyNames(proto)
      .filter((k) => k !== 'constructor' && (proto !== native || typeof native[k] === 'function'))
      .map((k) => [proto, k, Object.getOwnPropertyDescriptor(proto, k)]),
  )
  const calls = []
  for (const [proto, k, d] of saved) {
    const wrap = (f) =>
      function (...args) {
        calls.push(k)
        return f.apply(this, args)
      }
    Object.defineProperty(proto, k, {
      ...d,
      ...(d.get ? { get: wrap(d.get) } : {}),
      ...(typeof d.value === 'function' ? { value: wrap(d.value) } : {}),
    })
  }
  try {
    fn()
  } finally {
    for (const [proto, k, d] of saved) Object.defineProperty(proto, k, d)
  }
  return calls
}

function pair(t, size) {
  const a = SharedMemory.create(IPC_PRIVATE, size)
  const b = SharedMemory.openById(a.id, { zeroCopy: false })
  t.teardown(() => dispose(b, a))
  return { fast: a, copying: b }
}

test('read, readInto and write of a zero-copy handle make no native call; those of a copying handle do', (t) => {
  const { fast, copying } = pair(t, 4096)
  const data = Buffer.from('0123456789abcdef'.repeat(4))
  const into = Buffer.alloc(64)
  // The zero-copy view is made at its first use, once.
  t.deepEqual(
    nativeCalls(() => t.is(fast.write(data, 100), 64)),
    ['createBuffer'],
  )
  const fastCalls = nativeCalls(() => {
    t.true(fast.attached)
    t.is(fast.write(data, 100), 64)
    t.is(fast.readInto(into, 100), 64)
    t.deepEqual(fast.read(100, 64), data)
  })
  t.deepEqual(fastCalls, [])
  const copyCalls = nativeCalls(() => {
    t.is(copying.write(data, 200), 64)
    t.is(copying.readInto(into, 200), 64)
  })
  t.deepEqual(copyCalls, ['copyHandle', 'mappingWrite', 'mappingReadInto'])
})

test('an attach and detach that never touch the memory make no zero-copy buffer: the view is made at first use', (t) => {
  const seg = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(seg))
  const calls = nativeCalls(() => {
    const shm = SharedMemory.openById(seg.id)
    t.is(shm.size, 4096)
    t.true(shm.attached)
    shm.detach()
  })
  t.deepEqual(calls, ['mappingAttach', 'detach'])
  // Each first use makes it: buffer, zeroCopy, read, notify.
  for (const use of [(s) => s.buffer, (s) => s.zeroCopy, (s) => s.read(0, 1), (s) => s.notify(0)]) {
    const shm = SharedMemory.openById(seg.id)
    t.deepEqual(nativeCalls(() => use(shm)), ['createBuffer'])
    t.true(shm.zeroCopy)
    shm.buffer[100] = 9
    t.is(seg.read(100, 1)[0], 9)
    shm.detach()
    t.is(shm.zeroCopy, false)
  }
})

test('uncontended Mutex lock, tryLock, unlock and acquire make no native call on a zero-copy handle; the copying handle uses word operations', (t) => {
  const { fast, copying } = pair(t, 4096)
  const m = Mutex.create(fast, 64)
  m.lock() // the first call of this thread reads its identity (gettid, /proc/thread-self/stat) once
  m.unlock()
  const fastCalls = nativeCalls(() => {
    for (let i = 0; i < 100; i++) {
      t.true(m.lock())
      m.unlock()
      t.true(m.tryLock())
      m.unlock()
      m.acquire()[Symbol.dispose]()
    }
  })
  t.deepEqual(fastCalls, [])
  const slow = Mutex.at(copying, 64)
  const copyCalls = nativeCalls(() => {
    t.true(slow.lock())
    slow.unlock()
  })
  t.true(copyCalls.length > 0)
  t.true(copyCalls.every((k) => k === 'mappingWord' || k === 'copyHandle'), copyCalls.join())
})

test('both paths copy the same bytes: any view type, offsets up to the end, partial readInto, strings', (t) => {
  const { fast, copying } = pair(t, 1000)
  for (const [writer, reader] of [[fast, copying], [copying, fast]]) {
    const src = new Float64Array([1.5, -2, 3e300])
    t.is(writer.write(src, 8), 24)
    t.deepEqual(reader.read(8, 24), Buffer.from(src.buffer))
    t.is(writer.write(new DataView(src.buffer, 8, 8), 992), 8)
    t.deepEqual(reader.read(992), Buffer.from(src.buffer, 8, 8))
    t.is(writer.write('héllo', 40), 6)
    t.is(reader.read(40, 6).toString(), 'héllo')
    t.is(writer.write(src.buffer, 0), 24)
    const i32 = new Int32Array(10)
    t.is(reader.readInto(i32, 996), 4, 'as many bytes as remain')
    t.is(i32[0], new Int32Array(src.buffer, 8, 2)[1])
    const dv = new DataView(new ArrayBuffer(6))
    t.is(reader.readInto(dv, 40), 6)
    t.is(Buffer.from(dv.buffer).toString(), 'héllo')
    t.is(reader.readInto(Buffer.alloc(4), 1000), 0)
    t.is(reader.read(1000).length, 0)
    t.is(writer.write(Buffer.alloc(0), 1000), 0)
  }
})

test('a write from a view of the same segment copies as memmove does, on both paths', (t) => {
  const { fast, copying } = pair(t, 64)
  for (const shm of [fast, copying]) {
    fast.buffer.fill(0)
    for (let i = 0; i < 16; i++) fast.buffer[i] = i + 1
    shm.write(fast.buffer.subarray(0, 16), 4)
    t.deepEqual([...fast.buffer.subarray(0, 20)], [1, 2, 3, 4, ...Array.from({ length: 16 }, (_, i) => i + 1)])
  }
})

test('range errors are the same on both paths, before anything is copied', (t) => {
  const { fast, copying } = pair(t, 100)
  for (const shm of [fast, copying]) {
    fast.buffer.fill(7)
    const e1 = t.throws(() => shm.write(Buffer.alloc(10), 91), { instanceOf: RangeError })
    t.is(e1.code, 'ERR_OUT_OF_RANGE')
    t.throws(() => shm.write(Buffer.alloc(1), 101), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => shm.write(Buffer.alloc(1), -1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => shm.write(Buffer.alloc(1), 1.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => shm.write(42), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => shm.readInto(Buffer.alloc(1), 101), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => shm.readInto([1, 2], 0), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => shm.read(50, 51), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => shm.read('0'), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.true(fast.buffer.every((b) => b === 7), 'nothing was written')
  }
})

test('after detach, read, readInto and write throw ERR_SHM_DETACHED on both paths, with no native call', (t) => {
  const { fast, copying } = pair(t, 64)
  fast.remove()
  fast.detach()
  copying.detach()
  for (const shm of [fast, copying]) {
    const calls = nativeCalls(() => {
      t.false(shm.attached)
      t.false(shm.zeroCopy)
      for (const call of [() => shm.write(Buffer.alloc(1)), () => shm.readInto(Buffer.alloc(1)), () => shm.read(0, 1)]) {
        const e = t.throws(call, { instanceOf: ShmError })
        t.is(e.code, 'ERR_SHM_DETACHED')
      }
    })
    t.deepEqual(calls, [])
  }
})

test('a read-only handle reads through the native copy and refuses writes with ERR_SHM_READ_ONLY', (t) => {
  const rw = SharedMemory.create(IPC_PRIVATE, 64)
  const ro = SharedMemory.openById(rw.id, { readOnly: true })
  t.teardown(() => dispose(ro, rw))
  rw.write('read me', 3)
  t.is(ro.read(3, 7).toString(), 'read me')
  const e = t.throws(() => ro.write('x'), { instanceOf: ShmError })
  t.is(e.code, 'ERR_SHM_READ_ONLY')
  t.is(rw.read(0, 1)[0], 0)
})

// The Channel's send and receive of one record in JavaScript (src/ring.ts), beside a handle of
// the same channel that has only native calls (as in Electron: no view of the segment).

/** A channel, a native-only handle of it, and a SharedMemory view of its segment to poke words. */
function channel(t, capacity) {
  const js = Channel.create(IPC_PRIVATE, capacity)
  js.remove()
  process.env.SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS = '1'
  let nat
  try {
    nat = Channel.openById(js.id)
  } finally {
    delete process.env.SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS
  }
  const shm = SharedMemory.openById(js.id)
  t.teardown(() => {
    shm.detach()
    nat.detach()
    js.detach()
  })
  const words = new BigUint64Array(shm.buffer.buffer, shm.buffer.byteOffset, 64)
  return { js, nat, shm, words }
}

/** Counts the calls into the native ChannelHandle class and the addon's functions while `fn` runs. */
const channelCalls = (fn) => nativeCalls(fn, native.ChannelHandle.prototype)

const HEAD = 128 / 8
const TAIL = 256 / 8

test('the bare native callbacks of the hot paths check their arguments as napi-rs functions do: wrong External, missing arguments, detached', (t) => {
  const seg = SharedMemory.create(IPC_PRIVATE, 4096, { zeroCopy: false })
  const ch = Channel.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(ch, seg))
  const m = native.mappingAttach(seg.id, false)[0]
  const h = m.copyHandle()
  const c = native.ChannelHandle.openById(ch.id)
  const hc = c.copyHandle()
  t.is(native.mappingNotify(h, 0, 1), 0)
  // An External of the other kind, or none, is refused (napi-rs compares the External's TypeId).
  t.throws(() => native.mappingNotify(hc, 0, 1), { message: /not the type of wrapped object/ })
  t.throws(() => native.channelWake(h, true), { message: /not the type of wrapped object/ })
  t.throws(() => native.mappingWord({}, 0, 0, 0, 0), { message: /external/ })
  t.throws(() => native.mappingNotify(h), { code: 'NumberExpected' })
  t.throws(() => native.mappingReadInto(h, 'text', 0), { instanceOf: TypeError })
  t.throws(() => native.mappingNotify(h, 3, 1), { instanceOf: RangeError })
  t.throws(() => native.channelTrySend(hc, 5), { instanceOf: TypeError })
  t.true(native.channelTrySend(hc, Buffer.from('abc')))
  t.deepEqual(native.channelTryRecv(hc), Buffer.from('abc'))
  t.is(native.channelTryRecv(hc), null)
  m.detach(null)
  c.detach(null)
  t.throws(() => native.mappingNotify(h, 0, 1), { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
  t.throws(() => native.channelWake(hc, true), { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
})

test('Channel send, trySend, recv, tryRecv, recvInto and tryRecvInto of a handle with a view make no native call', (t) => {
  const { js } = channel(t, 4096)
  const target = new Uint8Array(100)
  const calls = channelCalls(() => {
    t.true(js.trySend(Buffer.from('one')))
    t.true(js.send(new Uint16Array([1, 2, 3]), 1000))
    t.true(js.send('three'))
    t.true(js.trySend(new DataView(new ArrayBuffer(5))))
    t.deepEqual(js.tryRecv(), Buffer.from('one'))
    t.is(js.recvInto(target, 1000), 6)
    t.deepEqual([...new Uint16Array(target.buffer, 0, 3)], [1, 2, 3])
    t.is(js.recv().toString(), 'three')
    t.is(js.tryRecvInto(new DataView(target.buffer)), 5)
    t.is(js.tryRecvInto(target), null)
    t.is(js.tryRecv(), null)
  })
  t.deepEqual(calls, [])
})

test('the JavaScript and native paths interoperate: records that wrap the ring end, a full ring, u64 head and tail past 2^32', (t) => {
  const { js, nat, words } = channel(t, 256)
  // Both indices just below 2^32: the next records carry into the high half.
  words[HEAD] = 2n ** 32n - 64n
  words[TAIL] = 2n ** 32n - 64n
  for (const [tx, rx] of [[js, nat], [nat, js], [js, js], [nat, nat]]) {
    const sent = []
    for (let i = 0; ; i++) {
      const m = Buffer.alloc(1 + ((i * 37) % 90), i & 255)
      if (!tx.trySend(m)) break
      sent.push(m)
    }
    t.true(sent.length >= 3, 'the ring filled up')
    t.false(tx.trySend(Buffer.alloc(200)), 'full')
    for (const m of sent) t.deepEqual(rx.tryRecv(), m)
    t.is(rx.tryRecv(), null)
  }
  t.true(words[HEAD] > 2n ** 32n, 'head carried past 2^32')
  t.is(words[HEAD], words[TAIL])
  // And near 2^64: the indices wrap.
  words[HEAD] = 2n ** 64n - 24n
  words[TAIL] = 2n ** 64n - 24n
  for (let i = 0; i < 10; i++) {
    t.true(js.trySend(Buffer.from(`message ${i}`)))
    t.is(nat.tryRecv().toString(), `message ${i}`)
  }
  t.true(words[HEAD] < 256n, 'head wrapped past 2^64')
})

test('a corrupt head, tail or record length is ERR_CHANNEL_CORRUPT on both paths, and nothing is received or sent with it', (t) => {
  const { js, nat, words, shm } = channel(t, 256)
  const cases = [
    ['tail', () => (words[TAIL] = 4n), /bad tail: tail 4 is not a multiple of 8/],
    ['head', () => (words[HEAD] = 12n), /bad head: head 12 is not a multiple of 8/],
    ['head', () => (words[HEAD] = 512n), /bad head: head 512 is more than the capacity 256 ahead of tail 0/],
    ['tail', () => (words[TAIL] = 64n), /bad tail: tail 64 is ahead of head 0/],
    ['head', () => (words[HEAD] = 2n ** 32n), /bad head: head 4294967296 is more than the capacity/],
    ['record length', () => {
      words[HEAD] = 16n
      shm.buffer.writeUInt32LE(9, 512)
    }, /bad record length: the record at tail 0 says 9 bytes \(24 with its header and padding\), but head 16 publishes only 16 bytes/],
  ]
  for (const [word, corrupt, message] of cases) {
    for (const ch of [js, nat]) {
      words[HEAD] = 0n
      words[TAIL] = 0n
      shm.buffer.fill(0, 512)
      corrupt()
      const head = words[HEAD]
      const tail = words[TAIL]
      for (const call of [() => ch.tryRecvInto(Buffer.alloc(64)), () => ch.tryRecv(), () => ch.recvInto(Buffer.alloc(64), 0)]) {
        const e = t.throws(call, { instanceOf: ShmError }, `${word}: receive`)
        t.is(e.code, 'ERR_CHANNEL_CORRUPT')
        t.regex(e.message, message)
      }
      // A sender reads tail only when its cached tail shows no room (as the core does): head is checked on every send.
      if (word === 'head') {
        const e = t.throws(() => ch.trySend(Buffer.alloc(200)), { instanceOf: ShmError }, `${word}: send`)
        t.is(e.code, 'ERR_CHANNEL_CORRUPT')
      }
      t.is(words[HEAD], head, 'head untouched')
      t.is(words[TAIL], tail, 'tail untouched')
    }
  }
})

test('the JavaScript path leaves to the native call what it reports: closed, too large, a target too small', (t) => {
  const { js } = channel(t, 256)
  t.throws(() => js.trySend(Buffer.alloc(249)), { instanceOf: RangeError })
  t.true(js.trySend(Buffer.alloc(20, 1)))
  const e = t.throws(() => js.tryRecvInto(Buffer.alloc(19)), { instanceOf: RangeError })
  t.is(e.code, 'ERR_BUFFER_TOO_SMALL')
  t.deepEqual(js.tryRecv(), Buffer.alloc(20, 1), 'the message stayed')
  js.close()
  const c = t.throws(() => js.send(Buffer.alloc(1)), { instanceOf: ShmError })
  t.is(c.code, 'ERR_CHANNEL_CLOSED')
  t.is(js.recv(0), null)
})

test('Channel detach ends the attachment at once, and its calls throw ERR_SHM_DETACHED, on both paths', (t) => {
  const { js, nat, shm } = channel(t, 256)
  t.is(shm.stat().attachCount, 3)
  js.detach()
  t.is(shm.stat().attachCount, 2, 'shmdt at detach, not at garbage collection')
  nat.detach()
  t.is(shm.stat().attachCount, 1)
  for (const ch of [js, nat]) {
    for (const call of [() => ch.trySend(Buffer.alloc(1)), () => ch.send('x'), () => ch.tryRecvInto(Buffer.alloc(1)), () => ch.recv(0)]) {
      const e = t.throws(call, { instanceOf: ShmError })
      t.is(e.code, 'ERR_SHM_DETACHED')
    }
  }
})

test('views of a detached ArrayBuffer are zero bytes on the JavaScript paths, never a TypeError', (t) => {
  const { fast } = pair(t, 64)
  const { js } = channel(t, 256)
  const { buffer } = new Uint8Array(8)
  const detached = [new Uint8Array(buffer), new Float64Array(buffer)]
  structuredClone(buffer, { transfer: [buffer] })
  for (const view of detached) {
    t.is(view.byteLength, 0)
    t.is(fast.write(view, 3), 0)
    t.is(fast.readInto(view, 3), 0)
    t.true(js.trySend(view))
    t.true(js.send(view))
  }
  t.is(js.tryRecvInto(detached[0]), 0)
  t.is(js.recvInto(detached[1]), 0)
  t.is(js.tryRecv().length, 0)
  t.is(js.recv(0).length, 0)
})

test('trySendMany, recvMany and tryRecvMany run in JavaScript with one store of head or tail per batch, and agree with the native path', (t) => {
  const { js, nat, words } = channel(t, 512)
  words[HEAD] = 2n ** 32n - 40n
  words[TAIL] = 2n ** 32n - 40n
  const items = Array.from({ length: 12 }, (_, i) => Buffer.alloc(1 + ((i * 29) % 60), i + 1))
  for (const [tx, rx, jsCalls] of [[js, nat, true], [nat, js, true], [js, js, true], [nat, nat, false]]) {
    const target = Buffer.alloc(1000)
    const lengths = new Uint32Array(5)
    let sent = 0
    let got = []
    const calls = channelCalls(() => {
      sent = tx.trySendMany(items)
      for (;;) {
        const n = got.length % 2 ? rx.tryRecvMany(target, lengths) : rx.recvMany(target, lengths, 0)
        if (n === null) break
        let off = 0
        for (let k = 0; k < n; k++) {
          got.push(Buffer.from(target.subarray(off, off + lengths[k])))
          off += lengths[k]
        }
      }
    })
    t.true(sent >= 5 && sent < items.length, `${sent} sent: the ring filled up`)
    t.deepEqual(got, items.slice(0, sent))
    if (tx === js && rx === js) t.deepEqual(calls, [], 'no native call')
    if (!jsCalls) t.true(calls.length > 0)
  }
  // What the JavaScript path leaves to the native one: an item that is not a view, a target too small.
  t.throws(() => js.trySendMany([Buffer.from('a'), 'b']), { instanceOf: TypeError })
  t.deepEqual(nat.tryRecv(), Buffer.from('a'))
  t.true(js.trySend(Buffer.alloc(30)))
  const e = t.throws(() => js.tryRecvMany(Buffer.alloc(10), new Uint32Array(4)), { instanceOf: RangeError })
  t.is(e.code, 'ERR_BUFFER_TOO_SMALL')
  const shared = new Uint32Array(20)
  t.throws(() => js.tryRecvMany(new Uint8Array(shared.buffer, 0, 40), shared), { instanceOf: RangeError })
})

/** A Uint8Array whose `byteLength` and `length` lie (a subclass may define them). */
class Liar extends Uint8Array {
  get byteLength() {
    return 8
  }

  get length() {
    return 8
  }
}

test('a view whose byteLength lies is copied at its true length on both paths: the length checked is the length copied', (t) => {
  const { fast, copying } = pair(t, 4096)
  const data = new Liar(100).fill(7)
  for (const shm of [fast, copying]) {
    t.is(shm.write(data, 0), 100)
    t.deepEqual(shm.read(0, 100), Buffer.alloc(100, 7))
    const big = new Liar(5000)
    t.throws(() => shm.write(big, 0), { instanceOf: RangeError })
    shm.write(Buffer.alloc(100), 0)
  }
  // An own property lies as well as a getter of a subclass does.
  const own = Object.defineProperty(new Uint8Array(100).fill(9), 'byteLength', { value: 1 })
  t.is(fast.write(own, 0), 100)
  t.deepEqual(copying.read(0, 100), Buffer.alloc(100, 9))
})

test('a Channel message whose view lies about its length is one record of its true length: the next record is intact', (t) => {
  const { js, nat } = channel(t, 4096)
  for (const [sender, receiver] of [
    [js, nat],
    [nat, js],
    [js, js],
  ]) {
    t.true(sender.trySend(new Liar(300).fill(1)))
    t.is(sender.trySendMany([new Liar(200).fill(2), Buffer.from('after')]), 2)
    t.deepEqual(receiver.tryRecv(), Buffer.alloc(300, 1))
    t.deepEqual(receiver.tryRecv(), Buffer.alloc(200, 2))
    t.deepEqual(receiver.tryRecv(), Buffer.from('after'))
    t.is(receiver.tryRecv(), null)
  }
  // A target that claims more room than it has gets no more than fits: the record stays.
  t.true(nat.trySend(Buffer.alloc(50, 3)))
  const small = new (class extends Uint8Array {
    get byteLength() {
      return 4096
    }
  })(10)
  t.throws(() => js.tryRecvInto(small), { instanceOf: RangeError })
  t.deepEqual(js.tryRecv(), Buffer.alloc(50, 3))
})

test('a segment view detached by ArrayBuffer#transfer() sends every later call native, and detach() refuses while the moved buffer lives', async (t) => {
  if (typeof ArrayBuffer.prototype.transfer !== 'function') {
    // Node 18 and 20 have no ArrayBuffer#transfer (test:runtimes runs this file on Node 22, 24
    // and 26, where the branch below runs).
    t.true(Number(process.versions.node.split('.')[0]) < 21)
    return
  }
  // In a child: the moved ArrayBuffer keeps the mapping reachable, so the segment stays attached
  // (detach() refuses, ERR_SHM_BUFFER_LIVE) until that process ends; it is marked removed first.
  const r = await runNode(`
    const seg = SharedMemory.create(IPC_PRIVATE, 4096)
    seg.remove()
    seg.write('still here', 0)
    const moved = seg.buffer.buffer.transfer()
    const out = { moved: moved.byteLength, read: seg.read(0, 10).toString(), wrote: seg.write('native now', 0) }
    const into = Buffer.alloc(10)
    out.readInto = seg.readInto(into, 0)
    out.into = into.toString()
    out.notify = seg.notify(0, 1)
    try { seg.buffer } catch (e) { out.buffer = e.code + ': ' + e.message }
    try { seg.detach() } catch (e) { out.detach = e.code }
    out.attached = seg.attached
    out.after = seg.read(0, 10).toString()
    out.seen = Buffer.from(moved, 0, 10).toString()
    console.log(JSON.stringify(out))
  `)
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.like(out, {
    moved: 4096,
    read: 'still here',
    wrote: 10,
    readInto: 10,
    into: 'native now',
    notify: 0,
    detach: 'ERR_SHM_BUFFER_LIVE',
    attached: true,
    after: 'native now',
    seen: 'native now',
  })
  t.regex(out.buffer, /^ERR_SHM_NO_ZERO_COPY: .*detached/)
})

// The hot paths that run in JavaScript where a zero-copy view exists: SharedMemory read, readInto
// and write copy through the view and check their ranges themselves, with no native call (shown by
// counting the calls into the addon's Mapping class); without a view (zeroCopy: false, read-only,
// Electron) they call the native copy. Both paths must give the same bytes and the same errors.
import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ShmError } from '../dist/index.js'
import { native } from '../dist/src/binding.js'
import { dispose, noLeaks } from './helpers.mjs'

noLeaks(test)

/**
 * Counts the calls into the native Mapping class while `fn` runs: every method and getter of its
 * prototype is wrapped for that time.
 */
function nativeCalls(fn) {
  const proto = native.Mapping.prototype
  const saved = Object.getOwnPropertyNames(proto)
    .filter((k) => k !== 'constructor')
    .map((k) => [k, Object.getOwnPropertyDescriptor(proto, k)])
  const calls = []
  for (const [k, d] of saved) {
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
    for (const [k, d] of saved) Object.defineProperty(proto, k, d)
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
  t.deepEqual(copyCalls, ['write', 'readInto'])
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

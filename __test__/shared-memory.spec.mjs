// The SharedMemory API in one process: creation rules, the copy API, the
// zero-copy buffer, stat/set, removal, detach, errors and argument checks.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { constants } from 'node:os'

import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ShmError, ftok, limits, listSegments } from '../dist/index.js'
import { dispose, noLeaks, uniqueKey } from './helpers.mjs'

noLeaks(test)

test('create(IPC_PRIVATE) makes a new segment of the asked size, mode 0600, attached once', (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 10)
  t.teardown(() => dispose(shm))
  t.is(shm.key, 0)
  t.is(shm.size, 10)
  t.true(shm.id >= 0)
  t.true(shm.created)
  t.true(shm.attached)
  t.false(shm.readOnly)
  t.true(shm.zeroCopy)
  const st = shm.stat()
  t.is(st.id, shm.id)
  t.is(st.size, 10)
  t.is(st.mode, 0o600)
  t.is(st.attachCount, 1)
  t.is(st.creatorPid, process.pid)
  t.is(st.lastPid, process.pid)
  t.is(st.uid, process.getuid())
  t.is(st.cuid, process.getuid())
  t.false(st.removed)
  t.false(st.locked)
  t.true(st.attachTime instanceof Date)
  t.is(st.detachTime, null)
  t.true(st.changeTime instanceof Date)
})

/** The length of this process's mapping of segment `id`, from /proc/self/maps. */
function mappedLength(id) {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const [range, , , , inode, path] = line.trim().split(/\s+/)
    if (path?.startsWith('/SYSV') && Number(inode) === id) {
      const [start, end] = range.split('-').map((h) => BigInt('0x' + h))
      return Number(end - start)
    }
  }
  return 0
}

test('memory is taken in whole pages: the mapping is page-rounded, size stays as asked', (t) => {
  const page = limits().pageSize
  t.is(page, 4096)
  for (const [asked, mapped] of [[10, page], [page, page], [page + 1, 2 * page]]) {
    const shm = SharedMemory.create(IPC_PRIVATE, asked)
    t.is(shm.size, asked)
    t.is(shm.stat().size, asked)
    t.is(shm.buffer.length, asked)
    t.is(mappedLength(shm.id), mapped)
    t.throws(() => shm.write(Buffer.alloc(asked + 1)), { instanceOf: RangeError })
    dispose(shm)
    t.is(mappedLength(shm.id), 0)
  }
})

test('a new segment reads as zeros; write/read round-trip strings and bytes at offsets', (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 8192)
  t.teardown(() => dispose(shm))
  t.deepEqual(shm.read(), Buffer.alloc(8192))
  t.is(shm.write('héllo'), 6)
  t.is(shm.read(0, 6).toString('utf8'), 'héllo')
  t.is(shm.write(new Uint8Array([1, 2, 3]), 4094), 3)
  t.deepEqual([...shm.read(4094, 3)], [1, 2, 3])
  t.is(shm.write(new Uint16Array([0x0201]), 100), 2)
  t.deepEqual([...shm.read(100, 2)], [1, 2])
  t.is(shm.write(new DataView(new ArrayBuffer(4)), 200), 4)
  t.is(shm.write(new Uint8Array([9]).buffer, 8191), 1)
  t.is(shm.read(8191)[0], 9)
  t.is(shm.read(8192).length, 0)
})

test('readInto copies as many bytes as fit and returns the count', (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 16)
  t.teardown(() => dispose(shm))
  shm.write('0123456789abcdef')
  const small = Buffer.alloc(4)
  t.is(shm.readInto(small, 2), 4)
  t.is(small.toString(), '2345')
  const big = Buffer.alloc(32)
  t.is(shm.readInto(big, 10), 6)
  t.is(big.subarray(0, 6).toString(), 'abcdef')
  const u32 = new Uint32Array(2)
  t.is(shm.readInto(u32), 8)
  t.is(Buffer.from(u32.buffer).toString(), '01234567')
  // The target may be the segment's own buffer (overlapping copy).
  t.is(shm.readInto(shm.buffer.subarray(4), 0), 12)
  t.is(shm.read().toString(), '01230123456789ab')
})

test('buffer is zero-copy and the same object on every access', (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => dispose(shm))
  t.is(shm.buffer, shm.buffer)
  t.true(Buffer.isBuffer(shm.buffer))
  shm.buffer.write('via buffer')
  t.is(shm.read(0, 10).toString(), 'via buffer')
  shm.write('via write!')
  t.is(shm.buffer.toString('utf8', 0, 10), 'via write!')
  const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 16)
  Atomics.store(i32, 3, 42)
  t.is(shm.read(12, 4).readInt32LE(), 42)
})

test('create is exclusive by default: EEXIST on an existing key; exclusive:false opens it', (t) => {
  const key = uniqueKey()
  const a = SharedMemory.create(key, 4096)
  t.teardown(() => dispose(a))
  t.is(a.key, key)
  const err = t.throws(() => SharedMemory.create(key, 4096), { instanceOf: ShmError })
  t.is(err.code, 'EEXIST')
  t.is(err.errno, constants.errno.EEXIST)
  t.is(err.syscall, 'shmget')
  t.regex(err.message, new RegExp(`0x${key.toString(16).padStart(8, '0')}`))
  t.regex(err.message, /size 4096/)
  const b = SharedMemory.create(key, 100, { exclusive: false })
  t.teardown(() => b.detach())
  t.false(b.created)
  t.is(b.id, a.id)
  t.is(b.size, 4096)
  // Asking for more than the existing segment holds is EINVAL.
  t.is(t.throws(() => SharedMemory.create(key, 8192, { exclusive: false })).code, 'EINVAL')
})

test('open(key) attaches an existing segment and fails with ENOENT for a missing one', (t) => {
  const key = uniqueKey()
  const err = t.throws(() => SharedMemory.open(key), { instanceOf: ShmError })
  t.is(err.code, 'ENOENT')
  t.is(err.syscall, 'shmget')
  const a = SharedMemory.create(key, 100)
  t.teardown(() => dispose(a))
  a.write('shared')
  const b = SharedMemory.open(key)
  t.teardown(() => b.detach())
  t.is(b.id, a.id)
  t.is(b.key, key)
  t.is(b.size, 100)
  t.false(b.created)
  t.is(b.read(0, 6).toString(), 'shared')
  b.write('SHARED')
  t.is(a.buffer.toString('utf8', 0, 6), 'SHARED')
  t.is(a.stat().attachCount, 2)
})

test('keys are 32-bit: a key above 2^31 is accepted and reported unsigned, as ipcs prints it', (t) => {
  const key = (0xd3000000 | (process.pid & 0xffffff)) >>> 0
  const a = SharedMemory.create(key, 64)
  t.teardown(() => dispose(a))
  t.is(a.key, key)
  t.is(a.stat().key, key)
  const b = SharedMemory.open(key | 0) // the same key as a signed int32
  t.teardown(() => b.detach())
  t.is(b.id, a.id)
  t.is(b.key, key)
})

test('openById attaches by shmid, also an IPC_PRIVATE segment', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 32)
  t.teardown(() => dispose(a))
  a.write('by id')
  const b = SharedMemory.openById(a.id)
  t.teardown(() => b.detach())
  t.is(b.read(0, 5).toString(), 'by id')
  t.is(b.key, 0)
  t.is(t.throws(() => SharedMemory.openById(0x7ffffff0), { instanceOf: ShmError }).code, 'EINVAL')
})

test('read-only attachment: reads work, write and buffer throw ERR_SHM_READ_ONLY', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 32)
  t.teardown(() => dispose(a))
  a.write('ro')
  const ro = SharedMemory.openById(a.id, { readOnly: true })
  t.teardown(() => ro.detach())
  t.true(ro.readOnly)
  t.false(ro.zeroCopy)
  t.is(ro.read(0, 2).toString(), 'ro')
  const buf = Buffer.alloc(2)
  t.is(ro.readInto(buf), 2)
  t.is(t.throws(() => ro.write('x'), { instanceOf: ShmError }).code, 'ERR_SHM_READ_ONLY')
  t.is(t.throws(() => ro.buffer, { instanceOf: ShmError }).code, 'ERR_SHM_READ_ONLY')
  a.write('RO')
  t.is(ro.read(0, 2).toString(), 'RO')
})

test('zeroCopy:false: buffer throws ERR_SHM_NO_ZERO_COPY, the copy API works', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 32, { zeroCopy: false })
  t.teardown(() => dispose(a))
  t.false(a.zeroCopy)
  t.is(t.throws(() => a.buffer, { instanceOf: ShmError }).code, 'ERR_SHM_NO_ZERO_COPY')
  a.write('copy mode')
  t.is(a.read(0, 9).toString(), 'copy mode')
})

test('remove() while attached only marks the segment: key reads 0, open(key) is ENOENT, data stays usable', (t) => {
  const key = uniqueKey()
  const a = SharedMemory.create(key, 64)
  const b = SharedMemory.open(key)
  t.teardown(() => b.detach())
  a.write('still here')
  a.remove()
  const st = b.stat()
  t.true(st.removed)
  t.is(st.key, 0)
  t.is(st.attachCount, 2)
  t.is(t.throws(() => SharedMemory.open(key), { instanceOf: ShmError }).code, 'ENOENT')
  t.is(b.read(0, 10).toString(), 'still here')
  b.write('and usable')
  t.is(a.read(0, 10).toString(), 'and usable')
  // The key is free again for a new segment.
  const c = SharedMemory.create(key, 64)
  t.not(c.id, a.id)
  c.remove()
  c.detach()
  a.detach()
  t.is(SharedMemory.statById(b.id).attachCount, 1)
  b.detach()
  // The last detach freed it: the id is gone.
  t.false(listSegments().some((s) => s.id === a.id))
  t.is(t.throws(() => SharedMemory.statById(a.id), { instanceOf: ShmError }).syscall, 'shmctl')
})

test('detach() is idempotent, empties the buffer and its views, and later calls throw ERR_SHM_DETACHED', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 64)
  const id = a.id
  t.teardown(() => SharedMemory.removeById(id))
  const buf = a.buffer
  const view = new Float64Array(buf.buffer, buf.byteOffset, 8)
  const sub = buf.subarray(8, 16)
  view[0] = 1.5
  t.is(SharedMemory.statById(id).attachCount, 1)
  a.detach()
  a.detach()
  t.false(a.attached)
  t.false(a.zeroCopy)
  t.is(SharedMemory.statById(id).attachCount, 0)
  t.is(buf.length, 0)
  t.is(view.length, 0)
  t.is(sub.length, 0)
  t.is(view[0], undefined)
  for (const f of [() => a.buffer, () => a.read(), () => a.write('x'), () => a.readInto(Buffer.alloc(1)), () => a.stat(), () => a.remove(), () => a.set({ mode: 0o600 }), () => a.lock()]) {
    const err = t.throws(f, { instanceOf: ShmError })
    t.is(err.code, 'ERR_SHM_DETACHED')
  }
})

test('using: Symbol.dispose detaches at the end of the scope', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => dispose(a))
  {
    const b = SharedMemory.openById(a.id)
    t.is(a.stat().attachCount, 2)
    b[Symbol.dispose]()
    t.false(b.attached)
  }
  t.is(a.stat().attachCount, 1)
})

test('set() changes the mode (IPC_SET); stat() shows it', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 64, { mode: 0o640 })
  t.teardown(() => dispose(a))
  t.is(a.stat().mode, 0o640)
  a.set({ mode: 0o604 })
  t.is(a.stat().mode, 0o604)
  a.set({ uid: 65534, gid: 65534 })
  const st = a.stat()
  t.is(st.uid, 65534)
  t.is(st.gid, 65534)
  t.is(st.cuid, 0)
})

test('lock()/unlock() set and clear SHM_LOCKED', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(a))
  a.lock()
  t.true(a.stat().locked)
  a.unlock()
  t.false(a.stat().locked)
})

test('listSegments() shows our segment with the same fields as stat()', (t) => {
  const key = uniqueKey()
  const a = SharedMemory.create(key, 1234, { mode: 0o640 })
  t.teardown(() => dispose(a))
  const found = listSegments().find((s) => s.id === a.id)
  t.truthy(found)
  t.deepEqual(found, a.stat())
  t.is(found.key, key)
  t.is(found.size, 1234)
  t.is(found.mode, 0o640)
  t.is(found.attachCount, 1)
})

test('limits() reads the kernel limits and usage', (t) => {
  const l = limits()
  for (const k of ['maxSegmentSize', 'minSegmentSize', 'maxSegments', 'maxSegmentsPerProcess', 'maxTotalPages', 'pageSize', 'usedSegments', 'usedPages', 'residentPages', 'swappedPages']) {
    t.is(typeof l[k], 'number', k)
  }
  t.is(l.minSegmentSize, 1)
  t.true(l.maxSegments >= 1)
  const a = SharedMemory.create(IPC_PRIVATE, 3 * 4096)
  t.teardown(() => dispose(a))
  t.true(limits().usedSegments >= 1)
  t.true(limits().usedPages >= 3)
})

test('ftok() gives the C ftok key: same inputs same key, other project id other key, ENOENT for a missing path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-'))
  t.teardown(() => rmSync(dir, { recursive: true }))
  const file = join(dir, 'key')
  writeFileSync(file, '')
  const k1 = ftok(file, 1)
  t.is(ftok(file, 1), k1)
  t.is(ftok(new URL(`file://${file}`), 1), k1)
  const k2 = ftok(file, 2)
  t.not(k1, k2)
  // ftok(3): the project id is the top byte.
  t.is(k1 >>> 24, 1)
  t.is(k2 >>> 24, 2)
  t.is((k1 & 0xffffff) >>> 0, (k2 & 0xffffff) >>> 0)
  const err = t.throws(() => ftok(join(dir, 'missing'), 1), { instanceOf: ShmError })
  t.is(err.code, 'ENOENT')
  t.is(err.syscall, 'ftok')
})

test('ShmError is an Error with name, code, errno and syscall', (t) => {
  const err = t.throws(() => SharedMemory.open(uniqueKey()))
  t.true(err instanceof Error)
  t.true(err instanceof ShmError)
  t.is(err.name, 'ShmError')
  t.is(err.code, 'ENOENT')
  t.is(err.errno, constants.errno.ENOENT)
  t.regex(String(err), /^ShmError: shmget failed \(open key 0x[0-9a-f]{8}\)/)
  t.truthy(err.stack)
})

test('failed shmget for a size above SHMMAX is EINVAL and names the size', (t) => {
  const size = Number.MAX_SAFE_INTEGER
  const err = t.throws(() => SharedMemory.create(IPC_PRIVATE, size), { instanceOf: ShmError })
  t.true(['EINVAL', 'ENOMEM', 'ENOSPC'].includes(err.code), err.code)
  t.regex(err.message, new RegExp(`size ${size}`))
})

// Argument checks: a clear TypeError/RangeError before any system call.
const badCalls = [
  ['create key NaN', () => SharedMemory.create(NaN, 1), RangeError],
  ['create key string', () => SharedMemory.create('1', 1), TypeError],
  ['create key 2^32', () => SharedMemory.create(2 ** 32, 1), RangeError],
  ['create key -2^31-1', () => SharedMemory.create(-(2 ** 31) - 1, 1), RangeError],
  ['create key 1.5', () => SharedMemory.create(1.5, 1), RangeError],
  ['create size 0', () => SharedMemory.create(IPC_PRIVATE, 0), RangeError],
  ['create size -1', () => SharedMemory.create(IPC_PRIVATE, -1), RangeError],
  ['create size 1.5', () => SharedMemory.create(IPC_PRIVATE, 1.5), RangeError],
  ['create size Infinity', () => SharedMemory.create(IPC_PRIVATE, Infinity), RangeError],
  ['create size 2^53', () => SharedMemory.create(IPC_PRIVATE, 2 ** 53), RangeError],
  ['create size bigint', () => SharedMemory.create(IPC_PRIVATE, 10n), TypeError],
  ['create size missing', () => SharedMemory.create(IPC_PRIVATE), TypeError],
  ['create mode 0o1000', () => SharedMemory.create(IPC_PRIVATE, 1, { mode: 0o1000 }), RangeError],
  ['create mode -1', () => SharedMemory.create(IPC_PRIVATE, 1, { mode: -1 }), RangeError],
  ['create mode string', () => SharedMemory.create(IPC_PRIVATE, 1, { mode: '600' }), TypeError],
  ['create exclusive string', () => SharedMemory.create(IPC_PRIVATE, 1, { exclusive: 'no' }), TypeError],
  ['create unknown option', () => SharedMemory.create(IPC_PRIVATE, 1, { mod: 0o600 }), TypeError],
  ['create options null', () => SharedMemory.create(IPC_PRIVATE, 1, null), TypeError],
  ['open IPC_PRIVATE', () => SharedMemory.open(IPC_PRIVATE), RangeError],
  ['open key undefined', () => SharedMemory.open(), TypeError],
  ['open option', () => SharedMemory.open(1, { mode: 1 }), TypeError],
  ['openById -1', () => SharedMemory.openById(-1), RangeError],
  ['openById 2^31', () => SharedMemory.openById(2 ** 31), RangeError],
  ['statById NaN', () => SharedMemory.statById(NaN), RangeError],
  ['removeById string', () => SharedMemory.removeById('1'), TypeError],
  ['ftok path number', () => ftok(1, 1), TypeError],
  ['ftok path empty', () => ftok('', 1), RangeError],
  ['ftok path NUL', () => ftok('/tmp\0x', 1), RangeError],
  ['ftok projId 0', () => ftok('/tmp', 0), RangeError],
  ['ftok projId 256', () => ftok('/tmp', 256), RangeError],
]
for (const [name, call, type] of badCalls) {
  test(`bad argument: ${name} -> ${type.name}`, (t) => {
    // Only this process's segments: other test files create theirs in parallel.
    const ours = () => listSegments().filter((s) => s.creatorPid === process.pid).length
    const before = ours()
    const err = t.throws(call, { instanceOf: type })
    t.truthy(err.code, 'has a Node-style code')
    t.regex(err.message, /"|IPC_PRIVATE|option/)
    t.is(ours(), before)
  })
}

test('bad arguments to methods: offsets, lengths, data types', (t) => {
  const a = SharedMemory.create(IPC_PRIVATE, 16)
  t.teardown(() => dispose(a))
  const cases = [
    [() => a.read(-1), RangeError],
    [() => a.read(17), RangeError],
    [() => a.read(0, 17), RangeError],
    [() => a.read(8, 9), RangeError],
    [() => a.read(0.5), RangeError],
    [() => a.read('0'), TypeError],
    [() => a.write(Buffer.alloc(17)), RangeError],
    [() => a.write(Buffer.alloc(2), 15), RangeError],
    [() => a.write('x', -1), RangeError],
    [() => a.write(42), TypeError],
    [() => a.write(null), TypeError],
    [() => a.write({}), TypeError],
    [() => a.readInto([]), TypeError],
    [() => a.readInto(Buffer.alloc(1), 17), RangeError],
    [() => a.set({ mode: 0o7777 }), RangeError],
    [() => a.set({ owner: 1 }), TypeError],
    [() => a.set(), TypeError],
  ]
  for (const [call, type] of cases) t.throws(call, { instanceOf: type })
  t.true(a.attached)
})

test('the package loads by name from CommonJS and ESM with the same exports', async (t) => {
  const { createRequire } = await import('node:module')
  const cjs = createRequire(import.meta.url)('sysv-shm')
  const esm = await import('sysv-shm')
  for (const name of ['SharedMemory', 'ShmError', 'ftok', 'listSegments', 'limits', 'IPC_PRIVATE']) {
    t.is(esm[name], cjs[name], name)
    t.not(cjs[name], undefined, name)
  }
  t.is(esm.SharedMemory, SharedMemory)
})

test('noReserve creates a normal segment; hugePages needs reserved huge pages (vm.nr_hugepages)', (t) => {
  const nr = SharedMemory.create(IPC_PRIVATE, 4096, { noReserve: true })
  t.teardown(() => dispose(nr))
  nr.write('no reserve')
  t.is(nr.read(0, 10).toString(), 'no reserve')
  const reserved = Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'))
  if (reserved === 0) {
    const err = t.throws(() => SharedMemory.create(IPC_PRIVATE, 2 << 20, { hugePages: true }), { instanceOf: ShmError })
    t.true(['ENOMEM', 'EPERM', 'EINVAL', 'ENOSPC'].includes(err.code), err.code)
    t.is(err.syscall, 'shmget')
  } else {
    const huge = SharedMemory.create(IPC_PRIVATE, 2 << 20, { hugePages: true })
    t.teardown(() => dispose(huge))
    huge.write('huge')
    t.is(huge.read(0, 4).toString(), 'huge')
  }
})

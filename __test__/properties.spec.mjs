// Property tests (fast-check) over every exported function, method and
// option: a bad value in any one parameter (negative, NaN, ±Infinity,
// fractional, 2^31, 2^32, 2^53, 2^53+2, bigint, strings, null, objects,
// arrays, symbols, functions, unknown option names…) gets a TypeError or
// RangeError with a Node-style code and a message that names the
// parameter, before any system call: no segment appears, no attachment is
// left, the process does not crash. `npm test` runs a few hundred cases per
// function; `npm run test:stress` (SYSV_SHM_STRESS=1) runs 10,000.
import fc from 'fast-check'
import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ShmError, ftok, limits, listSegments } from '../dist/index.js'
import {
  anything,
  bad,
  bool,
  checkBadCall,
  custom,
  int,
  isObject,
  options,
  runs,
  show,
} from './arbitraries.mjs'
import { dispose, noLeaks, uniqueKey } from './helpers.mjs'

const NUM_RUNS = runs(500)
const SIZE = 64

// The parameters of the API, as specs (see arbitraries.mjs).
const KEY = int('key', -(2 ** 31), 2 ** 32 - 1)
const OPEN_KEY = int('key', -(2 ** 31), 2 ** 32 - 1, { except: [0] })
const BYTES = int('size', 1, Number.MAX_SAFE_INTEGER)
const ID = int('id', 0, 2 ** 31 - 1)
const PROJ = int('projId', 1, 255)
const PARTIES = int('removeWhenUnused.parties', 1, 2 ** 31 - 1)
const REMOVE_WHEN_UNUSED = {
  name: 'removeWhenUnused',
  valid: (v) =>
    v === undefined ||
    typeof v === 'boolean' ||
    (isObject(v) && Object.keys(v).length === 1 && 'parties' in v && PARTIES.valid(v.parties)),
  error: (v) =>
    isObject(v) && Object.keys(v).every((k) => k === 'parties') && typeof v.parties === 'number'
      ? { type: RangeError, name: 'removeWhenUnused' }
      : { type: TypeError, name: 'removeWhenUnused' },
  badSample: fc.oneof(
    anything.map((parties) => ({ parties })),
    fc.constant({}),
    anything.map((x) => ({ parties: 1, extra: x })),
  ),
}
const opt = (spec) => ({ ...spec, valid: (v) => v === undefined || spec.valid(v) })
const OPEN_OPTIONS = options('options', {
  readOnly: bool('readOnly'),
  zeroCopy: bool('zeroCopy'),
  removeWhenUnused: REMOVE_WHEN_UNUSED,
})
const CREATE_OPTIONS = options('options', {
  mode: opt(int('mode', 0, 0o777)),
  exclusive: bool('exclusive'),
  hugePages: bool('hugePages'),
  noReserve: bool('noReserve'),
  readOnly: bool('readOnly'),
  zeroCopy: bool('zeroCopy'),
  removeWhenUnused: REMOVE_WHEN_UNUSED,
})
const SET_OPTIONS = options(
  'options',
  { uid: opt(int('uid', 0, 0xffff_fffe)), gid: opt(int('gid', 0, 0xffff_fffe)), mode: opt(int('mode', 0, 0o777)) },
  { required: true },
)
const PATH = custom(
  'path',
  (v) => (typeof v === 'string' && v.length > 0 && !v.includes('\0')) || (v instanceof URL && v.protocol === 'file:' && !v.host && !/%00|%2f/i.test(v.pathname)),
  undefined,
)
const nulUrl = (v) => v instanceof URL && v.protocol === 'file:' && !v.host && /%00/.test(v.pathname) && !/%2f/i.test(v.pathname)
PATH.error = (v) => ({ type: typeof v === 'string' || nulUrl(v) ? RangeError : TypeError, name: 'path' })
PATH.badSample = fc.oneof(
  fc.constantFrom('', '\0', '/tmp\0', new URL('http://example.com/x'), new URL('file://host/x'), new URL('file:///a%2fb'), new URL('file:///a%00b'), new URL('data:,x')),
  fc.tuple(fc.string(), fc.string()).map(([a, b]) => `${a}\0${b}`),
)
const VIEW = custom('target', (v) => ArrayBuffer.isView(v))
VIEW.badSample = fc.constantFrom(new ArrayBuffer(8), [1, 2], 'text', Buffer.alloc(4).buffer, new SharedArrayBuffer(4))
const DATA = custom(
  'data',
  (v) => typeof v === 'string' || ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof SharedArrayBuffer,
)
const offset = (max) => int('offset', 0, max, { optional: true })
const length = (max) => int('length', 0, max, { optional: true })

/** Ids of the segments this process created that exist now. */
const ours = () => listSegments().filter((s) => s.creatorPid === process.pid).map((s) => s.id).sort()

// Fixtures made once: a segment found by key, the handle whose methods are called, a read-only one.
let fixture, fixtureKey, readOnly, baseline
const PATTERN = Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 7 + 3) & 0xff))
// Hook order: the fixtures are made after noLeaks takes its snapshot and disposed before it checks.
test.after.always(() => dispose(readOnly, fixture))
noLeaks(test)
test.before(() => {
  fixtureKey = uniqueKey()
  fixture = SharedMemory.create(fixtureKey, SIZE)
  fixture.write(PATTERN)
  readOnly = SharedMemory.openById(fixture.id, { readOnly: true })
  baseline = ours()
})

/** The API surface: each function with its parameters and valid arguments for the others. */
const surface = [
  { fn: 'SharedMemory.create', params: [KEY, BYTES, CREATE_OPTIONS], base: () => [IPC_PRIVATE, SIZE, undefined], call: (a) => SharedMemory.create(...a) },
  { fn: 'SharedMemory.open', params: [OPEN_KEY, OPEN_OPTIONS], base: () => [fixtureKey, undefined], call: (a) => SharedMemory.open(...a) },
  { fn: 'SharedMemory.openById', params: [ID, OPEN_OPTIONS], base: () => [fixture.id, undefined], call: (a) => SharedMemory.openById(...a) },
  { fn: 'SharedMemory.statById', params: [ID], base: () => [fixture.id], call: (a) => SharedMemory.statById(...a) },
  { fn: 'SharedMemory.removeById', params: [ID], base: () => [fixture.id], call: (a) => SharedMemory.removeById(...a) },
  { fn: 'ftok', params: [PATH, PROJ], base: () => ['/', 1], call: (a) => ftok(...a) },
  { fn: 'shm.read', params: [offset(SIZE), length(SIZE)], base: () => [0, undefined], call: (a) => fixture.read(...a) },
  { fn: 'shm.readInto', params: [VIEW, offset(SIZE)], base: () => [Buffer.alloc(8), 0], call: (a) => fixture.readInto(...a) },
  { fn: 'shm.write', params: [DATA, offset(SIZE)], base: () => ['', 0], call: (a) => fixture.write(...a) },
  { fn: 'shm.set', params: [SET_OPTIONS], base: () => [{}], call: (a) => fixture.set(...a) },
]

/** Asserts that nothing was left: no new segment, the fixture attached twice (fixture, readOnly) and unchanged. */
function unchanged() {
  const now = ours()
  if (now.join() !== baseline.join()) return `segments changed: ${baseline} -> ${now}`
  const st = fixture.stat()
  if (st.attachCount !== 2) return `attach count ${st.attachCount}`
  if (st.mode !== 0o600 || st.uid !== st.cuid || st.gid !== st.cgid || st.removed) return `fixture changed: ${JSON.stringify(st)}`
  return null
}

for (const { fn, params, base, call } of surface) {
  test.serial(`${fn}: a bad value in any parameter is a TypeError/RangeError naming it; nothing is created or attached`, (t) => {
    const badArgs = fc.oneof(...params.map((spec, i) => bad(spec).map((v) => ({ i, v }))))
    t.notThrows(() =>
      fc.assert(
        fc.property(badArgs, ({ i, v }) => {
          const args = base()
          args[i] = v
          const wrong = checkBadCall(() => call(args), params[i], v) ?? unchanged()
          if (wrong) throw new Error(`${fn}(${args.map(show).join(', ')}): ${wrong}`)
        }),
        { numRuns: NUM_RUNS },
      ),
    )
    t.is(unchanged(), null)
    t.deepEqual(fixture.read(), PATTERN)
  })
}

// Ranges: any offset and length, in range or past the end.
const position = fc.oneof(fc.nat({ max: SIZE + 8 }), fc.constantFrom(SIZE, SIZE + 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER))

test.serial('read(offset, length): exactly the in-range reads succeed, with the right bytes; others are RangeErrors naming offset or length', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(position, fc.option(position, { nil: undefined }), (off, len) => {
        const fits = off <= SIZE && (len === undefined || len <= SIZE - off)
        try {
          const out = fixture.read(off, len)
          if (!fits) throw new Error(`read(${off}, ${len}) succeeded`)
          if (!out.equals(PATTERN.subarray(off, len === undefined ? SIZE : off + len))) throw new Error('wrong bytes')
        } catch (err) {
          if (fits || !(err instanceof RangeError)) throw err
          if (!/"(offset|length)"/.test(err.message)) throw new Error(`unclear: ${err.message}`)
        }
      }),
      { numRuns: NUM_RUNS },
    ),
  )
})

test.serial('write(data, offset): exactly the writes that fit succeed and change exactly their bytes; others change nothing', (t) => {
  const model = Buffer.from(PATTERN)
  t.teardown(() => fixture.write(PATTERN))
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: SIZE + 8 }), position, (data, off) => {
        const fits = off <= SIZE && data.length <= SIZE - off
        try {
          const n = fixture.write(data, off)
          if (!fits) throw new Error(`write of ${data.length} at ${off} succeeded`)
          if (n !== data.length) throw new Error(`returned ${n}`)
          model.set(data, off)
        } catch (err) {
          if (fits || !(err instanceof RangeError)) throw err
          if (!/"(offset|data)"/.test(err.message)) throw new Error(`unclear: ${err.message}`)
        }
        if (!fixture.read().equals(model)) throw new Error('the segment differs from the model')
      }),
      { numRuns: NUM_RUNS },
    ),
  )
})

test.serial('readInto(target, offset): copies min(target, rest) bytes for offsets in range, into any view type', (t) => {
  const views = [Uint8Array, Int8Array, Uint16Array, Int32Array, Float64Array, BigInt64Array, DataView]
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.constantFrom(...views), fc.nat({ max: 16 }), position, (View, n, off) => {
        const unit = View.BYTES_PER_ELEMENT ?? 1
        const target = new View(new ArrayBuffer(n * unit))
        try {
          const got = fixture.readInto(target, off)
          if (off > SIZE) throw new Error(`readInto at ${off} succeeded`)
          const want = Math.min(n * unit, SIZE - off)
          if (got !== want) throw new Error(`copied ${got}, want ${want}`)
          if (!Buffer.from(target.buffer, 0, got).equals(PATTERN.subarray(off, off + got))) throw new Error('wrong bytes')
        } catch (err) {
          if (off <= SIZE || !(err instanceof RangeError) || !err.message.includes('"offset"')) throw err
        }
      }),
      { numRuns: NUM_RUNS },
    ),
  )
})

test.serial('a read-only handle refuses every write (ERR_SHM_READ_ONLY) whatever the arguments, and never hands out a buffer', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(anything, anything, (data, off) => {
        try {
          readOnly.write(data, off)
        } catch (err) {
          if (err instanceof ShmError && err.code === 'ERR_SHM_READ_ONLY') return
          throw err
        }
        throw new Error('write succeeded on a read-only handle')
      }),
      { numRuns: NUM_RUNS },
    ),
  )
  t.is(t.throws(() => readOnly.buffer, { instanceOf: ShmError }).code, 'ERR_SHM_READ_ONLY')
  t.deepEqual(fixture.read(), PATTERN)
})

test.serial('a detached handle: every method with any arguments throws ERR_SHM_DETACHED; detach() stays idempotent', (t) => {
  const h = SharedMemory.openById(fixture.id)
  const buf = h.buffer
  h.detach()
  const methods = ['read', 'readInto', 'write', 'stat', 'set', 'lock', 'unlock', 'remove']
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.constantFrom(...methods), fc.array(anything, { maxLength: 3 }), (m, args) => {
        try {
          h[m](...args)
        } catch (err) {
          if (err instanceof ShmError && err.code === 'ERR_SHM_DETACHED') return
          throw err
        }
        throw new Error(`${m} succeeded after detach`)
      }),
      { numRuns: NUM_RUNS },
    ),
  )
  h.detach()
  t.is(buf.length, 0)
  t.is(unchanged(), null)
})

test.serial('listSegments() and limits() ignore any arguments', (t) => {
  t.notThrows(() =>
    fc.assert(
      fc.property(fc.array(anything, { maxLength: 3 }), (args) => {
        if (!listSegments(...args).some((s) => s.id === fixture.id)) throw new Error('fixture not listed')
        if (limits(...args).pageSize !== 4096) throw new Error('limits')
      }),
      { numRuns: Math.min(NUM_RUNS, 200) },
    ),
  )
})

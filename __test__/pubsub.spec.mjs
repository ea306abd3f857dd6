// Publisher/Subscriber across real processes (fixtures/pubsub-child.mjs), on the zero-copy view
// and on the copy path (zeroCopy: false: every word a native call), with self-checking
// messages (fixtures/pubsub-msgs.mjs): a torn or stale message fails the child.
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { IPC_PRIVATE, Publisher, SharedMemory, ShmError, Subscriber, topicKey } from '../dist/index.js'
import { Checksum, message } from './fixtures/pubsub-msgs.mjs'
import { runNode, until } from './fixtures/procs.mjs'
import { HANG_GUARD_MS, PKG, noLeaks, uniqueKey } from './helpers.mjs'

noLeaks(test)

const PATHS = [
  ['zero-copy', true],
  ['copy path', false],
]
// Header offsets (README, "Publish/subscribe", layout).
const HEAD = 32
const FLAGS = 28
const SLOTS = 8
let names = 0
/** A topic name unique to this file's process and call. */
const uniqueName = (what) => `pubsub-spec/${process.pid}/${what}/${names++}`

/** Removes the segment of `name`'s key if one is left (a failed test), then nothing else. */
function removeTopicOnTeardown(t, name) {
  t.teardown(() => {
    try {
      const shm = SharedMemory.open(topicKey(name))
      shm.remove()
      shm.detach()
    } catch {}
  })
}

/** A publisher closed (segment removed) when the test ends. */
function publisher(t, topic, options) {
  if (typeof topic === 'string') removeTopicOnTeardown(t, topic)
  const pub = Publisher.create(topic, options)
  t.teardown(() => pub.close())
  return pub
}

/** A subscriber closed when the test ends. */
function subscriber(t, topic, options) {
  const sub = typeof topic === 'number' && options?.byId ? Subscriber.openById(topic, { zeroCopy: options.zeroCopy }) : Subscriber.open(topic, options)
  t.teardown(() => sub.close())
  return sub
}

/** Starts a child; `lines()` is what it printed so far; killed when the test ends. */
function child(t, args) {
  let proc
  let text = ''
  const done = runNode('pubsub-child.mjs', args, {
    started: (c) => {
      proc = c
      c.stdout.on('data', (d) => (text += d))
    },
  })
  t.teardown(() => proc.kill('SIGKILL'))
  return { proc, done, lines: () => text.split('\n').filter(Boolean) }
}

const printed = (c, line) => until(() => c.lines().includes(line), `the child to print ${line}`)
const result = async (t, c) => {
  const r = await c.done
  t.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** The checksum of messages first..first+n-1, as the children compute it. */
function expected(first, n, maxLen) {
  const sum = new Checksum()
  for (let i = 0; i < n; i++) sum.add(message(first + i, maxLen))
  return sum.toString()
}

for (const [pathName, zeroCopy] of PATHS) {
  const path = zeroCopy ? '' : 'copy'

  // Block policy with 8 slots and 20,000 messages: the publisher must wait for the slowest of
  // three subscriber processes thousands of times. Checked: with the cursor check of the block
  // wait removed (#room returning true), the children see lagged messages and fail.
  test(`${pathName}: block policy, 1 publisher -> 3 subscriber processes get every message in order`, async (t) => {
    const name = uniqueName('block')
    const maxLen = 300
    const n = 20_000
    const pub = publisher(t, name, { capacity: 8, maxMessage: maxLen, policy: 'block', zeroCopy })
    const subs = [child(t, ['recv', name, maxLen, path]), child(t, ['recv', name, maxLen, path, 'async']), child(t, ['recv', name, maxLen, path])]
    await until(() => pub.subscriberCount === 3, 'the three subscribers to register')
    for (let i = 0; i < n; i++) {
      // The hang guard, not a timing assertion.
      if (!pub.publish(message(i, maxLen), { timeoutMs: HANG_GUARD_MS })) t.fail(`publish ${i} timed out`)
    }
    pub.close()
    const want = expected(0, n, maxLen)
    for (const c of subs) {
      const r = await result(t, c)
      t.is(r.count, n)
      t.is(r.missed, 0)
      t.is(r.checksum, want)
    }
  })

  // Overwrite policy, 4 slots, messages up to 4 KiB, a subscriber that sleeps 1 ms per message:
  // it falls behind over and over. Each message it gets must be whole (seq + hash), its sequence
  // the last one + 1 + lagged, and every message is either received or counted as missed.
  // Checked: without the re-check of stamp and length after the copy, the child reports torn
  // messages on the zero-copy path.
  test(`${pathName}: overwrite policy, a slow subscriber is told lagged and never gets a torn or stale message`, async (t) => {
    const name = uniqueName('overwrite')
    const maxLen = 4096
    const n = 5000
    const pub = publisher(t, name, { capacity: 4, maxMessage: maxLen, zeroCopy })
    const slow = child(t, ['slow', name, maxLen, path, 1])
    await until(() => pub.subscriberCount === 1, 'the subscriber to register')
    for (let i = 0; i < n; i++) t.true(pub.publish(message(i, maxLen)))
    pub.close()
    const r = await result(t, slow)
    t.true(r.missed > 0, 'it fell behind')
    t.true(r.lagEvents > 0)
    t.is(r.count + r.missed, n, 'every message received or counted as missed')
  })

  test(`${pathName}: latest() reads the newest message without moving the cursor`, async (t) => {
    const name = uniqueName('latest')
    const pub = publisher(t, name, { capacity: 2, maxMessage: 64, zeroCopy })
    const sub = subscriber(t, name, { zeroCopy })
    t.is(sub.latest(), null)
    pub.publish('one')
    pub.publish('two')
    pub.publish('three')
    t.is(String(sub.latest()), 'three')
    t.is(String(sub.latest()), 'three')
    // The cursor did not move: the subscriber lagged one (3 messages, 2 slots), then reads two and three.
    t.is(String(sub.tryReceive()), 'two')
    t.is(sub.lagged, 1)
    t.is(String(sub.tryReceive()), 'three')
    t.is(sub.tryReceive(), null)
    t.is(sub.sequence, 2)
  })

  test(`${pathName}: receiveAsync: timeout, abort signal (nothing consumed), then a message published later`, async (t) => {
    const name = uniqueName('async')
    const pub = publisher(t, name, { capacity: 4, maxMessage: 64, zeroCopy })
    const sub = subscriber(t, name, { zeroCopy })
    const t0 = performance.now()
    t.is(await sub.receiveAsync({ timeoutMs: 30 }), null)
    t.true(performance.now() - t0 >= 30)
    const ac = new AbortController()
    const p = sub.receiveAsync({ signal: ac.signal })
    ac.abort(new Error('stop'))
    const e = await t.throwsAsync(p, { name: 'AbortError' })
    t.is(e.code, 'ABORT_ERR')
    t.is(e.cause.message, 'stop')
    await t.throwsAsync(sub.receiveAsync({ signal: AbortSignal.abort() }), { name: 'AbortError' })
    // Nothing was consumed: a later message is the next one.
    const waiting = sub.receiveAsync()
    pub.publish('after')
    t.is(String(await waiting), 'after')
    t.is(sub.missed, 0)
  })

  test(`${pathName}: for await ends when the publisher closes; then receive is ERR_PUBSUB_CLOSED`, async (t) => {
    const name = uniqueName('close')
    const pub = publisher(t, name, { capacity: 8, maxMessage: 64, zeroCopy })
    const sub = subscriber(t, name, { zeroCopy })
    pub.publish('a')
    pub.publish('b')
    const got = []
    const loop = (async () => {
      for await (const m of sub) got.push(String(m))
    })()
    await until(() => got.length === 2, 'the loop to read two')
    pub.publish('c')
    await sleep(5)
    pub.close()
    await loop
    t.deepEqual(got, ['a', 'b', 'c'])
    t.is(t.throws(() => sub.receive(), { instanceOf: ShmError }).code, 'ERR_PUBSUB_CLOSED')
    t.is(t.throws(() => sub.tryReceive()).code, 'ERR_PUBSUB_CLOSED')
    await t.throwsAsync(sub.receiveAsync(), { code: 'ERR_PUBSUB_CLOSED' })
    t.is(t.throws(() => pub.publish('d')).code, 'ERR_PUBSUB_CLOSED')
    // The name is free at once: a new topic, while the old segment lives on for its subscribers.
    const next = publisher(t, name, { capacity: 2, maxMessage: 8, zeroCopy })
    t.not(next.id, pub.id)
    t.is(next.sequence, 0)
  })

  test(`${pathName}: loan() writes in place; receiveInto() copies into the caller's buffer`, (t) => {
    const name = uniqueName('loan')
    const pub = publisher(t, name, { capacity: 4, maxMessage: 16, zeroCopy })
    const sub = subscriber(t, name, { zeroCopy })
    t.true(pub.loan(5, (b) => b.write('hello')))
    t.throws(() => pub.loan(3, () => { throw new Error('no') }), { message: 'no' })
    const target = Buffer.alloc(16)
    t.is(sub.receiveInto(target), 5)
    t.is(target.subarray(0, 5).toString(), 'hello')
    t.is(sub.tryReceive(), null, 'a loan whose fill threw published nothing')
    t.is(t.throws(() => pub.loan(1, () => pub.publish('x'))).code, 'ERR_INVALID_STATE')
    t.is(sub.tryReceive(), null)
    pub.publish('0123456789')
    t.throws(() => sub.receiveInto(Buffer.alloc(4)), { instanceOf: RangeError })
    t.is(sub.receiveInto(target), 10, 'the message was not consumed by the failed receiveInto')
  })

  // Scribbled words: each must give ERR_PUBSUB_CORRUPT (never a RangeError from inside, never an
  // access outside the segment). Checked: with the length check (len > maxMessage) removed, the
  // length case throws a RangeError from Buffer.allocUnsafe/copy instead.
  test(`${pathName}: corrupt head, stamp, length, cursor, flags, TID and geometry are ERR_PUBSUB_CORRUPT`, (t) => {
    const name = uniqueName('corrupt')
    const pub = publisher(t, name, { capacity: 4, maxMessage: 16, policy: 'block', zeroCopy })
    const raw = SharedMemory.openById(pub.id)
    t.teardown(() => raw.detach())
    const u32 = new Uint32Array(raw.buffer.buffer, raw.buffer.byteOffset, raw.size / 4)
    const slotsAt = 256 + 16 * 64
    const slot = (s) => (slotsAt + (s & 3) * 24) / 4
    const corrupt = (f, what) => t.is(t.throws(f, { instanceOf: ShmError }, what).code, 'ERR_PUBSUB_CORRUPT', what)
    const sub = subscriber(t, name, { zeroCopy })
    pub.publish('x')
    pub.publish('y')

    // A length above maxMessage (not WRITING).
    const len = u32[slot(0) + 1]
    u32[slot(0) + 1] = 1 << 30
    corrupt(() => sub.tryReceive(), 'length')
    u32[slot(0) + 1] = len
    // A stamp that is not the message the head says is there.
    u32[slot(0)] = 77
    corrupt(() => sub.tryReceive(), 'stamp')
    u32[slot(0)] = 0
    t.is(String(sub.tryReceive()), 'x')
    // A head behind the cursor (the subscriber read 1), and a head the publisher did not write.
    u32[HEAD / 4] = 0
    corrupt(() => sub.tryReceive(), 'head behind the cursor')
    corrupt(() => pub.publish('z'), 'head not the publisher sequence')
    u32[HEAD / 4] = 2
    // A cursor ahead of the head: the block publisher checks the cursors once it needs room.
    for (let i = 0; i < 2; i++) pub.publish('w')
    const entry = 256 / 4
    const cursor = u32[entry + 2]
    u32[entry + 2] = 1000
    corrupt(() => pub.publish('v', { timeoutMs: 0 }), 'cursor ahead of the head')
    u32[entry + 2] = cursor
    // An owner TID above PID_MAX_LIMIT.
    const tid = u32[entry]
    u32[entry] = 0x7fffffff
    corrupt(() => pub.subscriberCount, 'entry TID')
    u32[entry] = tid
    // Flags with a bit other than closed.
    while (sub.tryReceive() !== null);
    u32[FLAGS / 4] = 6
    corrupt(() => sub.tryReceive(), 'flags')
    u32[FLAGS / 4] = 0
    // Geometry, read at open: not a power of two; larger than the segment.
    u32[SLOTS / 4] = 3
    corrupt(() => Subscriber.openById(pub.id, { zeroCopy }), 'slots')
    u32[SLOTS / 4] = 1 << 16
    corrupt(() => Subscriber.openById(pub.id, { zeroCopy }), 'geometry larger than the segment')
    u32[SLOTS / 4] = 4
    u32[16 / 4] = 17 // maxMessage no longer matches slotSize
    corrupt(() => Subscriber.open(name, { zeroCopy }), 'maxMessage')
    u32[16 / 4] = 16
    // Repaired: it works on.
    pub.publish('ok')
    t.is(String(sub.tryReceive()), 'ok')
  })
}

// The block publisher waits for a registered subscriber that does not read; once that process
// is killed, the publisher finds it dead, reclaims its entry and goes on. Checked: with
// reclaimIfDead returning false, the publishes after the kill time out.
test('block policy: a subscriber killed with SIGKILL is reclaimed and the publisher goes on', async (t) => {
  const name = uniqueName('reclaim')
  const maxLen = 64
  const pub = publisher(t, name, { capacity: 4, maxMessage: maxLen, policy: 'block', maxSubscribers: 2 })
  const stuck = child(t, ['hold', name, maxLen])
  const reader = child(t, ['recv', name, maxLen])
  await until(() => pub.subscriberCount === 2, 'both subscribers to register')
  t.is(t.throws(() => Subscriber.open(name), { instanceOf: ShmError }).code, 'EAGAIN', 'the table is full')
  for (let i = 0; i < 4; i++) t.true(pub.publish(message(i, maxLen)))
  t.false(pub.publish(message(4, maxLen), { timeoutMs: 50 }), 'it waits for the subscriber that does not read')
  stuck.proc.kill('SIGKILL')
  await stuck.done
  for (let i = 4; i < 100; i++) t.true(pub.publish(message(i, maxLen), { timeoutMs: HANG_GUARD_MS }))
  t.is(pub.subscriberCount, 1)
  pub.close()
  const r = await result(t, reader)
  t.is(r.count, 100)
  t.is(r.checksum, expected(0, 100, maxLen))
})

test('overwrite policy: open reclaims the entry of a dead subscriber when the table is full', async (t) => {
  const name = uniqueName('reclaim-open')
  publisher(t, name, { capacity: 4, maxMessage: 64, maxSubscribers: 1 })
  const stuck = child(t, ['hold', name, 64])
  await printed(stuck, 'ready')
  t.is(t.throws(() => Subscriber.open(name)).code, 'EAGAIN')
  stuck.proc.kill('SIGKILL')
  await stuck.done
  const sub = subscriber(t, name)
  t.true(sub.registered)
  const unregistered = subscriber(t, name, { register: false })
  t.false(unregistered.registered)
})

// The publisher process is killed; a new Publisher.create of the same name takes the topic
// over (its sequence goes on) and the subscriber process receives the messages of both, in order.
test('publisher killed: Publisher.create of the same name takes over, live subscribers keep receiving', async (t) => {
  const name = uniqueName('takeover')
  removeTopicOnTeardown(t, name)
  const maxLen = 128
  const options = { capacity: 16, maxMessage: maxLen, policy: 'block' }
  const first = child(t, ['publish', name, maxLen, '', 50, 16, 'block'])
  await printed(first, 'created')
  const reader = child(t, ['recv', name, maxLen])
  await printed(first, 'published')
  t.is(t.throws(() => Publisher.create(name, options), { instanceOf: ShmError }).code, 'EBUSY', 'its publisher is alive')
  first.proc.kill('SIGKILL')
  await first.done
  t.is(t.throws(() => Publisher.create(name, { ...options, capacity: 32 }), { instanceOf: ShmError }).code, 'EEXIST', 'another geometry')
  const pub = publisher(t, name, options)
  t.is(pub.sequence, 50)
  for (let i = 0; i < 50; i++) t.true(pub.publish(message(pub.sequence, maxLen), { timeoutMs: HANG_GUARD_MS }))
  pub.close()
  const r = await result(t, reader)
  t.is(r.first, 0)
  t.is(r.count, 100)
  t.is(r.checksum, expected(0, 100, maxLen))
})

// Two names with one key (found by search: FNV-1a of both prefixed names is 0 and -1, which map
// to key 1), and a foreign segment at a name's key: ERR_PUBSUB_NAME, and the segment is untouched.
test('name collision: another name or a foreign segment at the key is ERR_PUBSUB_NAME, left untouched', (t) => {
  t.is(topicKey('![^s%w'), 1)
  t.is(topicKey('!Stk:Y'), 1)
  t.is(topicKey('camera/frames'), 0xfbd5b753 | 0)
  const pub = publisher(t, '![^s%w', { capacity: 2, maxMessage: 8 })
  t.is(t.throws(() => Subscriber.open('!Stk:Y'), { instanceOf: ShmError }).code, 'ERR_PUBSUB_NAME')
  t.is(t.throws(() => Publisher.create('!Stk:Y', { capacity: 2, maxMessage: 8 })).code, 'ERR_PUBSUB_NAME')
  t.is(subscriber(t, '![^s%w', { register: false }).name, '![^s%w')
  pub.close()

  const name = uniqueName('foreign')
  const foreign = SharedMemory.create(topicKey(name), 4096)
  t.teardown(() => {
    foreign.remove()
    foreign.detach()
  })
  foreign.write(Buffer.from('not a topic, somebody else’s data'), 0)
  foreign.write(Buffer.alloc(64, 7), 200)
  const before = foreign.read()
  t.is(t.throws(() => Publisher.create(name, { capacity: 2, maxMessage: 8 }), { instanceOf: ShmError }).code, 'ERR_PUBSUB_NAME')
  t.is(t.throws(() => Subscriber.open(name), { instanceOf: ShmError }).code, 'ERR_PUBSUB_NAME')
  t.true(foreign.read().equals(before), 'the foreign segment is untouched')
  t.is(foreign.stat().attachCount, 1, 'nothing stays attached to it')
})

test('numeric key and IPC_PRIVATE/openById, subscribers in other processes', async (t) => {
  const maxLen = 64
  const key = uniqueKey()
  const byKey = publisher(t, key, { capacity: 4, maxMessage: maxLen, policy: 'block' })
  t.is(byKey.name, null)
  t.is(byKey.key, key)
  const priv = publisher(t, IPC_PRIVATE, { capacity: 4, maxMessage: maxLen, policy: 'block' })
  t.is(priv.key, 0)
  const readers = [child(t, ['recv', `key:${key}`, maxLen]), child(t, ['recv', `id:${priv.id}`, maxLen])]
  await until(() => byKey.subscriberCount === 1 && priv.subscriberCount === 1, 'the subscribers to register')
  for (let i = 0; i < 20; i++) {
    t.true(byKey.publish(message(i, maxLen), { timeoutMs: HANG_GUARD_MS }))
    t.true(priv.publish(message(i, maxLen), { timeoutMs: HANG_GUARD_MS }))
  }
  byKey.close()
  priv.close()
  for (const c of readers) t.is((await result(t, c)).checksum, expected(0, 20, maxLen))
  t.throws(() => Subscriber.open(IPC_PRIVATE), { instanceOf: RangeError })
})

test('publishAsync waits for room off the event loop; a signal cancels it', async (t) => {
  const name = uniqueName('publish-async')
  const pub = publisher(t, name, { capacity: 1, maxMessage: 8, policy: 'block' })
  const sub = subscriber(t, name)
  t.true(await pub.publishAsync('1'))
  t.false(await pub.publishAsync('2', { timeoutMs: 20 }))
  await t.throwsAsync(pub.publishAsync('2', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  const p = pub.publishAsync('2')
  t.is(String(await sub.receiveAsync()), '1')
  t.true(await p)
  t.is(String(sub.tryReceive()), '2')
  t.is(sub.missed, 0)
})

// Bad input is a TypeError/RangeError before any system call: no segment is made.
test('bad input: TypeError/RangeError before any system call, no segment left', async (t) => {
  const name = uniqueName('bad')
  const ok = { capacity: 4, maxMessage: 8 }
  const bad = [
    [() => Publisher.create({}, ok), TypeError],
    [() => Publisher.create('', ok), RangeError],
    [() => Publisher.create('a'.repeat(129), ok), RangeError],
    [() => Publisher.create('a\0b', ok), RangeError],
    [() => Publisher.create(2 ** 33, ok), RangeError],
    [() => Publisher.create(name), TypeError],
    [() => Publisher.create(name, { maxMessage: 8 }), TypeError],
    [() => Publisher.create(name, { ...ok, capacity: 0 }), RangeError],
    [() => Publisher.create(name, { ...ok, capacity: 65537 }), RangeError],
    [() => Publisher.create(name, { ...ok, capacity: 1.5 }), RangeError],
    [() => Publisher.create(name, { ...ok, maxMessage: 0 }), RangeError],
    [() => Publisher.create(name, { ...ok, maxMessage: 2 ** 32 }), RangeError],
    [() => Publisher.create(name, { ...ok, maxSubscribers: 4097 }), RangeError],
    [() => Publisher.create(name, { ...ok, policy: 'drop' }), RangeError],
    [() => Publisher.create(name, { ...ok, mode: 0o1000 }), RangeError],
    [() => Publisher.create(name, { ...ok, zeroCopy: 1 }), TypeError],
    [() => Publisher.create(name, { ...ok, extra: 1 }), TypeError],
    [() => Subscriber.open(name, { register: 'yes' }), TypeError],
    [() => Subscriber.open(Symbol('x')), TypeError],
    [() => Subscriber.openById(-1), RangeError],
    [() => topicKey(7), TypeError],
  ]
  for (const [f, type] of bad) t.throws(f, { instanceOf: type }, f.toString())
  t.is(t.throws(() => SharedMemory.open(topicKey(name))).code, 'ENOENT', 'no segment was made')
  const pub = publisher(t, name, ok)
  const sub = subscriber(t, name)
  t.throws(() => pub.publish('123456789'), { instanceOf: RangeError })
  t.throws(() => pub.publish(5), { instanceOf: TypeError })
  t.throws(() => pub.publish('x', { timeoutMs: -1 }), { instanceOf: RangeError })
  t.throws(() => pub.loan(9, () => {}), { instanceOf: RangeError })
  t.throws(() => pub.loan(1, 'f'), { instanceOf: TypeError })
  await t.throwsAsync(pub.publishAsync('x', { signal: 1 }), { instanceOf: TypeError })
  t.throws(() => sub.receive(-1), { instanceOf: RangeError })
  t.throws(() => sub.receiveInto('x'), { instanceOf: TypeError })
  await t.throwsAsync(sub.receiveAsync({ timeoutMs: NaN }), { instanceOf: RangeError })
  await t.throwsAsync(sub.receiveAsync({ other: 1 }), { instanceOf: TypeError })
  pub.close()
  sub.close()
  t.is(t.throws(() => SharedMemory.open(topicKey(name))).code, 'ENOENT', 'no segment left at the key')
})

// An entry whose TID is claimed but whose start time is not written yet is a subscriber still in
// its open(): the block policy does not wait for it, so subscriberCount does not count it either
// (it did, and "wait for subscriberCount, then publish" lost a joining subscriber's messages).
// Once the start time is there it is counted and waited for.
test('a joining entry (TID, no start time yet) is neither counted nor waited for; then it is both', (t) => {
  const pub = publisher(t, IPC_PRIVATE, { capacity: 1, maxMessage: 8, maxSubscribers: 2, policy: 'block' })
  const shm = SharedMemory.openById(pub.id)
  t.teardown(() => shm.detach())
  const ENTRY = 256
  shm.buffer.writeUInt32LE(process.pid, ENTRY) // the claim of an open() in progress
  t.is(pub.subscriberCount, 0)
  t.true(pub.publish('a', { timeoutMs: 0 }))
  t.true(pub.publish('b', { timeoutMs: 0 }))
  // The open writes its cursor (the head), then its start time (a live thread's: this one's).
  const sub = Subscriber.openById(pub.id, { register: false })
  t.teardown(() => sub.close())
  shm.buffer.writeUInt32LE(pub.sequence, ENTRY + 8)
  shm.buffer.writeUInt32LE(readStart(), ENTRY + 4)
  t.is(pub.subscriberCount, 1)
  t.true(pub.publish('c', { timeoutMs: 0 }))
  t.false(pub.publish('d', { timeoutMs: 20 }), 'the entry is waited for now')
  t.is(String(sub.tryReceive()), 'c')
})

/** This thread's start time as the layout stores it (field 22 of /proc/thread-self/stat, low 32 bits). */
function readStart() {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8')
  return Number(BigInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) & 0xffffffffn)
}

// Two publishAsync calls in a row under block with one slot: the first takes the room, the second
// waits for it (before, both passed the room check before either wrote, and the second
// overwrote the first unread message). A close while one waits rejects with ERR_PUBSUB_CLOSED.
test('block policy: concurrent publishAsync calls do not take the same room; close while waiting', async (t) => {
  const pub = publisher(t, IPC_PRIVATE, { capacity: 1, maxMessage: 8, policy: 'block' })
  const sub = Subscriber.openById(pub.id)
  t.teardown(() => sub.close())
  const [a, b] = await Promise.all([pub.publishAsync('a'), pub.publishAsync('b', { timeoutMs: 50 })])
  t.true(a)
  t.false(b, 'the one slot holds the unread a')
  t.is(String(sub.tryReceive()), 'a')
  t.is(sub.missed, 0)
  t.true(pub.publish('b'))
  // An aborted signal rejects and publishes nothing, also when there is room (overwrite or block).
  const room = publisher(t, IPC_PRIVATE, { capacity: 1, maxMessage: 8 })
  const roomSub = Subscriber.openById(room.id)
  t.teardown(() => roomSub.close())
  await t.throwsAsync(room.publishAsync('z', { signal: AbortSignal.abort('stop') }), { name: 'AbortError' })
  t.is(roomSub.tryReceive(), null)
  t.is(room.sequence, 0)
  const waiting = pub.publishAsync('c')
  await sleep(20)
  pub.close()
  await t.throwsAsync(waiting, { instanceOf: ShmError, code: 'ERR_PUBSUB_CLOSED' })
  t.is(String(sub.tryReceive()), 'b')
})

test('loan: close() inside fill is ERR_INVALID_STATE; a fill that throws leaves a one-slot topic without a whole message (latest() is null)', (t) => {
  const pub = publisher(t, IPC_PRIVATE, { capacity: 1, maxMessage: 8 })
  const sub = Subscriber.openById(pub.id)
  t.teardown(() => sub.close())
  t.true(pub.publish('x'))
  t.is(String(sub.latest()), 'x')
  t.is(t.throws(() => pub.loan(1, () => pub.close())).code, 'ERR_INVALID_STATE')
  t.false(pub.closed)
  t.throws(() => pub.loan(1, () => { throw new Error('fill failed') }), { message: 'fill failed' })
  t.is(sub.latest(), null, 'the only slot is marked as being written')
  t.true(pub.publish('y'))
  t.is(String(sub.latest()), 'y')
})

// A worker thread is a subscriber of its own (its TID, not the process's): it receives every
// message under block, and once it ends without close() its entry is a dead one the publisher
// reclaims.
test('a subscriber in a worker thread: every message under block; a worker that ends without close() is reclaimed', async (t) => {
  const pub = publisher(t, IPC_PRIVATE, { capacity: 4, maxMessage: 16, policy: 'block' })
  const N = 1000
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads')
     const { Subscriber } = require(workerData.pkg)
     const sub = Subscriber.openById(workerData.id)
     parentPort.postMessage('ready')
     let bad = 0
     for (let i = 0; i < workerData.n; i++) if (String(sub.receive()) !== 'm' + i) bad++
     parentPort.postMessage({ bad, missed: sub.missed })
     setInterval(() => {}, 1000) // lives, registered and not reading, until terminated`,
    { eval: true, workerData: { pkg: PKG, id: pub.id, n: N } },
  )
  t.teardown(() => w.terminate())
  const messages = []
  w.on('message', (m) => messages.push(m))
  await until(() => messages.length === 1, 'the worker to subscribe')
  t.is(pub.subscriberCount, 1)
  for (let i = 0; i < N; i++) t.true(pub.publish(`m${i}`, { timeoutMs: HANG_GUARD_MS }))
  await until(() => messages.length === 2, 'the worker to receive')
  t.deepEqual(messages[1], { bad: 0, missed: 0 })
  for (let i = 0; i < 4; i++) t.true(pub.publish('x', { timeoutMs: 0 }))
  t.false(pub.publish('x', { timeoutMs: 50 }), 'the worker is waited for while it lives')
  await w.terminate()
  t.true(pub.publish('x', { timeoutMs: HANG_GUARD_MS }), 'its entry is reclaimed once its thread ended')
  t.is(pub.subscriberCount, 0)
})

import { rm } from 'node:fs/promises'

import test from 'ava'

import { Channel, IPC_PRIVATE, SharedMemory, ShmError } from '../dist/index.js'
import { Checksum, message } from './fixtures/channel-msgs.mjs'
import { compileC, futexCallsOf, run, runNode, until } from './fixtures/procs.mjs'

// Removed at once: it lives while attached (children open it by id), and nothing is left behind
// even if the test is killed.
function channel(t, capacity, options) {
  const ch = Channel.create(IPC_PRIVATE, capacity, options)
  ch.remove()
  t.teardown(() => ch.detach())
  return ch
}

function expected(count, maxLen, seed) {
  const sum = new Checksum()
  for (let i = 0; i < count; i++) sum.add(message(i, maxLen, seed))
  return sum.toString()
}

let peer
test.before(() => {
  peer = compileC('channel-peer')
})
test.after.always(async () => {
  if (peer) await rm(peer, { force: true })
})

// A 1 KiB ring with messages up to 1016 bytes: the ring is full and wraps all the time.
for (const [mode, wait] of [
  ['recv', 'spin-then-park'],
  ['recvInto', 'park'],
  ['tryRecv', 'spin'],
  ['recvAsync', 'park'],
  ['iterate', 'park'],
]) {
  test(`sender and receiver processes agree on 3000 wrapping messages (receiver: ${mode}, ${wait})`, async (t) => {
    const ch = channel(t, 1024)
    t.is(ch.maxMessageSize, 1016)
    const [tx, rx] = await Promise.all([
      runNode('channel-child.mjs', ['send', ch.id, 3000, 1016, 7]),
      runNode('channel-child.mjs', ['recv', ch.id, mode, wait]),
    ])
    t.is(tx.code, 0, tx.stderr)
    t.is(rx.code, 0, rx.stderr)
    t.is(tx.stdout.trim(), expected(3000, 1016, 7))
    t.is(rx.stdout.trim(), tx.stdout.trim())
    t.is(ch.pendingBytes, 0)
  })
}

test('a message larger than the free space waits until the receiver makes room', async (t) => {
  const ch = channel(t, 4096)
  const big = message(5, 3000, 1) // lengthOf(5) is the maximum: 3000 bytes
  t.is(big.length, 3000)
  t.true(ch.trySend(big))
  t.false(ch.trySend(big), 'a second one does not fit in the 1088 free bytes')
  t.false(ch.send(big, 20), 'send times out while nobody reads')
  const rx = runNode('channel-child.mjs', ['recv', ch.id, 'recv'])
  t.true(ch.send(big), 'send blocks until the receiver frees room, then sends')
  ch.close()
  const r = await rx
  t.is(r.code, 0, r.stderr)
  const sum = new Checksum()
  sum.add(big)
  sum.add(big)
  t.is(r.stdout.trim(), sum.toString())
})

test('a full ring refuses trySend; empty messages take 8 bytes and arrive empty', (t) => {
  const ch = channel(t, 64)
  let n = 0
  while (ch.trySend(Buffer.alloc(0))) n++
  t.is(n, 8)
  t.is(ch.pendingBytes, 64)
  t.false(ch.trySend(''))
  t.deepEqual(ch.tryRecv(), Buffer.alloc(0))
  t.is(ch.tryRecvInto(Buffer.alloc(4)), 0)
  t.true(ch.trySend('abc'))
  t.is(ch.trySendMany([Buffer.from('de'), Buffer.from('f'), Buffer.from('g')]), 0, 'full: 6 empty messages and abc take 64 bytes')
  for (let k = 0; k < 6; k++) t.is(ch.recv(0)?.length, 0)
  t.is(ch.trySendMany([Buffer.from('de'), Buffer.from('fgh')]), 2)
  t.is(ch.recv()?.toString(), 'abc')
  t.is(ch.recv()?.toString(), 'de')
  t.is(ch.recv()?.toString(), 'fgh')
  t.is(ch.tryRecv(), null)
  t.is(ch.recv(5), null, 'recv times out on an empty ring')
  t.is(ch.recvInto(Buffer.alloc(8), 1), null)
})

test('a C program written from the documented layout receives from and sends to Node', async (t) => {
  const ch = channel(t, 2048)
  const [tx, rx] = await Promise.all([
    runNode('channel-child.mjs', ['send', ch.id, 5000, 2040, 3]),
    run(peer, ['recv', ch.id]),
  ])
  t.is(rx.code, 0, rx.stderr)
  t.is(rx.stdout.trim(), tx.stdout.trim())
  t.is(rx.stdout.trim(), expected(5000, 2040, 3))

  const back = channel(t, 2048)
  const [ctx, nrx] = await Promise.all([
    run(peer, ['send', back.id, 5000, 2040, 9]),
    runNode('channel-child.mjs', ['recv', back.id, 'recvInto', 'park']),
  ])
  t.is(ctx.code, 0, ctx.stderr)
  t.is(nrx.stdout.trim(), ctx.stdout.trim())
  t.is(nrx.stdout.trim(), expected(5000, 2040, 9))
})

test('recvInto with a small target throws and leaves the message in the channel', (t) => {
  const ch = channel(t, 256)
  ch.send('hello world')
  t.is(ch.nextMessageSize(), 11)
  const err = t.throws(() => ch.recvInto(Buffer.alloc(4)), { instanceOf: RangeError })
  t.is(err.code, 'ERR_BUFFER_TOO_SMALL')
  const target = Buffer.alloc(16)
  t.is(ch.recvInto(target), 11)
  t.is(target.subarray(0, 11).toString(), 'hello world')
  t.is(ch.nextMessageSize(), null)
})

test('recvAsync waits for another process without blocking the event loop, and an AbortSignal cancels it', async (t) => {
  const ch = channel(t, 4096)
  const ac = new AbortController()
  const p = ch.recvAsync({ signal: ac.signal })
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  await until(() => ticks >= 3, 'timers to run while recvAsync waits')
  clearInterval(timer)
  ac.abort()
  const err = await p.then(
    () => null,
    (e) => e,
  )
  t.is(err?.name, 'AbortError')

  const got = ch.recvAsync()
  const tx = await runNode('channel-child.mjs', ['send', ch.id, 3, 100, 1])
  t.is(tx.code, 0, tx.stderr)
  const first = await got
  t.deepEqual(first, message(0, 100, 1))
  const rest = []
  for await (const m of ch) rest.push(m)
  t.deepEqual(rest, [message(1, 100, 1), message(2, 100, 1)])
  t.is(await ch.recvAsync(), null, 'closed and empty')
})

test('close: sends throw, queued messages are still received, then null', (t) => {
  const ch = channel(t, 128)
  const other = Channel.openById(ch.id)
  t.teardown(() => other.detach())
  ch.send('last')
  ch.close()
  t.true(other.closed)
  t.throws(() => ch.send('more'), { instanceOf: ShmError, code: 'ERR_CHANNEL_CLOSED' })
  t.throws(() => other.trySend('more'), { instanceOf: ShmError, code: 'ERR_CHANNEL_CLOSED' })
  t.is(other.recv()?.toString(), 'last')
  t.is(other.recv(), null)
})

test('argument and state errors', async (t) => {
  const ch = channel(t, 64)
  t.throws(() => ch.send(Buffer.alloc(57)), { instanceOf: RangeError })
  t.throws(() => ch.send(42), { instanceOf: TypeError })
  t.throws(() => ch.recv(-1), { instanceOf: RangeError })
  t.throws(() => Channel.create(IPC_PRIVATE, 8), { instanceOf: RangeError })
  t.throws(() => ch.setWait({ wait: 'nap' }), { instanceOf: RangeError })
  t.throws(() => Channel.create(IPC_PRIVATE, 64, { colour: 1 }), { instanceOf: TypeError })
  t.throws(() => Channel.open(0), { instanceOf: RangeError })

  const plain = SharedMemory.create(IPC_PRIVATE, 4096)
  plain.remove()
  t.teardown(() => plain.detach())
  t.throws(() => Channel.openById(plain.id), { instanceOf: ShmError, code: 'ERR_SHM_NOT_A_CHANNEL' })

  const other = Channel.openById(ch.id)
  const pending = other.recvAsync()
  other.detach()
  await t.throwsAsync(pending, { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
  t.throws(() => other.send('x'), { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
  t.throws(() => other.recv(), { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
})

test('Channel.create with exclusive: false opens the existing channel of a key', (t) => {
  const key = 0x5c000000 + (process.pid & 0xffff) * 16 + 3
  const a = Channel.create(key, 256)
  t.teardown(() => {
    a.remove()
    a.detach()
  })
  t.true(a.created)
  const b = Channel.create(key, 256, { exclusive: false })
  t.false(b.created)
  const c = Channel.open(key)
  b.send('via b')
  t.is(c.recv()?.toString(), 'via b')
  b.detach()
  c.detach()
  t.throws(() => Channel.create(key, 256), { instanceOf: ShmError, code: 'EEXIST' })
})

test('recvMany takes a batch of messages packed back to back, across processes', async (t) => {
  const ch = channel(t, 8192)
  const tx = await runNode('channel-child.mjs', ['send', ch.id, 40, 100, 5])
  t.is(tx.code, 0, tx.stderr)
  const target = Buffer.alloc(1000)
  const lengths = new Uint32Array(16)
  const sum = new Checksum()
  let total = 0
  for (;;) {
    const n = ch.recvMany(target, lengths)
    if (n === null) break
    t.true(n >= 1 && n <= 16)
    let off = 0
    for (let k = 0; k < n; k++) {
      sum.add(target.subarray(off, off + lengths[k]))
      off += lengths[k]
    }
    t.true(off <= target.length)
    total += n
  }
  t.is(total, 40)
  t.is(sum.toString(), tx.stdout.trim())
  t.is(ch.tryRecvMany(target, lengths), null)
  t.throws(() => ch.recvMany(target, new Uint32Array(0)), { instanceOf: RangeError })
  t.throws(() => ch.recvMany(target, [1]), { instanceOf: TypeError })
})

test('recvMany throws when the first message does not fit and leaves it there', (t) => {
  const ch = channel(t, 256)
  ch.send(Buffer.alloc(50, 1))
  ch.send(Buffer.alloc(10, 2))
  const lengths = new Uint32Array(4)
  t.throws(() => ch.tryRecvMany(Buffer.alloc(20), lengths), { instanceOf: RangeError, code: 'ERR_BUFFER_TOO_SMALL' })
  const target = Buffer.alloc(55)
  t.is(ch.tryRecvMany(target, lengths), 1, 'the second does not fit after the first: it waits for the next call')
  t.is(lengths[0], 50)
  t.is(ch.tryRecvMany(target, lengths), 1)
  t.deepEqual(target.subarray(0, lengths[0]), Buffer.alloc(10, 2))
})

for (const [label, env] of [
  ['in place', undefined],
  ['through copies where zero-copy views are refused', { SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS: '1' }],
]) {
  test(`sendWith and recvWith move wrapping messages between processes ${label}`, async (t) => {
    const ch = channel(t, 1024)
    const [tx, rx] = await Promise.all([
      runNode('channel-child.mjs', ['send-with', ch.id, 3000, 1016, 11], { env }),
      runNode('channel-child.mjs', ['recv', ch.id, 'recvWith', 'park'], { env }),
    ])
    t.is(tx.code, 0, tx.stderr)
    t.is(rx.code, 0, rx.stderr)
    t.is(tx.stdout.trim(), expected(3000, 1016, 11))
    t.is(rx.stdout.trim(), tx.stdout.trim())
  })
}

test('sendWith of a wrapping message keeps to timeoutMs when another process takes the room meanwhile', (t) => {
  // A wrapping message is written into a scratch buffer and then sent as a copy; a peer that fills
  // the ring in between (here a second handle, from inside write) must not make it wait for ever.
  const ch = channel(t, 64)
  t.true(ch.trySend(Buffer.alloc(24)))
  t.not(ch.tryRecv(), null) // head = tail = 32: a 30-byte payload at 40 wraps
  const peer = Channel.openById(ch.id)
  t.teardown(() => peer.detach())
  let wrote = false
  const sent = ch.sendWith(
    30,
    (view) => {
      view.fill(7)
      t.true(peer.trySend(Buffer.alloc(56)), 'the peer fills the ring')
      wrote = true
    },
    50,
  )
  t.true(wrote)
  t.false(sent, 'timed out: no room')
  t.deepEqual(ch.tryRecv(), Buffer.alloc(56))
  t.is(ch.tryRecv(), null, 'nothing of the timed-out message was sent')
})

for (const [how, inner] of [
  ['send', (ch, m) => ch.send(m)],
  ['trySend', (ch, m) => ch.trySend(m)],
  ['sendWith', (ch, m) => ch.sendWith(m.length, (view) => m.copy(view))],
]) {
  test(`sendWith whose write calls ${how} on the same channel throws a RangeError; the message sent inside arrives intact`, async (t) => {
    // The send inside write takes the reserved room (it writes where the view is): the commit
    // must say so, not blame another process (ERR_CHANNEL_CORRUPT) or lose a message silently.
    const ch = channel(t, 4096)
    const m = Buffer.from('sent inside the write callback')
    t.throws(
      () =>
        ch.sendWith(5, (view) => {
          view.write('outer')
          t.true(inner(ch, m))
        }),
      { instanceOf: RangeError, code: 'ERR_INVALID_ARG_VALUE', message: /cancelled by a message sent/ },
    )
    t.true(ch.sendWith(4, (view) => view.write('next')), 'the handle sends again')
    ch.close()
    // Another process receives exactly these two (and nothing of the cancelled one).
    const rx = await runNode('channel-child.mjs', ['recv', ch.id, 'recv'])
    t.is(rx.code, 0, rx.stderr)
    const sum = new Checksum()
    sum.add(m)
    sum.add(Buffer.from('next'))
    t.is(rx.stdout.trim(), sum.toString())
    t.is(ch.pendingBytes, 0)
  })
}

test('sendWith writes in the shared ring itself; views die with detach', (t) => {
  const ch = channel(t, 4096)
  const rx = Channel.openById(ch.id)
  let seen
  t.true(ch.sendWith(5, (view) => {
    t.is(view.length, 5)
    view.write('hello')
    t.is(rx.nextMessageSize(), null, 'nothing is visible before write returns')
  }))
  t.true(rx.recvWith((view) => {
    seen = view
    t.is(view.toString(), 'hello')
  }))
  t.false(rx.recvWith(() => t.fail(), 0), 'empty: times out')
  rx.detach()
  t.is(seen.length, 0, 'a view kept past detach reads as empty instead of touching unmapped memory')
  t.throws(() => rx.recvWith(() => {}), { instanceOf: ShmError, code: 'ERR_SHM_DETACHED' })
  t.throws(() => ch.sendWith(5000, () => {}), { instanceOf: RangeError })
  t.throws(() => ch.sendWith(1, 'x'), { instanceOf: TypeError })
  t.true(ch.sendWith(0, () => {}))
  ch.close()
  t.throws(() => ch.sendWith(1, () => {}), { instanceOf: ShmError, code: 'ERR_CHANNEL_CLOSED' })
})

test('the sender makes no system call while the receiver is awake (strace)', async (t) => {
  // A ring that holds every message, so the sender never waits; a receiver that spins, so it
  // never sleeps: the sender must never need FUTEX_WAKE.
  const ch = channel(t, 4 << 20)
  const [tx, rx] = await Promise.all([
    futexCallsOf('channel-child.mjs', ['send', ch.id, 20_000, 100, 4]),
    runNode('channel-child.mjs', ['recv', ch.id, 'recvInto', 'spin']),
  ])
  t.is(tx.code, 0, tx.stderr)
  t.is(rx.stdout.trim(), tx.stdout.trim())
  t.is(rx.stdout.trim(), expected(20_000, 100, 4))
  // One wake per message would be 20 000; the runtime's own threads make a few hundred.
  t.true(tx.calls < 2000, `${tx.calls} futex calls for 20 000 messages`)
})

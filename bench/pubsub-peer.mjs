// One process of a publish/subscribe scenario of bench/pubsub.mjs:
//   node bench/pubsub-peer.mjs '{"impl":"pubsub","role":"pub","size":64,...}'
// The publisher prints {"id": N} once its topic exists; subscribers print {"value": N} at the end.
//
// impl 'pubsub' (rate): a Publisher (block policy, IPC_PRIVATE) waits for `subs` registered
//   subscribers, publishes `count` messages of `size` bytes (a u32 sequence stamp at 0), closes;
//   each Subscriber receiveInto()s until closed, checks every stamp, and reports its messages (or,
//   with `bytes`, bytes) per second from message `warm` on.
// impl 'channels' (rate): the same through one Channel per subscriber (`ids`): the sender sends
//   each message to every channel in turn.
// impl 'latency': one subscriber, one message at a time: the publisher writes process.hrtime (ns,
//   CLOCK_MONOTONIC) at byte 8, publishes, and waits on the topic's space cell until the
//   subscriber's cursor moved; the subscriber reports the median of (received - written) in ns.
import { Channel, IPC_PRIVATE, Publisher, SharedMemory, Subscriber } from '../dist/index.js'

const opts = JSON.parse(process.argv[2])
const { impl, role, size, count, warm } = opts
const say = (x) => process.stdout.write(JSON.stringify(x) + '\n')
const now = () => process.hrtime.bigint()
const secs = (t0) => Number(now() - t0) / 1e9
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// The layout's words this peer reads itself: the space cell, entry 0's cursor (latency), the
// entries' start times.
const SPACE = 40
const CURSOR0 = 256 + 8

/**
 * Waits until `subs` subscribers have joined: their entries' start times are written (after
 * their cursors). `subscriberCount` counts an entry from its claim on, before its subscriber has
 * read the head; publishing then could run ahead of that subscriber's first message.
 */
async function joined(id, subs) {
  const shm = SharedMemory.openById(id)
  const u32 = new Uint32Array(shm.buffer.buffer, shm.buffer.byteOffset, 64 + 4 * subs)
  while (Array.from({ length: subs }, (_, i) => Atomics.load(u32, 64 + 4 * i + 1)).filter((s) => s !== 0).length < subs) await sleep(1)
  shm.detach()
}

/** Receives `count` messages with `recvInto(target)`, checks each stamp, reports the rate. */
function receiveAll(recvInto) {
  const target = Buffer.alloc(size)
  let t0
  for (let i = 0; i < count; i++) {
    if (i === warm) t0 = now()
    const n = recvInto(target)
    if (n !== size || target.readUInt32LE(0) !== i >>> 0) throw new Error(`bad message ${i}: ${n} bytes, stamp ${target.readUInt32LE(0)}`)
  }
  const rate = (count - warm) / secs(t0)
  say({ value: opts.bytes ? rate * size : rate })
}

if (impl === 'pubsub' && role === 'pub') {
  const pub = Publisher.create(IPC_PRIVATE, { capacity: opts.capacity, maxMessage: size, maxSubscribers: opts.subs, policy: 'block' })
  say({ id: pub.id })
  await joined(pub.id, opts.subs)
  const msg = Buffer.alloc(size)
  for (let i = 0; i < count; i++) {
    msg.writeUInt32LE(i >>> 0, 0)
    pub.publish(msg)
  }
  pub.close()
} else if (impl === 'pubsub' && role === 'sub') {
  const sub = Subscriber.openById(opts.id)
  receiveAll((target) => sub.receiveInto(target))
  sub.close()
} else if (impl === 'channels' && role === 'pub') {
  const chs = opts.ids.map((id) => Channel.openById(id))
  const msg = Buffer.alloc(size)
  for (let i = 0; i < count; i++) {
    msg.writeUInt32LE(i >>> 0, 0)
    for (const ch of chs) ch.send(msg)
  }
  for (const ch of chs) ch.detach()
} else if (impl === 'channels' && role === 'sub') {
  const ch = Channel.openById(opts.id)
  receiveAll((target) => ch.recvInto(target))
  ch.detach()
} else if (impl === 'latency' && role === 'pub') {
  const pub = Publisher.create(IPC_PRIVATE, { capacity: 64, maxMessage: 64, maxSubscribers: 1, policy: 'block' })
  const shm = SharedMemory.openById(pub.id)
  const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 128)
  say({ id: pub.id })
  await joined(pub.id, 1)
  const msg = Buffer.alloc(64)
  for (let i = 0; i < count; i++) {
    msg.writeUInt32LE(i, 0)
    msg.writeBigUInt64LE(now(), 8)
    pub.publish(msg)
    for (;;) {
      const v = Atomics.load(i32, SPACE / 4)
      if (Atomics.load(i32, CURSOR0 / 4) === i + 1) break
      shm.wait(SPACE, v)
    }
  }
  shm.detach()
  pub.close()
} else if (impl === 'latency' && role === 'sub') {
  const sub = Subscriber.openById(opts.id)
  const target = Buffer.alloc(64)
  const lat = new Float64Array(count - warm)
  for (let i = 0; i < count; i++) {
    sub.receiveInto(target)
    const t1 = now()
    if (target.readUInt32LE(0) !== i) throw new Error(`bad message ${i}`)
    if (i >= warm) lat[i - warm] = Number(t1 - target.readBigUInt64LE(8))
  }
  lat.sort()
  say({ value: lat[lat.length >> 1] })
  sub.close()
} else {
  throw new Error(`unknown ${impl}/${role}`)
}

// Interop of publish/subscribe with C: fixtures/pubsub-peer.c follows the documented layout only
// (C11 atomics, FUTEX_WAIT/FUTEX_WAKE with the wait cell protocol, the FNV-1a topic key). Its
// publisher feeds C subscribers (registered and polling, block and overwrite); then Node and C
// exchange messages both ways. Every message is checked against channel-msgs.mjs's message(seq).
import { createInterface } from 'node:readline'

import test from 'ava'

import { Publisher, SharedMemory, Subscriber, topicKey } from '../dist/index.js'

import { Checksum, message } from './fixtures/channel-msgs.mjs'
import { compileC, run as runProc, until } from './fixtures/procs.mjs'
import { noLeaks, removeAll, run } from './interop/helpers.mjs'

noLeaks(test)

let PEER
test.before('compile the C peer with cc', () => {
  PEER = compileC('pubsub-peer')
})

let names = 0
/** A topic name no other test or run uses. */
const freshName = () => `test/${process.pid}/${++names}/${Date.now()}`

/**
 * Starts a C publisher (`pubsub-peer pub …`) and waits for its "ready ID KEY" line; the segment is
 * removed and the process killed when the test ends (procs.mjs kills it if this process exits).
 */
async function cPublisher(t, args) {
  let child
  const exited = start(['pub', ...args], { started: (c) => (child = c) })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const first = (await lines.next()).value ?? ''
  const m = first.match(/^ready (\d+) (-?\d+)$/)
  t.teardown(() => {
    child.kill('SIGKILL')
    if (m) removeAll([Number(m[1])])
  })
  if (!m) throw new Error(`the C publisher did not start: ${first} ${(await exited).stderr}`)
  return {
    id: Number(m[1]),
    key: Number(m[2]),
    /** Waits for the end: { code, signal, stderr, published: "COUNT HASH" }. */
    async done() {
      const r = await exited
      const last = (await lines.next()).value ?? ''
      return { ...r, published: last.replace(/^published /, '') }
    },
  }
}

/** Runs `pubsub-peer ARGS` (procs.mjs's run: killed if this process exits first). */
const start = (args, options) => runProc(PEER, args, options)

/**
 * Starts a C subscriber (`pubsub-peer sub …`); `ready` resolves once it is registered (it printed
 * "ready"), `done` with its parsed summary line when it ends.
 */
function startSubscriber(topic, count, maxMessage, seed, ...options) {
  let readyNow
  const ready = new Promise((resolve) => (readyNow = resolve))
  let out = ''
  let child
  const started = (c) =>
    (child = c).stdout.on('data', (d) => {
      out += d
      if (out.startsWith('ready\n')) readyNow()
    })
  const done = start(['sub', topic, count, maxMessage, seed, ...options], { started }).then(({ code, stdout, stderr }) => {
    readyNow()
    const m = stdout.match(/^received (\d+) lagged (\d+) bad (\d+) first (\d+) last (\d+) hash ([0-9a-f]+) closed (\d)$/m)
    if (code !== 0 || !m) throw new Error(`C subscriber failed (${code}): ${stdout} ${stderr}`)
    const [received, lagged, bad, first, last] = m.slice(1, 6).map(Number)
    return { received, lagged, bad, first, last, hash: m[6], closed: m[7] === '1', stdout }
  })
  return { ready, done, child }
}

/** Runs a C subscriber to its end: its parsed summary line. */
const cSubscriber = (...args) => startSubscriber(...args).done

/** The checksum of messages 0..count-1 as the publishers make them. */
function expectedHash(count, maxMessage, seed) {
  const sum = new Checksum()
  for (let i = 0; i < count; i++) sum.add(message(i, maxMessage, seed))
  return sum.toString()
}

test('topic keys: the C peer, topicKey() and FNV-1a 32-bit over "sysv-shm/topic:" + the UTF-8 name agree', async (t) => {
  const fnv = (name) => {
    let h = 0x811c9dc5
    for (const b of Buffer.from('sysv-shm/topic:' + name)) h = Math.imul(h ^ b, 0x01000193)
    return h === 0 || h === -1 ? 1 : h
  }
  for (const name of ['camera/frames', 'a', 'marché/prix', 'x'.repeat(128)]) {
    const c = Number((await run(PEER, ['key', name])).stdout)
    t.is(c, fnv(name), name)
    t.is(c >>> 0, topicKey(name) >>> 0, name)
  }
})

test.serial('C publisher, block policy, by name -> three C subscribers (one slow): every message, in order, none lagged', async (t) => {
  const [count, maxMessage, seed] = [20_000, 300, 11]
  const name = freshName()
  const pub = await cPublisher(t, [`name:${name}`, 8, maxMessage, 4, 'block', count, seed, 3])
  const subs = [
    cSubscriber(`name:${name}`, 0, maxMessage, seed),
    cSubscriber(`name:${name}`, 0, maxMessage, seed, 'delay=20'),
    cSubscriber(`key:${pub.key}`, 0, maxMessage, seed),
  ]
  const results = await Promise.all(subs)
  const end = await pub.done()
  t.is(end.code, 0, end.stderr)
  const want = expectedHash(count, maxMessage, seed)
  t.is(end.published, want)
  for (const r of results) {
    t.like(r, { received: count, lagged: 0, bad: 0, first: 0, last: count - 1, closed: true })
    t.is(`${r.received} ${r.hash}`, want)
  }
  t.throws(() => SharedMemory.statById(pub.id), { code: 'EINVAL' }, 'the publisher removed the topic')
})

test.serial('C publisher, overwrite policy -> a slow C subscriber lags (told how many) and a polling unregistered one; every message whole', async (t) => {
  const [count, maxMessage, seed] = [50_000, 200, 5]
  const name = freshName()
  const pub = await cPublisher(t, [`name:${name}`, 16, maxMessage, 4, 'overwrite', count, seed, 2])
  // The unregistered poller first (the publisher does not wait for it: it waits for the two others).
  const poller = startSubscriber(`id:${pub.id}`, 0, maxMessage, seed, 'noreg')
  await poller.ready
  const subs = [
    cSubscriber(`name:${name}`, 0, maxMessage, seed),
    cSubscriber(`name:${name}`, 0, maxMessage, seed, 'delay=200'),
  ]
  const results = await Promise.all([...subs, poller.done])
  const end = await pub.done()
  t.is(end.code, 0, end.stderr)
  for (const r of results) {
    t.is(r.bad, 0, 'every message received is the one of its sequence, whole')
    t.true(r.closed)
    t.is(r.last, count - 1, 'the last message is received')
    t.true(r.received >= 1)
  }
  // The registered ones start at sequence 0 (the publisher waited for them): received + lagged
  // accounts for every message.
  for (const r of results.slice(0, 2)) t.is(r.received + r.lagged, count)
  // 200 µs per message against a publisher that never waits: it falls behind (not a timing bound:
  // 50,000 messages into 16 slots; a subscriber keeping up would need 10 s of the publisher's sleep).
  t.true(results[1].lagged > 0, 'the slow subscriber lagged')
})

test.serial('a name whose key holds a topic of another name (or of none) is refused by the C subscriber', async (t) => {
  const name = freshName()
  // A topic made by numeric key at the name's key: the header holds no name.
  const key = Number((await run(PEER, ['key', name])).stdout)
  const pub = await cPublisher(t, [`key:${key}`, 4, 64, 4, 'overwrite', 0, 1, 1])
  const r = await run(PEER, ['sub', `name:${name}`, '1', '64', '1'])
  t.is(r.code, 4, r.stderr)
  t.regex(r.stderr, /another one/)
  // A subscriber by key is let in, ends when the publisher closes.
  const ok = await cSubscriber(`key:${key}`, 0, 64, 1)
  t.like(ok, { received: 0, closed: true })
  t.is((await pub.done()).code, 0)
})

// Node and C, both ways. PATHS: the Node side on its zero-copy view and on the copy path.
const PATHS = [
  ['zero-copy', true],
  ['copy path', false],
]

for (const [path, zeroCopy] of PATHS) {
  test.serial(`Node publisher (${path}), block policy -> two registered C subscribers and a polling one receive from Node`, async (t) => {
    const [count, maxMessage, seed] = [5_000, 500, 21]
    const name = freshName()
    const pub = Publisher.create(name, { capacity: 8, maxMessage, maxSubscribers: 4, policy: 'block', zeroCopy })
    t.teardown(() => pub.close())
    const poller = startSubscriber(`name:${name}`, 0, maxMessage, seed, 'noreg')
    const starts = [startSubscriber(`name:${name}`, 0, maxMessage, seed), startSubscriber(`key:${topicKey(name)}`, 0, maxMessage, seed, 'delay=50')]
    // "ready": registered, cursor and start time written. (subscriberCount counts an entry from
    // its claim on, before the subscriber has read the head: not enough to start publishing.)
    await Promise.all([poller, ...starts].map((s) => s.ready))
    t.is(pub.subscriberCount, 2)
    const subs = starts.map((s) => s.done)
    const sum = new Checksum()
    for (let i = 0; i < count; i++) {
      const m = message(i, maxMessage, seed)
      // Half of them through loan(): written in place on the zero-copy view.
      if (i % 2) t.true(pub.publish(m))
      else t.true(pub.loan(m.length, (b) => m.copy(b)))
      sum.add(m)
    }
    t.is(pub.sequence, count)
    pub.close()
    const [a, b, p] = await Promise.all([...subs, poller.done])
    for (const r of [a, b]) {
      t.like(r, { received: count, lagged: 0, bad: 0, first: 0, last: count - 1, closed: true })
      t.is(`${r.received} ${r.hash}`, sum.toString())
    }
    // The poller is not waited for: it may skip, but what it got is whole, and it saw the end.
    t.like(p, { bad: 0, closed: true, last: count - 1 })
    t.is(p.received + p.lagged, count)
  })

  test.serial(`C publisher, block policy -> Node subscribers (${path}): receive, receiveInto, for await; exact`, async (t) => {
    const [count, maxMessage, seed] = [5_000, 700, 33]
    const name = freshName()
    const pub = await cPublisher(t, [`name:${name}`, 4, maxMessage, 8, 'block', count, seed, 3])
    const subs = [0, 1, 2].map(() => Subscriber.open(name, { zeroCopy }))
    t.teardown(() => subs.forEach((s) => s.close()))
    t.like(subs[0], { name, capacity: 4, maxMessage, policy: 'block', id: pub.id })
    const got = [new Checksum(), new Checksum(), new Checksum()]
    const bad = [0, 0, 0]
    const seqs = [[], [], []]
    // Subscriber 0: receive() (blocks this thread: the C publisher runs on in its own process);
    // 1: receiveInto; 2: for await, interleaved one message each.
    const target = Buffer.alloc(maxMessage)
    const iter = subs[2][Symbol.asyncIterator]()
    for (let i = 0; i < count; i++) {
      const m0 = subs[0].receive()
      const n1 = subs[1].receiveInto(target)
      const m1 = target.subarray(0, n1)
      const { value: m2 } = await iter.next()
      for (const [k, m] of [m0, m1, m2].entries()) {
        if (!m.equals(message(i, maxMessage, seed))) bad[k]++
        got[k].add(m)
        seqs[k].push(subs[k].sequence)
        t.is(subs[k].lagged, 0)
      }
    }
    const end = await pub.done()
    t.is(end.code, 0, end.stderr)
    t.deepEqual(bad, [0, 0, 0])
    for (const g of got) t.is(g.toString(), end.published)
    for (const s of seqs) t.deepEqual(s, Array.from({ length: count }, (_, i) => i))
    // After the close and the last message: the end, as each call reports it.
    t.throws(() => subs[0].receive(), { code: 'ERR_PUBSUB_CLOSED' })
    t.throws(() => subs[1].receiveInto(target), { code: 'ERR_PUBSUB_CLOSED' })
    t.true((await iter.next()).done)
    for (const s of subs) t.is(s.missed, 0)
  })

  test.serial(`C publisher, overwrite policy -> a slow Node subscriber (${path}) is told what it missed; latest() is the newest`, async (t) => {
    const [count, maxMessage, seed] = [20_000, 100, 3]
    const name = freshName()
    const pub = await cPublisher(t, [`name:${name}`, 16, maxMessage, 4, 'overwrite', count, seed, 1])
    const sub = Subscriber.open(name, { zeroCopy })
    t.teardown(() => sub.close())
    let received = 0
    let lagged = 0
    let last = -1
    for (;;) {
      let m
      try {
        m = await sub.receiveAsync()
      } catch (e) {
        t.is(e.code, 'ERR_PUBSUB_CLOSED')
        break
      }
      const s = sub.sequence
      t.true(s > last, 'in order')
      t.is(sub.lagged, s - last - 1, 'lagged: exactly the sequences skipped')
      lagged += sub.lagged
      last = s
      received++
      if (!m.equals(message(s, maxMessage, seed))) t.fail(`message ${s} is not the one published`)
      // Slow: 1 ms per message against a publisher that never waits (20,000 messages into 16 slots).
      if (received % 16 === 1) await new Promise((r) => setTimeout(r, 1))
    }
    const end = await pub.done()
    t.is(end.code, 0, end.stderr)
    t.is(last, count - 1)
    t.is(received + lagged, count)
    t.is(sub.missed, lagged)
    t.true(lagged > 0)
    t.deepEqual(sub.latest(), message(count - 1, maxMessage, seed))
  })
}

test.serial('names are checked both ways: Node refuses a C topic made by key at the name\'s key, C refuses a Node topic of another name', async (t) => {
  const name = freshName()
  const pub = await cPublisher(t, [`key:${topicKey(name)}`, 4, 64, 4, 'overwrite', 0, 1, 1])
  t.throws(() => Subscriber.open(name), { code: 'ERR_PUBSUB_NAME' })
  t.throws(() => Publisher.create(name, { capacity: 4, maxMessage: 64 }), { code: 'ERR_PUBSUB_NAME' })
  // By key it is a topic like any other: a registered Node subscriber lets the C publisher go on.
  const sub = Subscriber.open(topicKey(name))
  t.teardown(() => sub.close())
  t.is(sub.name, null)
  t.is((await pub.done()).code, 0)
  t.throws(() => sub.receive(), { code: 'ERR_PUBSUB_CLOSED' })

  // A collision of two names, made by hand: the bytes of Node's topic A copied to B's key.
  const [a, b] = [freshName(), freshName()]
  const nodePub = Publisher.create(a, { capacity: 4, maxMessage: 64 })
  t.teardown(() => nodePub.close())
  const src = SharedMemory.openById(nodePub.id)
  const copy = SharedMemory.create(topicKey(b), src.size)
  t.teardown(() => {
    copy.remove()
    copy.detach()
    src.detach()
  })
  copy.write(src.read(0, src.size))
  const refused = await run(PEER, ['sub', `name:${b}`, '1', '64', '1'])
  t.is(refused.code, 4, refused.stderr)
  t.regex(refused.stderr, /another one/)
  t.throws(() => Subscriber.open(b), { code: 'ERR_PUBSUB_NAME', message: new RegExp(JSON.stringify(a).replace(/[/.]/g, '\\$&')) })
  // A's own name is let in by C (and registers: the publisher counts it).
  const c = startSubscriber(`name:${a}`, 0, 64, 1)
  await c.ready
  t.is(nodePub.subscriberCount, 1, 'the C subscriber registered')
  nodePub.close()
  t.like(await c.done, { received: 0, closed: true })
})

test.serial('block policy across languages: a Node publisher waits for a C subscriber, and reclaims its entry once it is SIGKILLed (TID + start time from /proc)', async (t) => {
  const name = freshName()
  const pub = Publisher.create(name, { capacity: 4, maxMessage: 64, maxSubscribers: 2, policy: 'block' })
  t.teardown(() => pub.close())
  // A C subscriber that sleeps 1000 s after its first message: it holds the publisher back.
  const slow = startSubscriber(`name:${name}`, 0, 64, 1, 'delay=1000000000', 'nocheck')
  const killed = slow.done.catch((e) => e) // it ends killed
  t.teardown(() => slow.child.kill('SIGKILL'))
  await slow.ready
  t.is(pub.subscriberCount, 1)
  const shm = SharedMemory.openById(pub.id)
  t.teardown(() => shm.detach())
  const cursor = () => shm.buffer.readUInt32LE(256 + 8) // entry 0: the C subscriber's
  t.true(pub.publish(message(0, 64, 1)))
  await until(() => cursor() === 1, 'the C subscriber to take message 0')
  for (let i = 1; i <= 4; i++) t.true(pub.publish(message(i, 64, 1)), `message ${i} fits: 4 slots past its cursor`)
  t.false(pub.publish(message(5, 64, 1), { timeoutMs: 200 }), 'the publisher waits for the live C subscriber')
  slow.child.kill('SIGKILL')
  await killed
  // Dead: the publisher finds it so (its TID is gone) and frees its entry.
  t.true(pub.publish(message(5, 64, 1), { timeoutMs: 60_000 }))
  t.is(pub.subscriberCount, 0)
})

test.serial('block policy across languages: a C publisher waits for a Node subscriber, and reclaims its entry once it is SIGKILLed', async (t) => {
  const name = freshName()
  const count = 50
  const pub = await cPublisher(t, [`name:${name}`, 4, 64, 2, 'block', count, 1, 1])
  // A Node subscriber that takes one message, says so, and sleeps: it holds the publisher back.
  const code = `import { Subscriber } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
    const sub = Subscriber.open(${JSON.stringify(name)})
    console.log('ready')
    sub.receive()
    console.log('took one')
    setInterval(() => {}, 1000)`
  let node
  let out = ''
  const ended = runProc(process.execPath, ['--input-type=module', '-e', code], {
    started: (c) => (node = c).stdout.on('data', (d) => (out += d)),
  })
  t.teardown(() => node.kill('SIGKILL'))
  await until(() => out.includes('took one'), 'the Node subscriber to take a message')
  // The C publisher is stuck at message 5 (4 slots past the cursor 1): it has not ended.
  const done = pub.done()
  const raced = await Promise.race([done, new Promise((r) => setTimeout(() => r('waiting'), 200))])
  t.is(raced, 'waiting')
  node.kill('SIGKILL')
  t.is((await ended).signal, 'SIGKILL')
  const end = await done
  t.is(end.code, 0, end.stderr)
  t.regex(end.published, new RegExp(`^${count} `), 'it published everything once the dead subscriber was reclaimed')
})

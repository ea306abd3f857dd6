// Interop of publish/subscribe with C: fixtures/pubsub-peer.c follows the documented layout only
// (C11 atomics, FUTEX_WAIT/FUTEX_WAKE with the wait cell protocol, the FNV-1a topic key). Its
// publisher feeds C subscribers (registered and polling, block and overwrite); then Node and C
// exchange messages both ways. Every message is checked against channel-msgs.mjs's message(seq).
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import test from 'ava'

import { SharedMemory } from '../dist/index.js'

import { Checksum, message } from './fixtures/channel-msgs.mjs'
import { ENV, noLeaks, removeAll, run } from './interop/helpers.mjs'

noLeaks(test)

const buildDir = mkdtempSync(join(tmpdir(), 'sysv-shm-pubsub-c-'))
chmodSync(buildDir, 0o755)
const PEER = join(buildDir, 'pubsub-peer')
const SOURCE = new URL('./fixtures/pubsub-peer.c', import.meta.url).pathname

test.before('compile the C peer with cc', () => {
  try {
    execFileSync('cc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', PEER, SOURCE], { stdio: 'pipe' })
  } catch (e) {
    throw new Error(`could not compile ${SOURCE} with cc (scripts/setup.sh installs gcc): ${e.stderr ?? e.message}`)
  }
})
test.after.always(() => rmSync(buildDir, { recursive: true, force: true }))

let names = 0
/** A topic name no other test or run uses. */
const freshName = () => `test/${process.pid}/${++names}/${Date.now()}`

/**
 * Starts a C publisher (`pubsub-peer pub …`) and waits for its "ready ID KEY" line; the segment is
 * removed and the process killed when the test ends.
 */
async function cPublisher(t, args) {
  const child = spawn(PEER, ['pub', ...args.map(String)], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const first = (await lines.next()).value ?? ''
  const m = first.match(/^ready (\d+) (-?\d+)$/)
  t.teardown(() => {
    child.kill('SIGKILL')
    if (m) removeAll([Number(m[1])])
  })
  if (!m) throw new Error(`the C publisher did not start: ${first} ${stderr}`)
  return {
    id: Number(m[1]),
    key: Number(m[2]),
    /** Waits for the end: { code, signal, stderr, published: "COUNT HASH" }. */
    async done() {
      const r = await exited
      const last = (await lines.next()).value ?? ''
      return { ...r, stderr, published: last.replace(/^published /, '') }
    },
  }
}

/**
 * Starts a C subscriber (`pubsub-peer sub …`); `ready` resolves once it is registered (it printed
 * "ready"), `done` with its parsed summary line when it ends.
 */
function startSubscriber(topic, count, maxMessage, seed, ...options) {
  const child = spawn(PEER, ['sub', topic, String(count), String(maxMessage), String(seed), ...options], {
    env: ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  let readyNow
  const ready = new Promise((resolve) => (readyNow = resolve))
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d
    if (stdout.startsWith('ready\n')) readyNow()
  })
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const done = new Promise((resolve) => child.on('close', resolve)).then((code) => {
    readyNow()
    const m = stdout.match(/^received (\d+) lagged (\d+) bad (\d+) first (\d+) last (\d+) hash ([0-9a-f]+) closed (\d)$/m)
    if (code !== 0 || !m) throw new Error(`C subscriber failed (${code}): ${stdout} ${stderr}`)
    const [received, lagged, bad, first, last] = m.slice(1, 6).map(Number)
    return { received, lagged, bad, first, last, hash: m[6], closed: m[7] === '1', stdout }
  })
  return { ready, done }
}

/** Runs a C subscriber to its end: its parsed summary line. */
const cSubscriber = (...args) => startSubscriber(...args).done

/** The checksum of messages 0..count-1 as the publishers make them. */
function expectedHash(count, maxMessage, seed) {
  const sum = new Checksum()
  for (let i = 0; i < count; i++) sum.add(message(i, maxMessage, seed))
  return sum.toString()
}

test('the C topic key is FNV-1a 32-bit over "sysv-shm/topic:" + the UTF-8 name, 0 and -1 mapped to 1', async (t) => {
  const fnv = (name) => {
    let h = 0x811c9dc5
    for (const b of Buffer.from('sysv-shm/topic:' + name)) h = Math.imul(h ^ b, 0x01000193)
    return h === 0 || h === -1 ? 1 : h
  }
  for (const name of ['camera/frames', 'a', 'marché/prix', 'x'.repeat(128)]) {
    const r = await run(PEER, ['key', name])
    t.is(Number(r.stdout), fnv(name), name)
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

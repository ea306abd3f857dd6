// Concurrency across processes: counters kept with Atomics and with a lock
// built from Atomics.compareExchange, by Node processes alone and together
// with C processes using GCC's __atomic builtins on the same words; racing
// creators of one key; attach counts that stay exact while a process spawns
// children.
//
// Counts: npm test 4 x 100,000 increments and 20 creation races;
// npm run test:stress 4 x 1,000,000 and 200.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { IPC_PRIVATE, SharedMemory } from '../dist/index.js'
import { STRESS } from './arbitraries.mjs'
import { PKG, dispose, eventually, noLeaks, sh, startNode, uniqueKey } from './helpers.mjs'

noLeaks(test)

const COUNT = STRESS ? 1_000_000 : 100_000
const ROUNDS = STRESS ? 200 : 20

const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-atomic-'))
const cPeer = join(dir, 'atomic_peer')
test.before(() => {
  sh('cc', ['-O2', '-Wall', '-Werror', '-o', cPeer, fileURLToPath(new URL('fixtures/atomic_peer.c', import.meta.url))])
})
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

/** Runs a command to its end; resolves with { code, signal, stdout, stderr }. */
function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
}

// The same layout as fixtures/atomic_peer.c (int32 slots): [0] lock word, [1] atomic counter,
// [2..3] int64 atomic counter, [4] counter under the lock, [5] its double, [8] start barrier.
const nodeParty = (id, parties) => `
import { SharedMemory } from ${JSON.stringify(PKG)};
const s = SharedMemory.openById(${id});
const i32 = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 16);
const i64 = new BigInt64Array(s.buffer.buffer, s.buffer.byteOffset, 8);
const nap = new Int32Array(new SharedArrayBuffer(4));
Atomics.add(i32, 8, 1);
for (let n = 0; Atomics.load(i32, 8) < ${parties}; n++) if (n > 1000) Atomics.wait(nap, 0, 0, 1); // start together, napping while others start
let broken = 0, contended = 0;
for (let i = 0; i < ${COUNT}; i++) {
  Atomics.add(i32, 1, 1);
  Atomics.add(i64, 1, 1n);
  // lock: compareExchange 0 -> 1 (sequentially consistent, so also an acquire), backing off to a short sleep
  let spins = 0;
  while (Atomics.compareExchange(i32, 0, 0, 1) !== 0) {
    contended++;
    if (++spins > 100) { Atomics.wait(nap, 0, 0, 0.05); spins = 0; }
  }
  const a = i32[4];
  if (i32[5] !== 2 * a) broken++;
  i32[4] = a + 1;
  i32[5] = 2 * (a + 1);
  Atomics.store(i32, 0, 0); // unlock (a release)
}
s.detach();
console.log(broken, contended);
`

async function counters(t, nodes, cs) {
  const parties = nodes + cs
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  const runs = [
    ...Array.from({ length: nodes }, () => run(process.execPath, ['--input-type=module', '-e', nodeParty(shm.id, parties)])),
    ...Array.from({ length: cs }, () => run(cPeer, [String(shm.id), String(parties), String(COUNT)])),
  ]
  let contended = 0
  for (const r of await Promise.all(runs)) {
    t.is(r.signal, null, r.stderr)
    t.is(r.code, 0, r.stderr + r.stdout)
    const [broken, waits] = r.stdout.trim().split(' ').map(Number)
    t.is(broken, 0, 'a process saw the two words under the lock disagree')
    contended += waits
  }
  const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 16)
  const i64 = new BigInt64Array(shm.buffer.buffer, shm.buffer.byteOffset, 8)
  const total = parties * COUNT
  t.is(Atomics.load(i32, 1), total, 'Atomics.add on an Int32')
  t.is(Atomics.load(i64, 1), BigInt(total), 'Atomics.add on a BigInt64')
  t.is(i32[4], total, 'read-modify-write under the lock')
  t.is(i32[5], 2 * total)
  t.is(Atomics.load(i32, 0), 0, 'the lock is free at the end')
  // How often a lock attempt found it held: proof that the processes ran at once. At 100,000
  // increments a process may finish within one time slice of a 2-core machine, so only the
  // stress run (1,000,000) requires contention.
  t.log(`${contended} contended lock attempts`)
  if (STRESS) t.true(contended > 0, 'the processes never contended for the lock: the run proved nothing')
  await eventually(() => shm.stat().attachCount === 1)
}

test(`4 Node processes x ${COUNT.toLocaleString('en')}: Atomics counters and a compareExchange lock end exactly at ${(4 * COUNT).toLocaleString('en')}`, (t) =>
  counters(t, 4, 0))

test(`2 Node and 2 C processes (GCC __atomic builtins) x ${COUNT.toLocaleString('en')} on the same counters and lock: exact`, (t) => counters(t, 2, 2))

test(`${ROUNDS} rounds of 4 processes racing to create one key: with exclusive:false exactly one creates and all get its id; with exclusive:true exactly one succeeds, the others get EEXIST`, async (t) => {
  const parties = 4
  const ctrl = SharedMemory.create(IPC_PRIVATE, 4 * (1 + ROUNDS))
  t.teardown(() => dispose(ctrl))
  const base = ((uniqueKey() & 0x00ffff00) | 0x0f000000) >>> 0
  const keyOf = (r) => base + r
  // ctrl int32 slot 1 + r: arrivals at round r (a barrier, so that the creates race).
  const code = `
    const c = SharedMemory.openById(${ctrl.id});
    const v = new Int32Array(c.buffer.buffer, c.buffer.byteOffset, c.size >> 2);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const results = [];
    for (let r = 0; r < ${ROUNDS}; r++) {
      Atomics.add(v, 1 + r, 1);
      for (let n = 0; Atomics.load(v, 1 + r) < ${parties}; n++) if (n > 10000) Atomics.wait(nap, 0, 0, 1);
      try {
        const s = SharedMemory.create(${base} + r, 4096, { exclusive: r % 2 === 1 });
        results.push({ id: s.id, created: s.created });
        s.detach();
      } catch (e) { results.push({ error: e.code, created: false }); }
    }
    c.detach();
    say(results);
    await next();
  `
  const kids = Array.from({ length: parties }, () => startNode(code))
  t.teardown(() => kids.forEach((k) => k.child.kill('SIGKILL')))
  const all = await Promise.all(kids.map((k) => k.next()))
  for (const k of kids) k.send('exit')
  for (const k of kids) t.is((await k.exit()).code, 0)
  for (let r = 0; r < ROUNDS; r++) {
    const results = all.map((rs) => rs[r])
    const made = results.filter((x) => x.created)
    t.is(made.length, 1, `round ${r}: ${JSON.stringify(results)}`)
    if (r % 2 === 0) {
      t.true(results.every((x) => x.id === made[0].id), `round ${r}: all open the same segment`)
    } else {
      t.deepEqual(results.filter((x) => !x.created).map((x) => x.error), ['EEXIST', 'EEXIST', 'EEXIST'], `round ${r}`)
    }
    const seg = SharedMemory.open(keyOf(r))
    t.is(seg.id, made[0].id)
    t.is(seg.stat().attachCount, 1)
    seg.remove()
    seg.detach()
  }
})

test('attach counts stay exact while a process spawns children (attachments are kept out of forks)', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  // Another process watches the count while this one spawns 200 children.
  const watcher = startNode(`
    const s = SharedMemory.openById(${shm.id});
    say('ready');
    let max = 0, min = Infinity, samples = 0;
    const stop = next();
    let done = false; stop.then(() => { done = true });
    while (!done) {
      for (let i = 0; i < 1000; i++) { const n = s.stat().attachCount; if (n > max) max = n; if (n < min) min = n; samples++; }
      await new Promise((r) => setImmediate(r));
    }
    say({ max, min, samples });
    await next();
    s.detach();
  `)
  t.teardown(() => watcher.child.kill('SIGKILL'))
  t.is(await watcher.next(), 'ready')
  for (let i = 0; i < 200; i++) await run('true', [])
  watcher.send('stop')
  const seen = await watcher.next()
  t.true(seen.samples > 0)
  t.deepEqual({ max: seen.max, min: seen.min }, { max: 2, min: 2 })
  watcher.send('exit')
  t.is((await watcher.exit()).code, 0)
})

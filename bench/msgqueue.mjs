#!/usr/bin/env node
// Benchmark of MessageQueue between two node processes (build first: npm run build).
//
//   node bench/msgqueue.mjs [--runs 5] [--quick] [--json FILE]
//
// 1. rate: a child receives N messages that this process sends, at 64 B and
//    4 KiB, with the blocking calls (send/receive) and with the async ones
//    (sendAsync/receiveAsync). Messages per second, median of the runs.
// 2. round trip: ping-pong of 64 B messages; this process waits in a plain
//    receive(), the echoing child in each way of waiting: receive() (plain
//    blocking msgrcv),
//    receive({ timeoutMs }) and receiveAsync() (a per-thread timer signal
//    ends the wait: the 'signal' strategy), and the same two under the
//    'poll' strategy (SYSV_SHM_MSG_WAIT=poll). Median µs per round trip.
// 3. idle cost: CPU time (of the whole process, all threads) while a
//    receiver waits 1 s for nothing with receive({ timeoutMs: 1000 }), per
//    strategy, beside a process that sleeps 1 s in Atomics.wait.
//
// The machine may be shared: compare numbers of one run, side by side.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { MessageQueue } from '../dist/index.js'

const PKG = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const QUICK = args.includes('--quick')
const RUNS = Number(opt('--runs', QUICK ? 3 : 5))
const JSON_OUT = opt('--json')

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** A child node process with the package, talking JSON lines on stdio. */
function child(code, env = {}) {
  const body = `import { MessageQueue } from ${JSON.stringify(PKG)};
import { createInterface } from 'node:readline';
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => JSON.parse((await lines.next()).value);
const say = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
${code}`
  const proc = spawn(process.execPath, ['--input-type=module', '-e', body], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const it = createInterface({ input: proc.stdout })[Symbol.asyncIterator]()
  return {
    send: (x) => proc.stdin.write(JSON.stringify(x) + '\n'),
    next: async () => JSON.parse((await it.next()).value),
    done: async () => {
      proc.stdin.end()
      const [code] = await once(proc, 'close')
      if (code !== 0) throw new Error(`bench child exited ${code}`)
    },
  }
}

async function withQueue(fn) {
  const q = MessageQueue.create(0)
  try {
    return await fn(q)
  } finally {
    q.remove()
  }
}

// ---------------------------------------------------------------- 1. rate

const RECEIVER = `
const { id, n, async } = await next();
const q = MessageQueue.openById(id);
say('ready');
let bytes = 0;
if (async) for (let i = 0; i < n; i++) bytes += (await q.receiveAsync()).data.length;
else for (let i = 0; i < n; i++) bytes += q.receive().data.length;
say(bytes);
await next();`

async function rate(size, n, async) {
  return withQueue(async (q) => {
    const c = child(RECEIVER)
    c.send({ id: q.id, n, async })
    await c.next()
    const data = Buffer.alloc(size, 1)
    const t0 = process.hrtime.bigint()
    if (async) for (let i = 0; i < n; i++) await q.sendAsync(data)
    else for (let i = 0; i < n; i++) q.send(data)
    const bytes = await c.next()
    const ns = Number(process.hrtime.bigint() - t0)
    if (bytes !== size * n) throw new Error(`received ${bytes} bytes, sent ${size * n}`)
    c.send(0)
    await c.done()
    return (n / ns) * 1e9
  })
}

// ---------------------------------------------------------------- 2. round trip

const WAITS = {
  'receive()': 'q.receive({ type })',
  'receive({ timeoutMs })': 'q.receive({ type, timeoutMs: 60000 })',
  'receiveAsync()': '(await q.receiveAsync({ type }))',
}

function echo(wait) {
  return `
const { id } = await next();
const q = MessageQueue.openById(id);
const type = 1;
say(MessageQueue.waitStrategy);
for (;;) {
  const m = ${wait};
  if (m.data.length === 0) break;
  q.send(m.data, { type: 2 });
}
say('bye');
await next();`
}

async function roundTrip(waitName, env, n) {
  return withQueue(async (q) => {
    const c = child(echo(WAITS[waitName]), env)
    c.send({ id: q.id })
    const strategy = await c.next()
    const ping = Buffer.alloc(64, 7)
    const type = 2
    // This side always waits in a plain blocking receive(): only the echo's way of waiting varies.
    for (let i = 0; i < 200; i++) {
      q.send(ping)
      q.receive({ type })
    }
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      q.send(ping)
      q.receive({ type })
    }
    const ns = Number(process.hrtime.bigint() - t0)
    q.send(Buffer.alloc(0))
    await c.next()
    c.send(0)
    await c.done()
    return { us: ns / n / 1000, strategy }
  })
}

// ---------------------------------------------------------------- 3. idle cost

async function idleCpu(env, baseline = false) {
  return withQueue(async (q) => {
    const c = child(
      `const { id } = await next();
const q = MessageQueue.openById(id);
// Warm up (first-call set-up: limits, the signal handler, lazy symbols).
q.tryReceive();
try { q.receive({ timeoutMs: 1 }) } catch {}
const before = process.cpuUsage();
${baseline ? 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);' : 'try { q.receive({ timeoutMs: 1000 }) } catch {}'}
const u = process.cpuUsage(before);
say({ us: u.user + u.system, strategy: MessageQueue.waitStrategy });
await next();`,
      env,
    )
    c.send({ id: q.id })
    const r = await c.next()
    c.send(0)
    await c.done()
    return r
  })
}

// ---------------------------------------------------------------- main

const results = { runs: RUNS, rate: {}, roundTripUs: {}, idleCpuUs: {} }
const fmt = (x) => Math.round(x).toLocaleString('en-US')

console.log(`MessageQueue benchmark: ${RUNS} runs each, medians; node ${process.version}, ${process.arch}`)
console.log(`kernel limits: ${JSON.stringify(MessageQueue.limits())}\n`)

console.log('1. rate, two processes (messages/s)')
for (const [size, n] of [
  [64, QUICK ? 10_000 : 50_000],
  [4096, QUICK ? 5_000 : 20_000],
]) {
  for (const async of [false, true]) {
    const xs = []
    for (let r = 0; r < RUNS; r++) xs.push(await rate(size, n, async))
    const name = `${size} B ${async ? 'sendAsync/receiveAsync' : 'send/receive'}`
    results.rate[name] = { median: median(xs), all: xs }
    console.log(`  ${name.padEnd(32)} ${fmt(median(xs)).padStart(10)} msg/s   ${fmt((median(xs) * size) / 1e6)} MB/s`)
  }
}

console.log('\n2. round trip of 64 B; the echo process waits as shown, this one in receive() (µs, median)')
const n = QUICK ? 2_000 : 10_000
for (const [env, label] of [
  [{}, 'signal'],
  [{ SYSV_SHM_MSG_WAIT: 'poll' }, 'poll'],
]) {
  for (const wait of Object.keys(WAITS)) {
    if (label === 'poll' && wait === 'receive()') continue // no timer, no difference
    const xs = []
    let strategy
    for (let r = 0; r < RUNS; r++) {
      const res = await roundTrip(wait, env, n)
      xs.push(res.us)
      strategy = res.strategy
    }
    const name = `${wait} [${strategy}]`
    results.roundTripUs[name] = { median: median(xs), all: xs }
    console.log(`  ${name.padEnd(32)} ${median(xs).toFixed(1).padStart(8)} µs`)
  }
}

console.log('\n3. idle receiver, receive({ timeoutMs: 1000 }) with no message (process CPU µs in that second)')
for (const [env, label, baseline] of [
  [{}, 'baseline: Atomics.wait, no queue', true],
  [{}, 'signal', false],
  [{ SYSV_SHM_MSG_WAIT: 'poll' }, 'poll', false],
]) {
  const xs = []
  for (let r = 0; r < RUNS; r++) xs.push((await idleCpu(env, baseline)).us)
  results.idleCpuUs[label] = { median: median(xs), all: xs }
  console.log(`  ${label.padEnd(32)} ${fmt(median(xs)).padStart(8)} µs`)
}

if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(results, null, 2))

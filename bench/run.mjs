// `npm run bench`: every scenario side by side, several rounds, medians, ratios, targets.
//
//   node bench/run.mjs [--runs N] [--quick] [--only SCENARIO] [--save]
//
// Each round runs every (scenario, implementation) once, in the same order, so that a change in
// the machine's load hits them all alike; the table shows the median of the rounds and the spread
// (min..max, in % of the median). Results go to bench/results/latest.json (and, with --save, to
// bench/results/YYYY-MM-DD.json, or YYYY-MM-DD-2.json, … for later runs of the day) as an array of
// { scenario, impl, value, unit, runs, min, max }.
//
// CPU placement: where the two processes of a scenario run decides a latency more than the code
// does (on a VM, waking a process on an idle vCPU brings that vCPU out of halt: tens of µs; on
// the same CPU a wake-up is a context switch: a few µs). So every latency scenario runs twice, with
// the two processes pinned to different CPUs ("split", CPUs 0 and 1) and to one CPU ("same", CPU
// 0), Node with `taskset`, C with sched_setaffinity; the table shows both. Rates and bulk
// transfers run split (spinning on one CPU measures the scheduler's time slice, not the ring).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Channel, IPC_PRIVATE, MessageQueue, Mutex, SharedMemory } from '../dist/index.js'

import { addPubsub, pubsubBaselines } from './pubsub.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name) => args.includes(name)
const option = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const QUICK = flag('--quick')
const RUNS = Number(option('--runs', QUICK ? 1 : 5))
const ONLY = option('--only', null)
const scale = QUICK ? 0.1 : 1
const n = (x) => Math.max(10, Math.round(x * scale))

// ---------------------------------------------------------------------------------------------
// C references, compiled here with the system's cc.

const build = join(here, '.build')
mkdirSync(build, { recursive: true })
const cbin = {}
for (const name of ['bulk', 'pingpong', 'attach', 'ring']) {
  cbin[name] = join(build, name)
  execFileSync('cc', ['-O2', '-o', cbin[name], join(here, 'c', `${name}.c`)], { stdio: 'inherit' })
}

// ---------------------------------------------------------------------------------------------
// Running peers.

const tmp = mkdtempSync(join(os.tmpdir(), 'sysv-shm-bench-'))
const peer = join(here, 'peer.mjs')

// The placements: [name, CPU of the first process, CPU of the second]; one CPU only: no split.
const CPUS = os.availableParallelism?.() ?? os.cpus().length
const placements = CPUS >= 2 ? [['split CPUs', 0, 1], ['same CPU', 0, 0]] : [['same CPU', 0, 0]]
const SPLIT = placements[0]
const ANYWHERE = ['anywhere', undefined, undefined]

/** Spawns `file argv`, pinned to `cpu` with taskset (undefined: anywhere). */
function spawnPeer(file, argv, cpu) {
  const [cmd, args] = cpu === undefined ? [file, argv] : ['taskset', ['-c', String(cpu), file, ...argv]]
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = []
  let waiters = []
  let buf = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
      waiters.forEach((w) => w())
    }
  })
  const exited = new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) =>
      code === 0 ? resolve(lines) : reject(new Error(`${argv.join(' ')} exited with ${code ?? signal}`)),
    )
  })
  const line = (pred) =>
    new Promise((resolve) => {
      const check = () => {
        const l = lines.find(pred)
        if (l !== undefined) {
          waiters = waiters.filter((w) => w !== check)
          resolve(l)
        }
      }
      waiters.push(check)
      check()
    })
  return { child, exited, line }
}

const valueOf = (lines) => {
  const l = lines.find((x) => x.startsWith('{'))
  return l === undefined ? undefined : JSON.parse(l).value
}

/**
 * Runs two peer processes (the first one first; waits for its "ready" if `ready`) and returns the
 * reported value. `place`: a placement (default split), the first process on its first CPU.
 */
async function pair(opts, first, second, ready = false, place = ANYWHERE) {
  const a = spawnPeer(process.execPath, [peer, JSON.stringify({ ...opts, role: first })], place[1])
  if (ready) await Promise.race([a.line((l) => l === '"ready"'), a.exited])
  const b = spawnPeer(process.execPath, [peer, JSON.stringify({ ...opts, role: second })], place[2])
  const [la, lb] = await Promise.all([a.exited, b.exited])
  return valueOf(la) ?? valueOf(lb)
}

/** Runs one peer process; `cpus` (a taskset list) pins it and the processes it starts. */
async function single(opts, cpus) {
  const p = spawnPeer(process.execPath, [peer, JSON.stringify(opts)], cpus)
  return valueOf(await p.exited)
}

async function c(name, argv) {
  const p = spawnPeer(cbin[name], argv.map(String))
  return (await p.exited)[0].trim().split(/\s+/).map(Number)
}

function withChannel(capacity, fn) {
  const ch = Channel.create(IPC_PRIVATE, capacity)
  ch.remove()
  return Promise.resolve(fn(ch.id)).finally(() => ch.detach())
}

function withQueue(fn) {
  const q = MessageQueue.create(IPC_PRIVATE)
  return Promise.resolve(fn(q.id)).finally(() => q.remove())
}

function withSegment(size, fn) {
  const shm = SharedMemory.create(IPC_PRIVATE, size)
  shm.remove()
  return Promise.resolve(fn(shm.id)).finally(() => shm.detach())
}

let fifoN = 0
function fifo() {
  const p = join(tmp, `fifo-${++fifoN}`)
  execFileSync('mkfifo', [p])
  return p
}
let sockN = 0
const sockPath = () => join(tmp, `sock-${++sockN}`)
let keyN = 0
const stKey = () => 0x5b000000 + ((process.pid & 0xfff) << 8) + (++keyN & 0xff)

// ---------------------------------------------------------------------------------------------
// Scenarios: [scenario, impl, unit, run()].

const MiB = 1024 * 1024
const cases = []
const add = (scenario, impl, unit, run) => cases.push({ scenario, impl, unit, run })

for (const [size, label, count, warm] of [
  [64 * 1024, 'bulk 64 KiB', n(4096), n(256)],
  [MiB, 'bulk 1 MiB', n(384), n(32)],
]) {
  const o = { scenario: 'bulk', size, count, warm }
  add(label, 'sysv-shm Channel (ring of 4 messages)', 'MB/s', () =>
    withChannel(4 * (size + 8), (id) => pair({ ...o, impl: 'channel', id }, 'recv', 'send')),
  )
  add(label, 'sysv-shm Channel sendWith/recvWith (zero-copy, ring of 4)', 'MB/s', () =>
    withChannel(4 * (size + 8), (id) => pair({ ...o, impl: 'channel-zc', id }, 'recv', 'send')),
  )
  add(label, 'sysv-shm two slots (buffer + wait/notify)', 'MB/s', () =>
    withSegment(4096 + 2 * size, (id) => pair({ ...o, impl: 'slots', id }, 'recv', 'send')),
  )
  add(label, 'shm-typed-array (two slots, Atomics spin)', 'MB/s', () =>
    pair({ ...o, impl: 'shm-typed-array', key: stKey() }, 'send', 'recv', true),
  )
  add(label, 'pipe (mkfifo, readSync/writeSync)', 'MB/s', () => pair({ ...o, impl: 'pipe', path: fifo() }, 'recv', 'send'))
  add(label, 'Unix socket (net, stream)', 'MB/s', () => pair({ ...o, impl: 'unix', path: sockPath() }, 'recv', 'send', true))
  add(label, "process.send (serialization: 'advanced')", 'MB/s', () => single({ ...o, impl: 'process.send', role: 'send' }))
  add(label, 'C reference (two slots, futex handoff)', 'MB/s', async () => (await c('bulk', [size, count, warm]))[0])
  add(label, 'no IPC: fill + check in one process (bound)', 'MB/s', () => single({ ...o, impl: 'none', role: 'both' }))
}

for (const place of placements) {
  const o = { scenario: 'pingpong', count: n(20000), warm: n(1000) }
  const [where, cpuA, cpuB] = place
  const label = `ping-pong 8 B round trip, ${where}`
  // process.send and worker_threads start their peer themselves: pinned to CPU 0 for "same CPU",
  // left to the scheduler on CPUs 0 and 1 for "split CPUs".
  const both = cpuA === cpuB ? String(cpuA) : `${cpuA},${cpuB}`
  add(label, 'sysv-shm wait/notify', 'µs', () => withSegment(4096, (id) => pair({ ...o, impl: 'wait/notify', id }, 'pong', 'ping', false, place)))
  // Spinning on one CPU measures the time slice; spin rows run split only.
  if (cpuA !== cpuB) {
    add(label, 'sysv-shm spin on Atomics.load', 'µs', () => withSegment(4096, (id) => pair({ ...o, impl: 'spin', id }, 'pong', 'ping', false, place)))
  }
  for (const wait of ['spin-then-park', 'park']) {
    add(label, `sysv-shm Channel (${wait})`, 'µs', () =>
      withChannel(4096, (id) => withChannel(4096, (id2) => pair({ ...o, impl: 'channel', id, id2, wait }, 'pong', 'ping', false, place))),
    )
  }
  add(label, 'pipe (two FIFOs, readSync/writeSync)', 'µs', () =>
    pair({ ...o, impl: 'pipe', path: fifo(), path2: fifo() }, 'pong', 'ping', false, place),
  )
  add(label, 'Unix socket (net)', 'µs', () => pair({ ...o, impl: 'unix', path: sockPath() }, 'pong', 'ping', true, place))
  add(label, "process.send (serialization: 'advanced')", 'µs', () => single({ ...o, impl: 'process.send', role: 'ping' }, both))
  add(label, 'worker_threads postMessage (same process)', 'µs', () => single({ ...o, impl: 'worker', role: 'ping' }, both))
  // The asynchronous waits on both of their paths: futex_waitv (Linux 5.16+) and the fallback of
  // older kernels (forced with SYSV_SHM_FUTEX_WAITV=0), side by side.
  const backends = [['futex_waitv', 'futex_waitv'], ['futex', 'FUTEX_WAIT fallback']]
  for (const [asyncBackend, name] of backends) {
    add(label, `sysv-shm waitAsync/notify (${name})`, 'µs', () =>
      withSegment(4096, (id) => pair({ ...o, count: n(5000), impl: 'wait-async', id, asyncBackend }, 'pong', 'ping', false, place)),
    )
  }
  for (const [asyncBackend, name] of backends) {
    add(label, `sysv-shm Channel send / recvAsync (${name})`, 'µs', () =>
      withChannel(4096, (id) =>
        withChannel(4096, (id2) => pair({ ...o, count: n(5000), impl: 'channel-async', id, id2, asyncBackend }, 'pong', 'ping', false, place)),
      ),
    )
  }
  // The floor of an awaited wake-up: two threads of one process, each in Atomics.waitAsync.
  add(label, 'Atomics.waitAsync/notify, two threads (reference: the event-loop hop)', 'µs', () =>
    single({ ...o, count: n(5000), impl: 'atomics-async', role: 'ping' }, both),
  )
  add(label, 'C futex (wait cell protocol)', 'µs', async () => (await c('pingpong', ['futex', o.count, o.warm, cpuA, cpuB]))[0])
  if (cpuA !== cpuB) add(label, 'C spin', 'µs', async () => (await c('pingpong', ['spin', o.count, o.warm, cpuA, cpuB]))[0])
}

// Message rate one way: the Channel (a ring in shared memory) beside a System V message queue
// (the kernel copies each message in and out), at 64 B and 4 KiB.
for (const [size, channels, queue] of [
  [64, [[n(2_000_000), n(100_000), 0], [n(2_000_000), n(100_000), 64]], [n(200_000), n(10_000)]],
  [4096, [[n(300_000), n(20_000), 0]], [n(100_000), n(5_000)]],
]) {
  const label = `message rate ${size === 64 ? '64 B' : '4 KiB'}`
  for (const [count, warm, batch] of channels) {
    const impl = batch ? `Channel trySendMany / recvMany (up to ${batch} per call)` : 'Channel send / recvInto (one call per message)'
    add(label, impl, 'msg/s', () =>
      withChannel(MiB, (id) => pair({ scenario: 'rate', size, count, warm, batch, id }, 'recv', 'send', false, SPLIT)),
    )
  }
  if (size === 64) {
    const [count, warm] = channels[0]
    add(label, 'plain JS SPSC ring on a segment (reference: no checks, spins)', 'msg/s', () =>
      withSegment(128 + 1024 * 64, (id) => pair({ scenario: 'rate', impl: 'js-ring', size, count, warm, id }, 'recv', 'send', false, SPLIT)),
    )
    add(label, 'C SPSC ring (reference: the same ring in C)', 'msg/s', async () => (await c('ring', [count, warm, SPLIT[1], SPLIT[2]]))[0])
  }
  const [count, warm] = queue
  add(label, 'MessageQueue send / receive (msgsnd / msgrcv per message)', 'msg/s', () =>
    withQueue((id) => pair({ scenario: 'mqrate', impl: 'sync', size, count, warm, id }, 'recv', 'send', false, SPLIT)),
  )
  add(label, 'MessageQueue sendAsync / receiveAsync (await per message)', 'msg/s', () =>
    withQueue((id) => pair({ scenario: 'mqrate', impl: 'async', size, count: Math.round(count / 2), warm, id }, 'recv', 'send', false, SPLIT)),
  )
}

{
  const label = 'attach + detach'
  add(label, 'sysv-shm SharedMemory.openById + detach', 'µs', () =>
    withSegment(65536, (id) => single({ scenario: 'costs', impl: 'attach', id, count: n(20000) })),
  )
  add(label, 'C shmat + shmdt', 'µs', async () => (await c('attach', [n(20000), 1000]))[0])
  const label2 = 'notify, no waiter'
  add(label2, 'sysv-shm notify (zero-copy handle)', 'ns', () =>
    withSegment(4096, (id) => single({ scenario: 'costs', impl: 'notify', id, count: n(5_000_000) })),
  )
  add(label2, 'sysv-shm notify (copying handle, native path)', 'ns', () =>
    withSegment(4096, (id) => single({ scenario: 'costs', impl: 'notify-native', id, count: n(5_000_000) })),
  )
  add(label2, 'C fence + load of the waiter count', 'ns', async () => (await c('attach', [10, n(10_000_000)]))[1])
  // Proof that notify makes no system call when nobody waits: count futex(2) calls with strace.
  add(label2, 'futex syscalls per 1M notifies (strace -f -c, whole process)', 'calls', async () => {
    const out = join(tmp, `strace-${++fifoN}`)
    await withSegment(4096, (id) =>
      new Promise((resolve, reject) => {
        const p = spawn('strace', ['-f', '-c', '-e', 'trace=futex', '-o', out, process.execPath, peer,
          JSON.stringify({ scenario: 'costs', impl: 'notify', id, count: 900_000 })], { stdio: 'ignore' })
        p.on('error', reject)
        p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`strace exited with ${code}`))))
      }),
    )
    // 100 000 warm-up calls + 900 000 timed ones; the count includes V8's and libuv's own threads.
    const line = readFileSync(out, 'utf8').split('\n').find((l) => /\sfutex$/.test(l))
    return line ? Number(line.trim().split(/\s+/)[3]) : 0
  })
  for (const impl of ['trySend', 'tryRecvInto']) {
    add('one call, one process', `Channel.${impl} of 64 B, no peer (JavaScript path)`, 'ns', () =>
      withChannel(256 * MiB, (id) => single({ scenario: 'costs', impl, id, count: n(1_000_000) })),
    )
  }
  add('one call, one process', 'SharedMemory#attached (JavaScript: no native call)', 'ns', () =>
    withSegment(4096, (id) => single({ scenario: 'costs', impl: 'napi-call', id, count: n(2_000_000) })),
  )
  for (const [impl, name] of [
    ['plain-fn', 'plain native function (futexAsyncBackend())'],
    ['plain-fn-arg', 'plain native function, one number argument (setMaxBufferLength(n))'],
    ['getter', 'native class getter (Mapping#id)'],
    ['method', 'native method of the hot paths (mappingNotify(h, 0, 1) over the External, no waiter)'],
    ['external-fn', 'copy path: plain function over an External (mappingReadInto, 0 bytes)'],
  ]) {
    add('native call cost', name, 'ns', () => withSegment(4096, (id) => single({ scenario: 'costs', impl, id, count: n(2_000_000) })))
  }
  const label4 = '64 B into or out of a segment'
  add(label4, 'Buffer#copy 64 B into the mapping (reference)', 'ns', () =>
    withSegment(65536, (id) => single({ scenario: 'costs', impl: 'copy64', id, count: n(2_000_000) })),
  )
  add(label4, 'Buffer#copy 64 B out of the mapping (reference)', 'ns', () =>
    withSegment(65536, (id) => single({ scenario: 'costs', impl: 'copyOut64', id, count: n(2_000_000) })),
  )
  for (const zeroCopy of [true, false]) {
    const how = zeroCopy ? 'zero-copy handle' : 'zeroCopy: false (the copy path of Electron)'
    add(label4, `SharedMemory#write 64 B, ${how}`, 'ns', () =>
      withSegment(65536, (id) => single({ scenario: 'costs', impl: 'write64', id, zeroCopy, count: n(2_000_000) })),
    )
    add(label4, `SharedMemory#readInto 64 B, ${how}`, 'ns', () =>
      withSegment(65536, (id) => single({ scenario: 'costs', impl: 'readInto64', id, zeroCopy, count: n(2_000_000) })),
    )
  }
}

{
  // Mutex: uncontended (JavaScript Atomics; native word operations where there is no zero-copy
  // view) beside Semaphore (a semop system call per operation); contended: two processes at once.
  const label = 'lock + unlock'
  const o = { scenario: 'lock' }
  add(label, 'sysv-shm Mutex lock/unlock, uncontended (JavaScript Atomics)', 'ns', () =>
    withSegment(4096, (id) => single({ ...o, impl: 'mutex', id, count: n(2_000_000) })),
  )
  add(label, 'sysv-shm Mutex lock/unlock, uncontended, zeroCopy: false (native path)', 'ns', () =>
    withSegment(4096, (id) => single({ ...o, impl: 'mutex-native', id, count: n(500_000) })),
  )
  add(label, 'sysv-shm Semaphore acquire/release (semop each)', 'ns', () => single({ ...o, impl: 'semaphore', count: n(200_000) }))
  add(label, 'sysv-shm Mutex, 2 processes contending (per pair, counter under the lock)', 'ns', () =>
    withSegment(4096, (id) => {
      const shm = SharedMemory.openById(id)
      Mutex.create(shm, 0)
      shm.detach()
      return pair({ ...o, impl: 'mutex-contended', id, count: n(200_000) }, 'a', 'b', false, SPLIT)
    }),
  )
}

// Publish/subscribe: its scenarios are in bench/pubsub.mjs.
addPubsub({ add, n, spawnPeer, placements, SPLIT, build })

// Units: MB/s from bytes/s, µs from ns.
const convert = { 'MB/s': (v) => v / 1e6, µs: (v) => v / 1000, 'msg/s': (v) => v, ns: (v) => v, calls: (v) => v }
// The C attach reference prints ns; the Node peer prints ns too.

// ---------------------------------------------------------------------------------------------

const selected = cases.filter((k) => !ONLY || k.scenario.startsWith(ONLY))
const samples = new Map(selected.map((k) => [k, []]))
const failures = new Map()
const load0 = os.loadavg()
const started = Date.now()
for (let r = 0; r < RUNS; r++) {
  for (const k of selected) {
    if (failures.has(k)) continue
    try {
      const v = await k.run()
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`no result (${v})`)
      samples.get(k).push(convert[k.unit](v))
    } catch (err) {
      failures.set(k, err.message)
    }
    process.stderr.write(`\rround ${r + 1}/${RUNS}: ${k.scenario} · ${k.impl}`.padEnd(100).slice(0, 100))
  }
}
process.stderr.write('\n')
const load1 = os.loadavg()
rmSync(tmp, { recursive: true, force: true })

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const results = []
for (const k of selected) {
  const xs = samples.get(k)
  if (xs.length === 0) continue
  results.push({
    scenario: k.scenario,
    impl: k.impl,
    value: round(median(xs)),
    unit: k.unit,
    runs: xs.length,
    min: round(Math.min(...xs)),
    max: round(Math.max(...xs)),
  })
}
function round(v) {
  return v >= 100 ? Math.round(v) : Math.round(v * 100) / 100
}

const find = (scenario, impl) => results.find((r) => r.scenario === scenario && r.impl.startsWith(impl))
const ratio = (a, b) => (a && b ? a.value / b.value : NaN)

// Baselines for the ratio column: the C reference of each scenario; for the 64 B message rate,
// the plain-JS ring; for 4 KiB, the Channel; for call costs, the plain function or Buffer#copy.
const baselines = [
  [/^bulk/, 'C reference'],
  [/^ping-pong/, 'C futex'],
  [/^attach/, 'C shmat'],
  [/^notify/, 'C fence'],
  [/^message rate 64 B/, 'plain JS SPSC ring'],
  [/^message rate 4 KiB/, 'Channel send /'],
  [/^native call cost/, 'plain native function'],
  [/^64 B into/, 'Buffer#copy 64 B into'],
  ...pubsubBaselines,
]
const baseline = (scenario) => baselines.find(([re]) => re.test(scenario))?.[1]

const fmt = (v) => (v >= 1e6 ? v.toExponential(2) : v >= 100 ? String(Math.round(v)) : v.toFixed(2))
const out = []
out.push(`sysv-shm benchmark: ${new Date().toISOString()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), Linux ${os.release()}, Node ${process.version}`)
out.push(`${RUNS} rounds in ${Math.round((Date.now() - started) / 1000)} s; load average before ${load0.map((x) => x.toFixed(1)).join(' ')}, after ${load1.map((x) => x.toFixed(1)).join(' ')}`)
out.push('')
out.push('| scenario | implementation | median | unit | spread: min..max (± half-range / median) | vs reference |')
out.push('|---|---|---:|---|---|---:|')
for (const r of results) {
  const base = baseline(r.scenario) && r.unit !== 'calls' ? find(r.scenario, baseline(r.scenario)) : undefined
  const spread = `${fmt(r.min)}..${fmt(r.max)} (±${Math.round((50 * (r.max - r.min)) / r.value)}%)`
  const vs = base ? `${ratio(r, base).toFixed(2)}x` : ''
  out.push(`| ${r.scenario} | ${r.impl} | ${fmt(r.value)} | ${r.unit} | ${spread} | ${vs} |`)
}
for (const [k, msg] of failures) out.push(`| ${k.scenario} | ${k.impl} | failed: ${msg.replace(/\|/g, '/')} | | | |`)
out.push('')
out.push('*vs reference*: the ratio to the C reference of the scenario; for the 64 B message rate, to the plain-JS ring; for 4 KiB, to the Channel with one call per message; for call costs, to the plain native function or Buffer#copy.')

// Targets of the issue, as ratios measured in this run.
const t = []
// A target whose rows were not run (--only) is left out.
const target = (name, value, ok, detail) => Number.isFinite(value) && t.push(`| ${name} | ${Number.isFinite(value) ? value.toFixed(2) : 'n/a'} | ${ok ? 'met' : 'NOT met'} | ${detail} |`)
for (const ch1 of [find('bulk 1 MiB', 'sysv-shm Channel (ring'), find('bulk 1 MiB', 'sysv-shm Channel sendWith')]) {
  if (!ch1) continue
  const which = ch1.impl.includes('sendWith') ? 'Channel sendWith/recvWith' : 'Channel send/recvInto'
  const r1 = ratio(ch1, find('bulk 1 MiB', 'C reference'))
  target(`bulk 1 MiB: ${which} / C reference`, r1, r1 >= 0.5, '>= 0.5')
  const r2 = ratio(ch1, find('bulk 1 MiB', 'Unix socket'))
  target(`bulk 1 MiB: ${which} / Unix socket`, r2, r2 >= 2.5, '>= 2.5')
  const r3 = ratio(ch1, find('bulk 1 MiB', 'pipe'))
  target(`bulk 1 MiB: ${which} / pipe (FIFO)`, r3, r3 >= 5, '>= 5')
}
for (const [where] of placements) {
  const pp = `ping-pong 8 B round trip, ${where}`
  const wn = find(pp, 'sysv-shm wait/notify')
  if (!wn) continue
  const cf = find(pp, 'C futex')
  const r1 = ratio(wn, cf)
  target(`ping-pong ${where}: wait/notify / C futex`, r1, r1 <= 1.25, '<= 1.25')
  const park = find(pp, 'sysv-shm Channel (park)')
  const r2 = ratio(park, find(pp, 'pipe'))
  target(`ping-pong ${where}: Channel park / pipe`, r2, r2 <= 1, '<= 1')
  const wa = find(pp, 'sysv-shm waitAsync/notify (futex_waitv)')
  const r3 = ratio(wa, cf)
  target(`ping-pong ${where}: waitAsync / C futex`, r3, r3 <= 2, '<= 2')
  const ra = find(pp, 'sysv-shm Channel send / recvAsync (futex_waitv)')
  const r4 = ratio(ra, cf)
  target(`ping-pong ${where}: Channel recvAsync / C futex`, r4, r4 <= 2, '<= 2')
  const hop = find(pp, 'Atomics.waitAsync/notify, two threads')
  if (hop) {
    const r7 = ratio(wa, hop)
    target(`ping-pong ${where}: waitAsync / Atomics.waitAsync two threads (the event-loop hop)`, r7, r7 <= 2, '<= 2 (a floor, not an issue target)')
  }
  const sp = find(pp, 'sysv-shm spin')
  if (sp) {
    const r5 = ratio(sp, find(pp, 'C spin'))
    target(`ping-pong ${where}: spin / C spin`, r5, r5 <= 3, '<= 3')
  }
  const r6 = ratio(wn, find(pp, 'process.send'))
  target(`ping-pong ${where}: wait/notify / process.send`, r6, r6 < 0.5, 'far below 1')
}
const pf = find('native call cost', 'plain native function')
for (const impl of ['native class getter', 'native method of the hot paths', 'copy path: plain function over an External']) {
  const r = ratio(find('native call cost', impl), pf)
  target(`${impl}${impl === 'native class getter' ? ' (left on cold calls only)' : ''} / plain native function`, r, r <= 1.5, '<= 1.5')
}
{
  // napi-rs 3's glue for any function with an argument (its borrow scope): what a bare callback saves.
  const r = ratio(find('native call cost', 'plain native function, one number argument'), pf)
  target('plain native function with one number argument / without (napi-rs per-call glue)', r, r <= 1.5, '<= 1.5 (napi-rs, not ours)')
}
for (const [impl, ref] of [['SharedMemory#write 64 B, zero-copy', 'into'], ['SharedMemory#readInto 64 B, zero-copy', 'out of']]) {
  const r = ratio(find('64 B into or out of a segment', impl), find('64 B into or out of a segment', `Buffer#copy 64 B ${ref}`))
  target(`${impl.replace(', zero-copy', '')} (zero-copy handle) / Buffer#copy 64 B ${ref} the mapping`, r, r <= 3, '<= 3')
}
const at = ratio(find('attach + detach', 'sysv-shm'), find('attach + detach', 'C shmat'))
target('openById + detach / C shmat + shmdt', at, at <= 1.5, '<= 1.5')
const nt = find('notify, no waiter', 'sysv-shm notify (zero-copy')
if (nt) target('notify with no waiter, ns per call', nt.value, nt.value < 100, '< 100 ns')
const sc = find('notify, no waiter', 'futex syscalls')
if (sc) target('notify with no waiter: futex calls per 1M notifies', sc.value, sc.value < 1000, 'none per notify (< 1000, the runtime\'s own)')
const rt = find('message rate 64 B', 'Channel send /')
if (rt) {
  target('Channel 64 B, million msg/s one way, one call per message', rt.value / 1e6, rt.value >= 4e6, '>= 4')
  const r = ratio(rt, find('message rate 64 B', 'plain JS SPSC ring'))
  target('Channel 64 B one call per message / plain-JS ring', r, r >= 0.8, '>= 0.8')
}
const rb = find('message rate 64 B', 'Channel trySendMany')
if (rb) target('Channel 64 B, million msg/s one way, batch calls', rb.value / 1e6, rb.value >= 8e6, '>= 8')
if (t.length) {
  out.push('')
  out.push('| target | measured | | wanted |')
  out.push('|---|---:|---|---|')
  out.push(...t)
}

const text = out.join('\n')
console.log(text)
const dir = join(here, 'results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'latest.json'), JSON.stringify(results, null, 2) + '\n')
writeFileSync(join(dir, 'latest.md'), text + '\n')
if (flag('--save')) {
  // YYYY-MM-DD, or YYYY-MM-DD-2, -3, … for a later run of the same day: never overwrite a saved run.
  const day = new Date().toISOString().slice(0, 10)
  let name = day
  for (let i = 2; existsSync(join(dir, `${name}.json`)); i++) name = `${day}-${i}`
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(results, null, 2) + '\n')
  writeFileSync(join(dir, `${name}.md`), text + '\n')
  console.log(`saved bench/results/${name}.json and .md`)
}

// The publish/subscribe rows of `npm run bench` (bench/run.mjs calls addPubsub with its helpers):
// one publisher to 1 and to 4 subscribers, 64 B and 1 MiB messages, the Publisher/Subscriber
// beside the Channel (one per subscriber) and a C reference of the same layout (bench/c/pubsub.c);
// and the one-way latency of a 64 B message at both CPU placements.
//
// Every row is the block policy (no message lost: every subscriber receives and checks all of
// them) and reports the slowest subscriber's rate. Rates run with the publisher on the first CPU
// of the split placement and the subscribers on the second (all four on one CPU for 1 -> 4).
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Channel, IPC_PRIVATE } from '../dist/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const peer = join(here, 'pubsub-peer.mjs')
const MiB = 1024 * 1024

/** Baselines of the ratio column: the C reference of each pub/sub row. */
export const pubsubBaselines = [[/^pub\/sub/, 'C reference']]

/**
 * Adds the pub/sub scenarios with `add(scenario, impl, unit, run)`. `n` scales counts (--quick),
 * `spawnPeer(file, argv, cpu)` runs a process (`{ exited, line }`), `placements` and `SPLIT` are
 * run.mjs's CPU placements, `build` its directory for C binaries.
 */
export function addPubsub({ add, n, spawnPeer, placements, SPLIT, build }) {
  const cbin = join(build, 'pubsub')
  execFileSync('cc', ['-O2', '-o', cbin, join(here, 'c', 'pubsub.c')], { stdio: 'inherit' })
  const [, cpuPub, cpuSub] = SPLIT

  const value = (lines) => {
    const l = lines.find((x) => x.startsWith('{"value"'))
    return l === undefined ? undefined : JSON.parse(l).value
  }
  const node = (opts, cpu) => spawnPeer(process.execPath, [peer, JSON.stringify(opts)], cpu)

  /** A Node publisher (it makes the topic) and `subs` Node subscribers: the slowest one's value. */
  async function topic(opts, subs, pubCpu, subCpu) {
    const pub = node({ ...opts, role: 'pub', subs }, pubCpu)
    const first = await Promise.race([pub.line((l) => l.startsWith('{"id"')), pub.exited])
    if (typeof first !== 'string') throw new Error('the publisher ended before making its topic')
    const { id } = JSON.parse(first)
    const readers = Array.from({ length: subs }, () => node({ ...opts, role: 'sub', id }, subCpu))
    const [, ...results] = await Promise.all([pub.exited, ...readers.map((r) => r.exited)])
    return Math.min(...results.map(value))
  }

  /** The same messages through one Channel per subscriber. */
  async function channels(opts, subs, capacity) {
    const chs = Array.from({ length: subs }, () => Channel.create(IPC_PRIVATE, capacity))
    for (const ch of chs) ch.remove()
    try {
      const readers = chs.map((ch) => node({ ...opts, impl: 'channels', role: 'sub', id: ch.id }, cpuSub))
      const sender = node({ ...opts, impl: 'channels', role: 'pub', ids: chs.map((ch) => ch.id) }, cpuPub)
      const [, ...results] = await Promise.all([sender.exited, ...readers.map((r) => r.exited)])
      return Math.min(...results.map(value))
    } finally {
      for (const ch of chs) ch.detach()
    }
  }

  async function c(argv) {
    const p = spawnPeer(cbin, argv.map(String))
    return (await p.exited)[0].trim().split(/\s+/).map(Number)
  }

  for (const [size, label, unit, capacity, counts] of [
    [64, '64 B', 'msg/s', 1024, { 1: [n(200_000), n(10_000)], 4: [n(100_000), n(5_000)] }],
    [MiB, '1 MiB', 'MB/s', 4, { 1: [n(300), n(30)], 4: [n(150), n(15)] }],
  ]) {
    const bytes = unit === 'MB/s'
    for (const subs of [1, 4]) {
      const [count, warm] = counts[subs]
      const scenario = `pub/sub ${label}, 1 -> ${subs}`
      const o = { size, count, warm, capacity, bytes }
      add(scenario, 'sysv-shm Publisher/Subscriber (block, publish / receiveInto)', unit, () => topic({ ...o, impl: 'pubsub' }, subs, cpuPub, cpuSub))
      const ring = capacity * (size + 8)
      add(scenario, subs === 1 ? 'sysv-shm Channel send / recvInto' : `sysv-shm ${subs} Channels (send to each / recvInto)`, unit, () => channels(o, subs, ring))
      add(scenario, 'C reference (same layout, futex wait cells)', unit, async () => {
        const [msgs, perSec] = await c(['rate', size, capacity, subs, count, warm, cpuPub, cpuSub])
        return bytes ? perSec : msgs
      })
    }
  }

  for (const [where, cpuA, cpuB] of placements) {
    const scenario = `pub/sub one-way latency 64 B, ${where}`
    const o = { impl: 'latency', count: n(5000), warm: n(500) }
    add(scenario, 'sysv-shm Publisher.publish -> Subscriber.receiveInto', 'µs', () => topic(o, 1, cpuA, cpuB))
    add(scenario, 'C reference (same layout, futex wait cells)', 'µs', async () => (await c(['latency', o.count, o.warm, cpuA, cpuB]))[0])
  }
}

// The programs of docs/guide.md's first steps (examples/guide/) do what the
// guide says: two processes share one segment through a key, and the CLI
// shows it while they run.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import test from 'ava'

import { SharedMemory, ftok, topicKey } from '../dist/index.js'

import { ENV, ROOT, cli, hexKey, noLeaks, run } from './interop/helpers.mjs'

noLeaks(test)

const example = (name) => join(ROOT, 'examples', 'guide', name)
/** How many messages the writer publishes, half a second apart (see the test). */
const MESSAGES = 30

/** Checks a reader's output: its first line, whole messages in order, and "bye". */
function checkReader(t, r, name, id, writerPid) {
  t.is(r.code, 0, r.stderr)
  const out = r.stdout.trim().split('\n')
  t.is(out[0], `${name}: opened segment ${id}`)
  const messages = out.slice(1, -1)
  t.true(messages.length >= 1, r.stdout)
  let previous = 0
  for (const line of messages) {
    const m = line.match(new RegExp(`^${name}: message (\\d+) of ${MESSAGES} from pid (\\d+)$`))
    t.truthy(m, `a whole message: ${line}`)
    t.is(Number(m[2]), writerPid)
    t.true(Number(m[1]) > previous)
    previous = Number(m[1])
  }
  t.is(out.at(-1), `${name}: bye`)
}

test('writer.mjs, reader.mjs and reader.c exchange messages through one segment; the CLI sees it meanwhile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-guide-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const key = ftok(dir, 42)
  const readerC = join(dir, 'reader')
  execFileSync('cc', ['-Wall', '-Wextra', '-Werror', '-o', readerC, example('reader.c')], { stdio: 'pipe' })

  // MESSAGES = 30: the writer lives 16 s, time for both readers and the CLI to start and find the
  // segment. (With 4 it lived 3 s, and with both cores busy the CLI found it gone.)
  const writer = spawn(process.execPath, [example('writer.mjs'), dir, String(MESSAGES)], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let writerErr = ''
  writer.stderr.on('data', (d) => (writerErr += d))
  const writerDone = new Promise((resolve) => writer.on('close', resolve))
  const lines = createInterface({ input: writer.stdout })[Symbol.asyncIterator]()
  const first = (await lines.next()).value
  t.teardown(() => {
    writer.kill()
    try {
      SharedMemory.removeById(Number(first.match(/segment (\d+)/)[1]))
    } catch {
      // removed by the writer, as it should be
    }
  })
  t.regex(first, new RegExp(`^writer: made segment \\d+ with key ${hexKey(key)}$`), writerErr)
  const id = Number(first.match(/segment (\d+)/)[1])

  const reader = run(process.execPath, [example('reader.mjs'), dir])
  const cReader = run(readerC, [dir])
  const stat = JSON.parse((await cli(['stat', '--key', hexKey(key), '--json'])).stdout)
  t.is(stat.id, id)
  t.true(stat.attachedBy.some((a) => a.pid === writer.pid))

  checkReader(t, await reader, 'reader', id, writer.pid)
  checkReader(t, await cReader, 'reader.c', id, writer.pid)

  t.is(await writerDone, 0, writerErr)
  t.is((await lines.next()).value, 'writer: removed the segment')
  t.throws(() => SharedMemory.statById(id), { code: 'EINVAL' })
})

// ------------------------------------------------------------------ publish/subscribe (guide, section 3)

const PYTHON = join(ROOT, '.venv', 'bin', 'python')

/**
 * Starts a program, killed when the test ends; `line()` resolves its next line of output, `done`
 * its end ({ code, stdout, stderr }).
 */
function started(t, file, args) {
  const child = spawn(file, args.map(String), { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const lines = createInterface({ input: child.stdout })
  const iter = lines[Symbol.asyncIterator]()
  lines.on('line', (l) => (stdout += l + '\n'))
  const done = new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  return {
    child,
    done,
    async line() {
      const { value, done: ended } = await iter.next()
      if (ended) throw new Error(`${file} ended: ${(await done).stderr}`)
      return value
    },
  }
}

/** The temperature that producer.mjs publishes as reading `seq`. */
const celsius = (seq) => Math.round(200 + 50 * Math.sin(seq / 5)) / 10

/**
 * Checks the readings a consumer printed (`NAME: reading SEQ of COUNT: C °C`): whole (the
 * temperature of that reading), in order, and the last one; returns how many.
 */
function checkReadings(t, lines, name, count) {
  let previous = 0
  for (const line of lines) {
    const m = line.match(new RegExp(`^${name}: reading (\\d+) of ${count}: (-?[\\d.]+) °C(?: \\(skipped (\\d+)\\))?$`))
    t.truthy(m, `a whole reading: ${line}`)
    const seq = Number(m[1])
    t.true(seq > previous, `in order: ${line}`)
    t.is(Number(m[2]), celsius(seq), line)
    t.is(Number(m[3] ?? 0), seq - previous - 1, `skipped: the readings before it that it did not get: ${line}`)
    previous = seq
  }
  t.is(previous, count, `${name} got the last reading`)
  return lines.length
}

test('producer.mjs feeds consumer.mjs, dashboard.mjs and consumer.py (sysv_ipc, polling the layout) through one topic', async (t) => {
  if (!existsSync(PYTHON)) t.fail(`${PYTHON} does not exist: run \`bash scripts/setup-python.sh\` (npm test's pretest does)`)
  const topic = `guide-spec/${process.pid}/${Date.now()}`
  const COUNT = 20
  const producer = started(t, process.execPath, [example('producer.mjs'), topic, COUNT, 1])
  let id
  t.teardown(() => {
    try {
      if (id !== undefined) SharedMemory.removeById(id)
    } catch {
      // removed by the producer's close, as it should be
    }
  })
  const first = await producer.line()
  const m = first.match(/^producer: topic (\S+) is segment (\d+) with key (0x[0-9a-f]{8})$/)
  t.truthy(m, first)
  id = Number(m[2])
  t.is(m[1], topic)
  t.is(m[3], hexKey(topicKey(topic)))

  // Python and the dashboard first (neither registers: the producer does not wait for them), then
  // the consumer, which the producer waits for: all three read from the first reading on.
  const py = started(t, PYTHON, [example('consumer.py'), topic])
  t.is(await py.line(), `python: reading segment ${id}: 16 slots of up to 256 bytes`)
  const dashboard = started(t, process.execPath, [example('dashboard.mjs'), topic])
  t.is(await dashboard.line(), `dashboard: watching segment ${id}`)
  const consumer = started(t, process.execPath, [example('consumer.mjs'), topic])

  const [p, c, d, pr] = await Promise.all([py.done, consumer.done, dashboard.done, producer.done])
  for (const r of [p, c, d, pr]) t.is(r.code, 0, r.stderr)
  t.deepEqual(pr.stdout.trim().split('\n'), [first, 'producer: closed the topic'])

  const cl = c.stdout.trim().split('\n')
  t.is(cl[0], `consumer: subscribed to segment ${id}`)
  const got = checkReadings(t, cl.slice(1, -1), 'consumer', COUNT)
  t.is(cl.at(-1), `consumer: the producer closed the topic; skipped ${COUNT - got} in all`)

  const pl = p.stdout.trim().split('\n')
  const pyGot = checkReadings(t, pl.slice(1, -1), 'python', COUNT)
  t.is(pl.at(-1), `python: the producer closed the topic; skipped ${COUNT - pyGot} in all`)

  // The dashboard shows the newest reading when it looks: some, in order, ending with the last.
  const dl = d.stdout.trim().split('\n').slice(1)
  let previous = 0
  for (const line of dl) {
    const r = line.match(new RegExp(`^dashboard: now (-?[\\d.]+) °C \\(reading (\\d+) of ${COUNT}\\)$`))
    t.truthy(r, line)
    t.true(Number(r[2]) > previous)
    t.is(Number(r[1]), celsius(Number(r[2])))
    previous = Number(r[2])
  }
  t.is(previous, COUNT)
  t.throws(() => SharedMemory.statById(id), { code: 'EINVAL' }, 'the segment went with its last subscriber')
})

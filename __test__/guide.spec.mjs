// The programs of docs/guide.md's first steps (examples/guide/) do what the
// guide says: two processes share one segment through a key, and the CLI
// shows it while they run.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import test from 'ava'

import { SharedMemory, ftok } from '../dist/index.js'

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

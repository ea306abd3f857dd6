// Helpers of the CLI and interop tests: running commands, driving peer
// processes (Node, C, Python) over the line protocol of shm_peer.c, a private
// IPC namespace, and keys no other test uses.
import { spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { Semaphore, SharedMemory, listSegments, listSemaphores } from '../../dist/index.js'

export const HERE = dirname(fileURLToPath(import.meta.url))
export const ROOT = join(HERE, '..', '..')
export const CLI = join(ROOT, 'dist', 'src', 'cli.js')
/** Times in UTC for every child, so the outputs of ipcs and the CLI compare. */
export const ENV = { ...process.env, TZ: 'UTC', LC_ALL: 'C' }

/** Runs a program to its end: `{ code, signal, stdout, stderr }`. */
export function run(file, args = [], { input, env = ENV } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    spawned.add(child.pid)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

/** Runs `sysv-shm ARGS` in a child process. */
export const cli = (args, options) => run(process.execPath, [CLI, ...args], options)

/** A key in no use now, in a range of its own (0x5e......) so tests do not collide. */
export function freshKey() {
  const used = new Set(listSegments().map((s) => s.key >>> 0))
  for (;;) {
    const key = (0x5e00_0000 | randomInt(1, 0x100_0000)) >>> 0
    if (!used.has(key)) return key
  }
}

/** Pids of the processes these helpers started. */
const spawned = new Set()

/**
 * Registers a hook that fails the file if its tests left segments behind:
 * segments made by this process or a process these helpers started that did
 * not exist before (other files run in parallel and are not counted).
 */
export function noLeaks(test) {
  let before
  test.before(() => {
    before = new Set(listSegments().map((s) => s.id))
  })
  test.after.always('no segment left behind', (t) => {
    const ours = listSegments().filter(
      (s) => !before.has(s.id) && (s.creatorPid === process.pid || spawned.has(s.creatorPid)),
    )
    removeAll(ours.map((s) => s.id))
    t.deepEqual(ours.map((s) => s.id), [], 'segments left behind')
  })
}

/** Ids of the semaphore sets tests made or were told of (by a C or Python peer); see noSemaphoreLeaks. */
export const semaphoreSets = new Set()

/**
 * Registers a hook that fails the file if a semaphore set of {@link semaphoreSets} still
 * exists after its tests (it removes them first, so one failure does not leak).
 */
export function noSemaphoreLeaks(test) {
  test.after.always('no semaphore set left behind', (t) => {
    const left = listSemaphores().filter((s) => semaphoreSets.has(s.id))
    for (const s of left) {
      try {
        Semaphore.removeById(s.id)
      } catch {
        // removed meanwhile
      }
    }
    t.deepEqual(left.map((s) => s.id), [], 'semaphore sets left behind')
  })
}

/** Removes the semaphore sets of these ids, ignoring those already gone. */
export function removeSemaphores(ids) {
  for (const id of ids) {
    try {
      Semaphore.removeById(id)
    } catch {
      // already removed, as the test meant
    }
  }
}

export const hexKey = (key) => '0x' + (key >>> 0).toString(16).padStart(8, '0')

/** Removes the segments of these ids, ignoring those already gone. */
export function removeAll(ids) {
  for (const id of ids) {
    try {
      SharedMemory.removeById(id)
    } catch {
      // already removed, as the test meant
    }
  }
}

/**
 * A process that speaks the line protocol of shm_peer.c on stdin/stdout:
 * `await peer.call('read 0 5')` returns what follows `ok`, or throws an
 * Error with the `code` the peer answered.
 */
export class Peer {
  #child
  #lines
  #exit
  #stderr = ''

  constructor(file, args = [], { env = ENV } = {}) {
    this.#child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    spawned.add(this.#child.pid)
    this.#child.stderr.setEncoding('utf8').on('data', (d) => (this.#stderr += d))
    this.#exit = once(this.#child, 'exit')
    // A peer that died answers nothing: send() reports it with its stderr.
    this.#child.stdin.on('error', () => {})
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]()
  }

  get pid() {
    return this.#child.pid
  }

  /** Sends one command; resolves to `{ ok, value, code, message }`. */
  async send(line) {
    this.#child.stdin.write(line + '\n')
    const { value, done } = await this.#lines.next()
    if (done) throw new Error(`peer exited before answering ${JSON.stringify(line)}; stderr: ${this.#stderr}`)
    const [status, ...rest] = value.split(' ')
    if (status === 'ok') return { ok: true, value: rest.join(' ') }
    return { ok: false, code: rest[0], message: rest.slice(1).join(' ') }
  }

  /** Sends one command and returns its value; throws on `err`. */
  async call(line) {
    const r = await this.send(line)
    if (!r.ok) throw Object.assign(new Error(`${line}: ${r.code} ${r.message}`), { code: r.code })
    return r.value
  }

  /** `stat` as an object of numbers (key as its hex text, mode parsed as octal). */
  async stat() {
    const fields = (await this.call('stat')).split(' ').map((kv) => kv.split('='))
    const value = (k, v) => (k === 'key' ? v : k === 'mode' ? Number.parseInt(v, 8) : Number(v))
    return Object.fromEntries(fields.map(([k, v]) => [k, value(k, v)]))
  }

  /** Asks the peer to quit (it detaches), and waits for its exit code. */
  async close() {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return this.#child.exitCode
    this.#child.stdin.end('quit\n')
    const [code] = await this.#exit
    return code
  }
}

/**
 * Commands run in a private IPC namespace (`unshare --ipc`): nothing there is
 * seen from outside, and the kernel frees every segment in it when the last
 * of its processes exits, so tests can list and remove all of it.
 */
export class Namespace {
  #peer

  constructor() {
    this.#peer = new Peer('unshare', ['--ipc', process.execPath, join(HERE, 'ns-runner.mjs')])
  }

  /** Runs `argv` in the namespace to its end: `{ code, stdout, stderr }`. */
  async run(argv, input = '') {
    return JSON.parse(await this.#peer.call(JSON.stringify({ argv, input })))
  }

  /** Starts `argv` in the namespace and leaves it running with stdin open; returns its pid. */
  async start(argv, input = '') {
    return JSON.parse(await this.#peer.call(JSON.stringify({ argv, input, background: true }))).pid
  }

  /** Ends the stdin of a process of {@link Namespace.start} and waits for it: `{ code, stdout, stderr }`. */
  async stop(pid) {
    return JSON.parse(await this.#peer.call(JSON.stringify({ close: pid })))
  }

  /** Runs `sysv-shm ARGS` in the namespace. */
  cli(args) {
    return this.run([process.execPath, CLI, ...args])
  }

  close() {
    return this.#peer.close()
  }
}

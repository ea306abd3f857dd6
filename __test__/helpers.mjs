// Shared helpers of the ava suite: child processes that use the package,
// unique keys, and a check that a test leaves no segment behind.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import { IPC_PRIVATE, MessageQueue, listSegments } from '../dist/index.js'

/**
 * Calls `handle.remove()` when the test ends, also when an assertion fails (a handle already
 * removed is fine), so that no queue, set or segment outlives its test; returns the handle.
 */
export function removeOnTeardown(t, handle) {
  t.teardown(() => {
    try {
      handle.remove()
    } catch {}
  })
  return handle
}

/**
 * Ids of the message queues this test file made (ava runs each file in a process of its own),
 * for its check that none is left behind: newQueue adds to it, and so may a file for queues its
 * children made.
 */
export const madeQueues = new Set()

/** `MessageQueue.create(key, options)`, recorded in madeQueues and removed when the test ends. */
export function newQueue(t, key = IPC_PRIVATE, options) {
  const q = MessageQueue.create(key, options)
  madeQueues.add(q.id)
  return removeOnTeardown(t, q)
}

export const PKG = fileURLToPath(new URL('../dist/index.js', import.meta.url))

let counter = 0
/** A key unique to this process and call: 0x53PPPPCC. */
export function uniqueKey() {
  counter = (counter + 1) & 0xff
  return ((0x53 << 24) | ((process.pid & 0xffff) << 8) | counter) >>> 0
}

/** Ids of the segments that exist now. */
export function segmentIds() {
  return new Set(listSegments().map((s) => s.id))
}

/**
 * Registers hooks that fail the file if its tests left segments behind:
 * segments created by this process or its children that did not exist
 * before. (Other test files run in parallel and are not counted.)
 */
export function noLeaks(test) {
  let before
  test.before(() => {
    before = segmentIds()
  })
  test.after.always('no segment left behind', (t) => {
    const ours = listSegments().filter(
      (s) => !before.has(s.id) && (s.creatorPid === process.pid || children.has(s.creatorPid)),
    )
    // Clean up so one failure does not cascade into other files, then fail.
    for (const s of ours) spawnSync('ipcrm', ['-m', String(s.id)])
    t.deepEqual(ours.map((s) => s.id), [], 'segments left behind')
  })
}

const children = new Set()

/** Removes (if still possible) and detaches each handle: a test's cleanup. */
export function dispose(...handles) {
  for (const h of handles) {
    try {
      if (h.attached) h.remove()
    } catch {}
    h.detach()
  }
}

/** The header that child scripts start with. */
const preludeFor = (pkg) =>
  `import * as shm from ${JSON.stringify(pkg)};\nconst { SharedMemory, ShmError, ftok, listSegments, limits, IPC_PRIVATE } = shm;\n`
const prelude = preludeFor(PKG)

/** The command prefix that runs a program as the unprivileged user nobody (uid/gid 65534, no groups). */
export const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']

let publicCopy
/**
 * The package (dist/, package.json, the .node addon) copied where any user can
 * read it, for every child that runs as another user (AS_NOBODY): the checkout
 * may be in a folder only its owner can enter (a clone in `mktemp -d`, a
 * private home). Returns the copy's dist/index.js; made once per test file,
 * removed when the file's process exits.
 */
export function publicPkg() {
  if (publicCopy) return publicCopy
  const root = dirname(dirname(PKG))
  const dest = mkdtempSync(join(tmpdir(), 'sysv-shm-pkg-'))
  cpSync(join(root, 'dist'), join(dest, 'dist'), { recursive: true })
  cpSync(join(root, 'package.json'), join(dest, 'package.json'))
  for (const f of readdirSync(root)) if (f.endsWith('.node')) cpSync(join(root, f), join(dest, f))
  const open = (p) => {
    chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644)
    if (statSync(p).isDirectory()) for (const f of readdirSync(p)) open(join(p, f))
  }
  open(dest)
  chmodSync(join(dest, 'dist', 'src', 'cli.js'), 0o755)
  process.on('exit', () => rmSync(dest, { recursive: true, force: true }))
  publicCopy = join(dest, 'dist', 'index.js')
  return publicCopy
}

/** The CLI (dist/src/cli.js) of publicPkg()'s copy, for running `sysv-shm` as another user. */
export const publicCli = () => join(dirname(publicPkg()), 'src', 'cli.js')

/**
 * Runs ESM code in a new node process that has the package imported as above.
 * Resolves with { code, signal, stdout, stderr } when it exits.
 */
export function runNode(code, { env, argv = [], nodeArgs = [], wrap = [], pkg = PKG } = {}) {
  const args = [...wrap, process.execPath, ...nodeArgs, '--input-type=module', '-e', preludeFor(pkg) + code, ...argv]
  const child = spawn(args[0], args.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child.pid)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return once(child, 'close').then(([code, signal]) => ({ code, signal, stdout, stderr }))
}

/** Like runNode, but run as the unprivileged user nobody (uid/gid 65534); `wrap` goes before setpriv. */
export function runNodeAsNobody(code, opts = {}) {
  return runNode(code, {
    ...opts,
    pkg: publicPkg(),
    wrap: [...(opts.wrap ?? []), ...AS_NOBODY],
  })
}

/**
 * A long-lived child driven line by line: the code gets `next()` (awaits a
 * line from the parent) and `say(x)` (sends a JSON line to the parent).
 * Returns { send, next, exit, child }.
 */
export function startNode(code, { env, nodeArgs = [] } = {}) {
  const body = `${prelude}
import { createInterface } from 'node:readline';
const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value;
const say = (x) => process.stdout.write(JSON.stringify(x) + '\\n');
${code}
`
  const child = spawn(process.execPath, [...nodeArgs, '--input-type=module', '-e', body], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  children.add(child.pid)
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const rl = createInterface({ input: child.stdout })
  const it = rl[Symbol.asyncIterator]()
  const exited = once(child, 'close')
  return {
    child,
    send: (line) => child.stdin.write(line + '\n'),
    next: async () => {
      const r = await it.next()
      if (r.done) throw new Error(`child ended early: ${stderr}`)
      return JSON.parse(r.value)
    },
    exit: async () => {
      child.stdin.end()
      const [code, signal] = await exited
      return { code, signal, stderr }
    },
  }
}

/**
 * Runs a command and returns its stdout; throws with stderr on failure. In the C locale and UTC
 * (as interop/helpers.mjs's ENV), so what tests parse of ipcs and the like is the same everywhere.
 */
export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, ...opts })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return r.stdout
}

/**
 * How long the tests' polling helpers (eventually, until) wait for something that must happen
 * before they call it a hang. Not a timing assertion: on a quiet machine these things take
 * milliseconds, but with both cores busy (npm run test:loaded) a child's start-up alone took
 * seconds, and futex's "child asleep as a waiter" gave up after 20 s. Under ava's 2 min timeout.
 */
export const HANG_GUARD_MS = 60_000

/** Waits until fn() is truthy, polling; fails after `ms`. Not a timing assertion: a liveness bound. */
export async function eventually(fn, ms = HANG_GUARD_MS) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error('condition not reached in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

let namespaceWrap
/**
 * The command prefix that runs a child in a new, private IPC namespace: `unshare --ipc` (root),
 * else `unshare --user --map-root-user --ipc` (unprivileged user namespaces); null if neither
 * works here. Inside, `listSegments()` and `ipcs` see only the child's own segments, the kernel
 * limits (`/proc/sys/kernel/shm*`) are the child's to set, and everything is freed when the
 * namespace's last process exits.
 */
export function ipcNamespace() {
  if (namespaceWrap !== undefined) return namespaceWrap
  namespaceWrap = null
  for (const wrap of [['unshare', '--ipc'], ['unshare', '--user', '--map-root-user', '--ipc']]) {
    if (spawnSync(wrap[0], [...wrap.slice(1), 'true']).status === 0) {
      namespaceWrap = wrap
      break
    }
  }
  return namespaceWrap
}

/** Why a test that needs a private IPC namespace cannot run here (a failure, never a skip). */
export const NO_NAMESPACE =
  'these tests need a private IPC namespace: `unshare --ipc` (as root) or `unshare --user --map-root-user --ipc` ' +
  '(unprivileged user namespaces, kernel.unprivileged_userns_clone=1) must work; neither does here'

/** Like runNode, in a new private IPC namespace (see ipcNamespace); throws NO_NAMESPACE if none. */
export function runNodeInNamespace(code, opts = {}) {
  const wrap = ipcNamespace()
  if (!wrap) throw new Error(NO_NAMESPACE)
  return runNode(code, { ...opts, wrap: [...wrap, ...(opts.wrap ?? [])] })
}

let limitedRuns = 0
/**
 * Like runNodeAsNobody, but with RLIMIT_NPROC set to room for Node's own
 * threads plus `extra` (a child that must run out of threads), and as a uid of
 * its own rather than nobody: RLIMIT_NPROC counts every thread of the user on
 * the machine, so other children run as nobody meanwhile (this suite's other
 * files, another suite on the same machine) would use up the room and Node
 * itself would fail to start. The uid is unique to this test process and call,
 * and has no other processes.
 */
export function runNodeWithThreadLimit(code, { extra = 40, ...opts } = {}) {
  const uid = 1_000_000 + ((process.pid * 16 + limitedRuns++) % 1_000_000_000)
  return runNode(code, {
    ...opts,
    pkg: publicPkg(),
    wrap: [
      ...(opts.wrap ?? []),
      'prlimit',
      `--nproc=${threadsOfUser(uid) + extra}`,
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
    ],
  })
}

/** How many threads (of any process) run as uid `uid` now: what RLIMIT_NPROC counts. */
export function threadsOfUser(uid) {
  let n = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const real = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1]
      if (Number(real) === uid) n += readdirSync(`/proc/${pid}/task`).length
    } catch {
      // gone meanwhile
    }
  }
  return n
}

// Interop with C: a C program (interop/shm_peer.c, compiled here with cc)
// and this package use the same kernel segments: each side writes, the other
// reads; they agree on keys (ftok), on struct layout, on IPC_STAT, on atomic
// increments of one counter, and on removal by ipcrm. And the same semaphore
// sets: each side sees the other's operations, waits for the other, and both
// guard one counter in one segment with one semaphore.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { IPC_PRIVATE, Semaphore, SharedMemory, ftok } from '../dist/index.js'

import { AS_NOBODY, HANG_GUARD_MS } from './helpers.mjs'

import {
  HERE,
  Peer,
  cli,
  freshKey,
  hexKey,
  noLeaks,
  noSemaphoreLeaks,
  removeAll,
  removeSemaphores,
  run,
  semaphoreSets,
} from './interop/helpers.mjs'

noLeaks(test)
noSemaphoreLeaks(test)

// Built in a temp dir that user nobody can reach too, wherever the checkout is.
const buildDir = mkdtempSync(join(tmpdir(), 'sysv-shm-c-'))
chmodSync(buildDir, 0o755)
const PEER = join(buildDir, 'shm_peer')

test.before('compile the C peer with cc', () => {
  try {
    execFileSync('cc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', PEER, join(HERE, 'shm_peer.c')], {
      stdio: 'pipe',
    })
  } catch (e) {
    throw new Error(
      `could not compile __test__/interop/shm_peer.c with cc (scripts/setup.sh installs gcc): ${e.stderr ?? e.message}`,
    )
  }
})
test.after.always(() => rmSync(buildDir, { recursive: true, force: true }))

/** A C peer, quit at the end of the test. */
function cPeer(t, argv = []) {
  const peer = argv.length ? new Peer(argv[0], [...argv.slice(1), PEER]) : new Peer(PEER)
  t.teardown(() => peer.close())
  return peer
}

test.serial('Node creates by key and writes; C opens the key, reads, writes; Node reads; IPC_STAT agrees', async (t) => {
  const key = freshKey()
  const shm = SharedMemory.create(key, 4096, { mode: 0o640 })
  t.teardown(() => {
    removeAll([shm.id])
    shm.detach()
  })
  shm.write('written by node\0')
  const c = cPeer(t)
  t.is(Number(await c.call(`open ${hexKey(key)}`)), shm.id)
  t.is(await c.call('read 0 16'), Buffer.from('written by node\0').toString('hex'))

  await c.call(`write 100 ${Buffer.from('written by C').toString('hex')}`)
  // Zero-copy: the Buffer shows the C write without any call.
  t.is(shm.buffer.toString('utf8', 100, 112), 'written by C')
  t.is(shm.read(100, 12).toString(), 'written by C')

  const cs = await c.stat()
  const ns = shm.stat()
  t.deepEqual(cs, {
    key: hexKey(key), size: 4096, mode: 0o640, nattch: 2, cpid: process.pid, lpid: ns.lastPid,
    uid: ns.uid, gid: ns.gid, cuid: ns.cuid, cgid: ns.cgid, dest: 0,
  })
  t.is(ns.lastPid, c.pid, 'the last shmat was the C side')
  t.is(ns.attachCount, 2)
})

test.serial('C creates an IPC_PRIVATE segment; Node attaches it by id; both write and read; C removes it', async (t) => {
  const c = cPeer(t)
  const id = Number(await c.call(`create ${IPC_PRIVATE} 1000 600`))
  t.teardown(() => removeAll([id]))
  await c.call(`write 0 ${Buffer.from('from C').toString('hex')}`)
  const shm = SharedMemory.openById(id)
  t.teardown(() => shm.detach())
  t.is(shm.key, 0)
  t.is(shm.size, 1000)
  t.is(shm.read(0, 6).toString(), 'from C')
  shm.write('from Node', 500)
  t.is(await c.call('read 500 9'), Buffer.from('from Node').toString('hex'))
  t.like(shm.stat(), { creatorPid: c.pid, attachCount: 2, removed: false })

  await c.call('remove')
  t.like(shm.stat(), { removed: true, attachCount: 2 })
  shm.buffer[0] = 0x46 // 'F': both still share the memory after removal
  t.is(await c.call('read 0 1'), '46')
  await c.call('detach')
  shm.detach()
  t.throws(() => SharedMemory.statById(id), { code: 'EINVAL' })
})

test('a C struct and Buffer/DataView agree on the layout: native little-endian, natural alignment', async (t) => {
  t.is(new Uint8Array(new Uint16Array([1]).buffer)[0], 1, 'this test assumes a little-endian machine (x86-64, arm64)')
  const shm = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => {
    shm.remove()
    shm.detach()
  })
  const c = cPeer(t)
  await c.call(`attach ${shm.id}`)

  // struct sample { uint32_t magic; int32_t count; double value; char name[16]; } at offset 8.
  const b = shm.buffer
  b.writeUInt32LE(0xfeedbeef, 8)
  b.writeInt32LE(-42, 12)
  b.writeDoubleLE(Math.PI, 16)
  b.write('from node\0', 24)
  t.is(await c.call('getstruct 8'), `magic=0xfeedbeef count=-42 value=3.1415926535897931 name=from node`)

  await c.call('putstruct 32 0x12345678 2147483647 -0.5 from-c')
  const view = new DataView(b.buffer, b.byteOffset, b.length)
  t.is(view.getUint32(32, true), 0x12345678)
  t.is(view.getInt32(36, true), 2147483647)
  t.is(view.getFloat64(40, true), -0.5)
  t.is(b.toString('latin1', 48, 64).replace(/\0+$/, ''), 'from-c')
})

test('C (__atomic_fetch_add) and Node (Atomics.add) increment one int32 at the same time and lose no update', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => {
    shm.remove()
    shm.detach()
  })
  const c = cPeer(t)
  await c.call(`attach ${shm.id}`)
  const cells = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 2)
  const N = 2_000_000
  // The C side waits for the start flag (cell 1), then adds; Node raises the
  // flag and adds at once, so the two loops overlap.
  const waited = c.call('wait32 4 1')
  const added = c.call(`add32 0 ${N}`)
  Atomics.store(cells, 1, 1)
  for (let i = 0; i < N; i++) Atomics.add(cells, 0, 1)
  await waited
  await added
  t.is(Atomics.load(cells, 0), 2 * N)
  t.is(await c.call('read 0 4'), Buffer.from(new Int32Array([2 * N]).buffer).toString('hex'))
})

test('ftok: C, the API and the CLI compute the same key for the same path and project id', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-ftok-c-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const c = cPeer(t)
  for (const [path, proj] of [[dir, 1], [dir, 65], [dir, 255], ['/', 7], [HERE, 0x5a]]) {
    const fromC = await c.call(`ftok ${path} ${proj}`)
    t.is(hexKey(ftok(path, proj)), fromC, `${path} ${proj}`)
    t.is((await cli(['ftok', path, String(proj)])).stdout, fromC + '\n')
  }
  t.is((await c.send(`ftok ${join(dir, 'missing')} 1`)).code, 'ENOENT')
})

test.serial('ipcrm from outside: the C side and Node both see the segment removed and still share it', async (t) => {
  const key = freshKey()
  const c = cPeer(t)
  const id = Number(await c.call(`create ${hexKey(key)} 64 600`))
  t.teardown(() => removeAll([id]))
  const shm = SharedMemory.open(key)
  t.teardown(() => shm.detach())
  t.is((await run('ipcrm', ['-M', hexKey(key)])).code, 0)
  t.like(await c.stat(), { dest: 1, key: '0x00000000', nattch: 2 })
  t.like(shm.stat(), { removed: true, key: 0, attachCount: 2 })
  t.is((await c.send(`open ${hexKey(key)}`)).code, 'ENOENT')
  t.throws(() => SharedMemory.open(key), { code: 'ENOENT' })
  shm.write('still here')
  t.is(await c.call('read 0 10'), Buffer.from('still here').toString('hex'))
})

test.serial("modes are the kernel's: a C program run as another user is refused a 0600 segment and let into a 0606 one", async (t) => {
  const closed = SharedMemory.create(freshKey(), 64, { mode: 0o600 })
  const open = SharedMemory.create(freshKey(), 64, { mode: 0o606 })
  t.teardown(() => {
    removeAll([closed.id, open.id])
    closed.detach()
    open.detach()
  })
  const nobody = AS_NOBODY
  const c1 = cPeer(t, nobody)
  t.is((await c1.send(`open ${hexKey(closed.key)}`)).code, 'EACCES')
  const c2 = cPeer(t, nobody)
  t.is(Number(await c2.call(`open ${hexKey(open.key)}`)), open.id)
  await c2.call(`write 0 ${Buffer.from('nobody').toString('hex')}`)
  t.is(open.read(0, 6).toString(), 'nobody')
  t.is(open.stat().lastPid, c2.pid)
})

/** Waits until `fn()` is true, polling: a liveness bound, not a timing assertion. */
async function until(fn, what, ms = HANG_GUARD_MS) {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

test.serial('one segment and one semaphore set shared with C: both add 50,000 to one counter under the semaphore, none is lost', async (t) => {
  // As C programs do it: one ftok-style key names both the segment and the semaphore set.
  const key = freshKey()
  const c = cPeer(t)
  const shmId = Number(await c.call(`create ${hexKey(key)} 4096 600`))
  const semId = Number(await c.call(`semcreate ${hexKey(key)} 1 600 1`))
  semaphoreSets.add(semId)
  t.teardown(() => {
    removeAll([shmId])
    removeSemaphores([semId])
  })
  const shm = SharedMemory.open(key)
  t.teardown(() => shm.detach())
  const lock = Semaphore.open(key)
  t.is(shm.id, shmId)
  t.is(lock.id, semId)
  t.is(lock.value, 1)

  // The counter at offset 0, read and written plainly (not with Atomics), with a little work in
  // between on both sides: only the semaphore keeps each read-add-write whole, and without it
  // updates are lost. Cell 1 is the start flag. Node holds the lock when C starts, and lets go
  // only once C is asleep on it: C's loop is then running when Node's begins (the two overlap,
  // whatever the scheduling), and C has had to wait at least once.
  const cells = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 2)
  const N = 50_000
  lock.acquire()
  const started = c.call('wait32 4 1')
  const added = c.call(`lockedadd32 0 ${N} 0`)
  Atomics.store(cells, 1, 1)
  await started
  await until(() => lock.waiters().forIncrease === 1, 'C asleep on the unit Node holds')
  t.is(cells[0], 0, 'C has added nothing yet')
  lock.release()
  let waited = 0
  let work = 0
  for (let i = 0; i < N; i++) {
    if (!lock.tryAcquire()) {
      waited++
      lock.acquire()
    }
    const v = cells[0]
    for (let k = 0; k < 100; k++) work += k
    cells[0] = v + 1
    lock.release()
  }
  const cWaited = Number(await added)
  t.log(`takes that had to wait: C ${cWaited}, Node ${waited} (of ${N} each)`)
  t.true(cWaited >= 1, 'C waited for the unit Node held')
  t.is(work, N * 4950, 'the busy work ran: 0 + 1 + ... + 99 per add')
  t.is(cells[0], 2 * N)
  t.is(await c.call('read 0 4'), Buffer.from(new Int32Array([2 * N]).buffer).toString('hex'))
  t.is(lock.value, 1, 'both gave every unit back')
  t.is(lock.waiters().forIncrease, 0)
})

test.serial('a semaphore set of C seen from Node and back: values, waits both ways, IPC_STAT, removal wakes C with EIDRM', async (t) => {
  const key = freshKey()
  const c = cPeer(t)
  const id = Number(await c.call(`semcreate ${hexKey(key)} 2 640 3`))
  semaphoreSets.add(id)
  t.teardown(() => removeSemaphores([id]))
  const sem = Semaphore.open(key)
  t.is(sem.id, id)
  t.deepEqual(sem.values(), [3, 3])
  // C set the values with SETVAL and made no semop: otime is unset, which Node shows as null.
  const st = sem.stat()
  t.like(st, { key, count: 2, mode: 0o640, opTime: null })
  t.deepEqual(await c.call('semstat'), `key=${hexKey(key)} nsems=2 mode=0640 uid=${st.uid} gid=${st.gid} cuid=${st.cuid} cgid=${st.cgid} otime=0`)

  // Node operates, C sees it; C operates, Node sees it; the last pid is the other side's.
  t.true(sem.tryAcquire(2, { index: 1, undo: false }))
  t.is(await c.call('semval 1'), '1')
  t.is((await c.call('semcounts 1')).split(' ')[2], String(process.pid))
  await c.call('semop 0 -3')
  t.is(sem.getValue(0), 0)
  t.is(sem.waiters(0).lastPid, c.pid)
  t.not((await c.call('semstat')).split(' ').at(-1), 'otime=0', 'a semop sets otime')
  t.is(sem.stat().opTime instanceof Date, true)

  // Node waits (off the event loop) for C to release.
  const pending = sem.acquireAsync(1, { timeoutMs: 20_000 })
  await until(async () => (await c.call('semcounts 0')).startsWith('1 '), 'C to see Node waiting (GETNCNT 1)')
  await c.call('semop 0 1')
  t.true(await pending)
  t.is(sem.getValue(0), 0)

  // C waits (blocked in semop) for Node to release.
  const cTakes = c.call('semop 1 -2')
  await until(() => sem.waiters(1).forIncrease === 1, 'Node to see C waiting (GETNCNT 1)')
  sem.release(1, { index: 1, undo: false })
  await cTakes
  t.is(sem.getValue(1), 0)

  // C waits again; Node removes the set: C's semop fails with EIDRM.
  const cWaits = c.send('semop 1 -1')
  await until(() => sem.waiters(1).forIncrease === 1, 'C to wait again')
  sem.remove()
  t.like(await cWaits, { ok: false, code: 'EIDRM' })
  t.is((await c.send('semval 0')).code, 'EINVAL')
})

// Interop with Python: sysv_ipc from PyPI (in .venv/, made by
// scripts/setup-python.sh, which `npm test` runs first as its pretest) and this package use the same
// kernel segments: each side creates by key, the other opens it, both write
// and read; they agree on ftok keys, struct layout, IPC_STAT and removal.
// And semaphores, both ways: sysv_ipc.Semaphore made by Python and used by
// Node, a Semaphore made by Node and used by Python, each side seeing the
// other's values and waits, and both guarding one counter in one segment.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { IPC_PRIVATE, Semaphore, SharedMemory, ftok } from '../dist/index.js'

import {
  HERE,
  Peer,
  ROOT,
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

const PYTHON = join(ROOT, '.venv', 'bin', 'python')
const PEER = join(HERE, 'peer.py')

/** Why the Python side cannot run here, or null if it can. */
function missing() {
  if (!existsSync(PYTHON)) return `${PYTHON} does not exist`
  try {
    execFileSync(PYTHON, ['-c', 'import sysv_ipc'], { stdio: 'pipe' })
    return null
  } catch (e) {
    return `${PYTHON} cannot import sysv_ipc: ${String(e.stderr ?? e.message).trim()}`
  }
}

const why = missing()

// Never skipped: where the Python side cannot run (no python3, no venv, no
// sysv_ipc), this fails with the reason; `npm test`'s pretest makes the venv
// (installing python3 where it can) and says why when it cannot.
if (why) {
  test('interop-python: the Python environment is ready', (t) => {
    t.fail(`${why}. Run \`bash scripts/setup-python.sh\` (it makes .venv/ with sysv_ipc; npm test's pretest runs it and says above why it could not).`)
  })
} else {
  register()
}

function register() {
  /** A Python peer (sysv_ipc), quit at the end of the test. */
  function pyPeer(t) {
    const peer = new Peer(PYTHON, [PEER])
    t.teardown(() => peer.close())
    return peer
  }

  test.serial('Python creates by key and writes; Node opens the key, reads, writes; Python reads', async (t) => {
    const key = freshKey()
    const py = pyPeer(t)
    const id = Number(await py.call(`create ${hexKey(key)} 1000 640`))
    t.teardown(() => removeAll([id]))
    await py.call(`write 0 ${Buffer.from('written by python').toString('hex')}`)

    const shm = SharedMemory.open(key)
    t.teardown(() => shm.detach())
    t.is(shm.id, id)
    t.is(shm.size, 1000)
    t.is(shm.read(0, 17).toString(), 'written by python')
    shm.write('written by node', 500)
    t.is(await py.call('read 500 15'), Buffer.from('written by node').toString('hex'))

    const s = shm.stat()
    t.like(s, { key, mode: 0o640, creatorPid: py.pid, attachCount: 2, removed: false })
    t.deepEqual(await py.stat(), {
      key: hexKey(key), size: 1000, mode: 0o640, nattch: 2, cpid: py.pid, lpid: process.pid,
      uid: s.uid, gid: s.gid, cuid: s.cuid, cgid: s.cgid, dest: 0,
    })
  })

  test.serial('Node creates by key and writes; Python opens the key, reads, writes; Node reads', async (t) => {
    const key = freshKey()
    const shm = SharedMemory.create(key, 4096, { mode: 0o600 })
    t.teardown(() => {
      removeAll([shm.id])
      shm.detach()
    })
    shm.write('hello from node')
    const py = pyPeer(t)
    t.is(Number(await py.call(`open ${key}`)), shm.id)
    t.is(await py.call('read 0 15'), Buffer.from('hello from node').toString('hex'))
    await py.call(`write 4000 ${Buffer.from('hello from python').toString('hex')}`)
    // Zero-copy: the Buffer shows the Python write without any call.
    t.is(shm.buffer.toString('utf8', 4000, 4017), 'hello from python')
    t.like(await py.stat(), { size: 4096, mode: 0o600, nattch: 2, cpid: process.pid, lpid: py.pid })
  })

  test('Python attaches an IPC_PRIVATE segment of Node by id', async (t) => {
    const shm = SharedMemory.create(IPC_PRIVATE, 64)
    t.teardown(() => {
      shm.remove()
      shm.detach()
    })
    const py = pyPeer(t)
    t.is(Number(await py.call(`attach ${shm.id}`)), shm.id)
    shm.write(Buffer.from([1, 2, 3]))
    t.is(await py.call('read 0 3'), '010203')
  })

  test('Python struct.pack("<Iid16s") and Buffer/DataView agree on the layout', async (t) => {
    const shm = SharedMemory.create(IPC_PRIVATE, 64)
    t.teardown(() => {
      shm.remove()
      shm.detach()
    })
    const py = pyPeer(t)
    await py.call(`attach ${shm.id}`)
    const b = shm.buffer
    b.writeUInt32LE(0xfeedbeef, 0)
    b.writeInt32LE(-42, 4)
    b.writeDoubleLE(Math.PI, 8)
    b.write('from node\0', 16)
    t.is(await py.call('getstruct 0'), `magic=0xfeedbeef count=-42 value=${Math.PI} name=from node`)
    await py.call('putstruct 32 0x12345678 -7 2.5e-300 from-python')
    t.is(b.readUInt32LE(32), 0x12345678)
    t.is(b.readInt32LE(36), -7)
    t.is(b.readDoubleLE(40), 2.5e-300)
    t.is(b.toString('latin1', 48, 64).replace(/\0+$/, ''), 'from-python')
  })

  test('ftok: sysv_ipc.ftok and the API compute the same key', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-ftok-py-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const py = pyPeer(t)
    for (const [path, proj] of [[dir, 1], [dir, 65], [dir, 255], ['/', 7]]) {
      t.is(await py.call(`ftok ${path} ${proj}`), hexKey(ftok(path, proj)), `${path} ${proj}`)
    }
  })

  test.serial('removal: by Python seen by Node, by ipcrm seen by Python; both still share the memory', async (t) => {
    const key = freshKey()
    const py = pyPeer(t)
    const id = Number(await py.call(`create ${key} 64 600`))
    t.teardown(() => removeAll([id]))
    const shm = SharedMemory.open(key)
    t.teardown(() => shm.detach())
    await py.call('remove')
    t.like(shm.stat(), { removed: true, key: 0, attachCount: 2 })
    t.throws(() => SharedMemory.open(key), { code: 'ENOENT' })
    shm.write('after removal')
    t.is(await py.call('read 0 13'), Buffer.from('after removal').toString('hex'))

    const key2 = freshKey()
    const other = SharedMemory.create(key2, 64)
    t.teardown(() => {
      removeAll([other.id])
      other.detach()
    })
    const py2 = pyPeer(t)
    await py2.call(`open ${key2}`)
    t.is((await run('ipcrm', ['-m', String(other.id)])).code, 0)
    t.like(await py2.stat(), { dest: 1, nattch: 2 })
    t.is((await py2.send(`open ${key2}`)).code, 'ExistentialError')
  })

  /** Waits until `fn()` is true, polling: a liveness bound, not a timing assertion. */
  async function until(fn, what, ms = 10_000) {
    const end = Date.now() + ms
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** `semstat` of the Python peer as numbers. */
  async function semstat(py) {
    const fields = (await py.call('semstat')).split(' ').map((kv) => kv.split('='))
    return Object.fromEntries(fields.map(([k, v]) => [k, k === 'mode' ? Number.parseInt(v, 8) : Number(v)]))
  }

  test.serial('Python creates a sysv_ipc.Semaphore, Node opens it by key: each side acquires, releases and waits for the other', async (t) => {
    const key = freshKey()
    const py = pyPeer(t)
    const id = Number(await py.call(`semcreate ${hexKey(key)} 1 600`))
    semaphoreSets.add(id)
    t.teardown(() => removeSemaphores([id]))
    const sem = Semaphore.open(key)
    t.is(sem.id, id)
    t.is(sem.value, 1)
    // sysv_ipc sets the value with SETVAL and makes no semop: otime is unset, null in Node.
    t.like(sem.stat(), { key, count: 1, mode: 0o600, opTime: null })

    // Node takes the unit: Python sees 0 and cannot take it.
    t.true(sem.acquire(1, { undo: false }))
    t.like(await semstat(py), { value: 0, lastpid: process.pid })
    t.is(await py.call('semtry'), '0')

    // Python waits in acquire(); Node sees it waiting, releases, and Python has it.
    const pyTakes = py.call('semacquire')
    await until(() => sem.waiters().forIncrease === 1, 'Python to wait (GETNCNT 1)')
    sem.release(1, { undo: false })
    await pyTakes
    t.is(sem.value, 0)
    t.is(sem.waiters().lastPid, py.pid)
    t.true(sem.stat().opTime instanceof Date, 'a semop sets otime')

    // Node waits off the event loop; Python releases; Node has it.
    const nodeTakes = sem.acquireAsync(1, { undo: false, timeoutMs: 20_000 })
    await until(async () => (await semstat(py)).ncnt === 1, 'Python to see Node waiting')
    await py.call('semrelease')
    t.true(await nodeTakes)
    t.like(await semstat(py), { value: 0, ncnt: 0, lastpid: process.pid })
    sem.release(2, { undo: false })
    t.is(await py.call('semtry'), '1')
    t.like(await semstat(py), { value: 1 })

    // Python removes it: Node's handle then fails as for any removed set.
    await py.call('semremove')
    t.throws(() => sem.value, { code: 'EINVAL' })
    t.throws(() => Semaphore.open(key), { code: 'ENOENT' })
  })

  test.serial('Node creates a Semaphore, Python opens it by key: values, waits both ways, IPC_STAT; removal by Node ends a waiting Python', async (t) => {
    const key = freshKey()
    const sem = Semaphore.create(key, { initial: 0, mode: 0o640 })
    semaphoreSets.add(sem.id)
    t.teardown(() => removeSemaphores([sem.id]))
    const py = pyPeer(t)
    t.is(Number(await py.call(`semopen ${key}`)), sem.id)
    const st = sem.stat()
    t.deepEqual(await semstat(py), {
      value: 0, ncnt: 0, zcnt: 0, lastpid: process.pid, mode: 0o640,
      uid: st.uid, gid: st.gid, cuid: st.cuid, cgid: st.cgid,
      // Node's create runs a no-op semop, so an opener knows the value is set.
      otime: Math.floor(st.opTime.getTime() / 1000),
    })

    // Python waits; Node releases.
    const pyTakes = py.call('semacquire')
    await until(() => sem.waiters().forIncrease === 1, 'Python to wait')
    sem.release(1, { undo: false })
    await pyTakes
    t.is(sem.value, 0)
    t.is(sem.waiters().lastPid, py.pid)

    // Python releases 3; Node sees 3 and takes 2.
    for (let i = 0; i < 3; i++) await py.call('semrelease')
    t.is(sem.value, 3)
    t.true(sem.tryAcquire(2, { undo: false }))
    t.like(await semstat(py), { value: 1, lastpid: process.pid })
    t.is(await py.call('semtry'), '1')
    t.is(await py.call('semtry'), '0')

    // Python waits again; Node removes the set: Python's acquire fails.
    const pyWaits = py.send('semacquire')
    await until(() => sem.waiters().forIncrease === 1, 'Python to wait again')
    sem.remove()
    const r = await pyWaits
    t.false(r.ok)
    t.is(r.code, 'ExistentialError', r.message)
  })

  test.serial('Python and Node each add 5,000 to one counter in one segment under one semaphore: none is lost', async (t) => {
    const shm = SharedMemory.create(IPC_PRIVATE, 64)
    t.teardown(() => {
      shm.remove()
      shm.detach()
    })
    const key = freshKey()
    const lock = Semaphore.create(key, { initial: 1 })
    semaphoreSets.add(lock.id)
    t.teardown(() => removeSemaphores([lock.id]))
    const py = pyPeer(t)
    await py.call(`attach ${shm.id}`)
    await py.call(`semopen ${key}`)
    const N = 5_000
    // Cell 0 is the counter, cell 1 the start flag, so that the two loops overlap.
    const cells = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 2)
    const pyStarts = py.call('wait32 4 1')
    const pyAdds = py.call(`lockedadd32 0 ${N}`)
    Atomics.store(cells, 1, 1)
    let waited = 0
    for (let i = 0; i < N; i++) {
      if (!lock.tryAcquire()) {
        waited++
        lock.acquire()
      }
      const v = cells[0] // plain, not atomic: only the semaphore keeps it whole
      cells[0] = v + 1
      lock.release()
    }
    await pyStarts
    const pyWaited = Number(await pyAdds)
    t.log(`takes that had to wait: Python ${pyWaited}, Node ${waited} (of ${N} each)`)
    t.is(cells[0], 2 * N)
    t.is(await py.call('read 0 4'), Buffer.from(new Int32Array([2 * N]).buffer).toString('hex'))
    t.is(lock.value, 1)
  })
}

// shm.sharedBuffer: a SharedArrayBuffer over the mapping, made with
// node_api_create_external_sharedarraybuffer where the runtime exports it
// (Node 22.23.5, 24.19, 26.12 and newer; Bun 1.4.4), else ERR_SHM_NO_SHARED_ARRAY_BUFFER
// (Node 18 and 20). Which case applies is decided here apart from the code
// under test: whether the running node binary names the function at all.
// `npm run test:runtimes` runs this file under Node 18, 22, 24 and 26.
import { readFileSync } from 'node:fs'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setImmediate as tick } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ShmError, listSegments } from '../dist/index.js'
import { HANG_GUARD_MS, noLeaks, runNode } from './helpers.mjs'

noLeaks(test)

const SYMBOL = 'node_api_create_external_sharedarraybuffer'
/** Whether this node exports the call (its dynamic symbol names are in the binary's text). */
const EXPORTED = readFileSync(process.execPath).includes(SYMBOL)

// A garbage collector for this process (ava runs it without --expose-gc): a sharedBuffer made
// here keeps its segment attached until it is collected, also after detach() and remove().
v8.setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')

/**
 * A new segment, removed at the end of the test even if the test detached the handle; the
 * teardown waits (collecting garbage) until the kernel has freed it, which happens once every
 * sharedBuffer made of it here is collected (the test's own locals are gone by then).
 */
function segment(t, size = 4096) {
  const shm = SharedMemory.create(IPC_PRIVATE, size)
  const { id } = shm
  t.teardown(async () => {
    try {
      SharedMemory.removeById(id)
    } catch {}
    shm.detach()
    await until(() => {
      gc()
      return !listSegments().some((s) => s.id === id)
    }, `segment ${id} to be freed`)
  })
  return shm
}

/** Polls `fn` on the event loop until it returns true; fails after HANG_GUARD_MS (a hang guard, not a timing bound). */
async function until(fn, what) {
  const end = Date.now() + HANG_GUARD_MS
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await tick()
  }
}

/** Another handle of segment `id`, detached at the end of the test (made here: see startWorker). */
function attach(t, id, options) {
  const shm = SharedMemory.openById(id, options)
  t.teardown(() => shm.detach())
  return shm
}

/**
 * A worker thread running `src`, terminated at the end of the test; `reply` is its first message.
 * (Made here, not in the test: a teardown closure made in the test would keep the test's
 * variables, and so its SharedArrayBuffer, alive, and the segment with it.)
 */
function startWorker(t, src) {
  const worker = new Worker(src, { eval: true })
  t.teardown(() => worker.terminate())
  const reply = new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  return { worker, reply }
}

test('sharedBuffer on a read-only attachment: ERR_SHM_READ_ONLY, never a signal', (t) => {
  const shm = segment(t)
  const ro = attach(t, shm.id, { readOnly: true })
  const err = t.throws(() => ro.sharedBuffer, { instanceOf: ShmError })
  t.is(err.code, 'ERR_SHM_READ_ONLY')
  t.regex(err.message, /read-only/)
  t.true(ro.attached)
})

test('sharedBuffer where external buffers are refused (Electron, simulated): ERR_SHM_NO_SHARED_ARRAY_BUFFER, copy API still works', async (t) => {
  const shm = segment(t)
  shm.write('peer', 0)
  const r = await runNode(
    `const s = SharedMemory.openById(${shm.id});
    let code, message;
    try { s.sharedBuffer } catch (e) { code = e.code; message = e.message }
    console.log(JSON.stringify({ code, message, read: s.read(0, 4).toString() }));
    s.detach();`,
    { env: { SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS: '1' } },
  )
  t.is(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.is(out.code, 'ERR_SHM_NO_SHARED_ARRAY_BUFFER')
  t.regex(out.message, /refuses external ArrayBuffers/)
  t.is(out.read, 'peer')
})

test('sharedBuffer after detach(): ERR_SHM_DETACHED', (t) => {
  const shm = segment(t)
  const other = SharedMemory.openById(shm.id)
  other.detach()
  t.is(t.throws(() => other.sharedBuffer, { instanceOf: ShmError }).code, 'ERR_SHM_DETACHED')
})

if (!EXPORTED) {
  test(`sharedBuffer on ${process.version}, which lacks ${SYMBOL}: ERR_SHM_NO_SHARED_ARRAY_BUFFER naming the versions that have it (the worker, Atomics and GC tests of this file need the call: test:runtimes runs them on Node 22/24/26)`, (t) => {
    const shm = segment(t)
    const err = t.throws(() => shm.sharedBuffer, { instanceOf: ShmError })
    t.is(err.code, 'ERR_SHM_NO_SHARED_ARRAY_BUFFER')
    t.true(err.message.includes(SYMBOL), err.message)
    t.regex(err.message, /Node\.js 22\.23\.5, 24\.19, 26\.12 or newer and Bun 1\.4\.4 have it/)
    t.true(err.message.includes(`this is Node.js ${process.version}`), err.message)
    // Nothing stays half-made: the handle works and detaches at once.
    shm.write('ok', 0)
    t.is(shm.buffer.toString('latin1', 0, 2), 'ok')
    t.is(t.throws(() => shm.sharedBuffer).code, 'ERR_SHM_NO_SHARED_ARRAY_BUFFER')
  })
} else {
  test(`sharedBuffer on ${process.version}, which has ${SYMBOL}: one SharedArrayBuffer over the mapping, the same object each time`, (t) => {
    const shm = segment(t)
    const sab = shm.sharedBuffer
    t.true(sab instanceof SharedArrayBuffer)
    t.is(sab.byteLength, shm.size)
    t.is(shm.sharedBuffer, sab)
    new Uint8Array(sab)[10] = 0xab
    t.is(shm.buffer[10], 0xab, 'a write through the SharedArrayBuffer is in the zero-copy Buffer')
    shm.buffer[11] = 0xcd
    t.is(new Uint8Array(sab)[11], 0xcd)
    t.is(shm.read(10, 2).toString('hex'), 'abcd', 'and in the mapping the copy API reads')
  })

  test('sharedBuffer posted to a worker: both threads write and read the one mapping (no copy); Atomics.wait in the worker is woken by Atomics.notify in main', async (t) => {
    const shm = segment(t)
    const sab = shm.sharedBuffer
    const i32 = new Int32Array(sab)
    const { worker, reply } = startWorker(
      t,
      `const { parentPort } = require('node:worker_threads');
      parentPort.once('message', (sab) => {
        const u8 = new Uint8Array(sab), i32 = new Int32Array(sab);
        u8[100] = 42;                          // the worker's write
        Atomics.store(i32, 0, 1);
        Atomics.notify(i32, 0);
        const woke = Atomics.wait(i32, 1, 0);  // until main notifies; i32[1] stays 0
        parentPort.postMessage({ woke, seen: u8[101], flag: Atomics.load(i32, 2) });
      });`,
    )
    worker.postMessage(sab)
    await until(() => Atomics.load(i32, 0) === 1, "the worker's flag")
    t.is(shm.read(100, 1)[0], 42, "the worker's write is in the segment (read by the copy API, not through the SharedArrayBuffer)")
    shm.write(Buffer.from([99]), 101) // main's write, through the copy API
    Atomics.store(i32, 2, 7)
    // Notify until one waiter is woken: the worker is then asleep in Atomics.wait on this memory.
    let woken = 0
    await until(() => (woken = Atomics.notify(i32, 1, 1)) === 1, 'a waiter in the worker')
    t.is(woken, 1)
    t.deepEqual(await reply, { woke: 'ok', seen: 99, flag: 7 })
  })

  test('a second process sees writes made through sharedBuffer, and its writes show in it', async (t) => {
    const shm = segment(t)
    const u8 = new Uint8Array(shm.sharedBuffer)
    u8.set(Buffer.from('from the parent'), 0)
    const r = await runNode(
      `const s = SharedMemory.openById(${shm.id});
      const seen = s.read(0, 15).toString();
      new Uint8Array(s.sharedBuffer).set(Buffer.from('child'), 64);
      s.detach();
      console.log(JSON.stringify({ seen }));`,
    )
    t.is(r.code, 0, r.stderr)
    t.is(JSON.parse(r.stdout).seen, 'from the parent')
    t.is(Buffer.from(u8.subarray(64, 69)).toString(), 'child')
  })

  test('detach() with live sharedBuffer views never crashes: the handle is detached at once, the segment stays attached until the SharedArrayBuffer is collected', async (t) => {
    const shm = segment(t)
    const r = await runNode(
      `const s = SharedMemory.openById(${shm.id});
      let view = new Uint8Array(s.sharedBuffer);
      const count = () => SharedMemory.statById(${shm.id}).attachCount;
      const before = count();
      s.detach();
      let code;
      try { s.read(0, 1) } catch (e) { code = e.code }
      view[0] = 5; // still mapped: this must not crash
      const afterDetach = count();
      const back = view[0];
      view = null;
      let afterGc = afterDetach;
      for (let i = 0; i < 2000 && afterGc === afterDetach; i++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 5));
        afterGc = count();
      }
      console.log(JSON.stringify({ before, attached: s.attached, code, afterDetach, back, afterGc }));`,
      { nodeArgs: ['--expose-gc'] },
    )
    t.is(r.code, 0, r.stderr)
    t.is(r.signal, null)
    const out = JSON.parse(r.stdout)
    t.is(out.before, 2, 'this process and the child')
    t.false(out.attached)
    t.is(out.code, 'ERR_SHM_DETACHED')
    t.is(out.afterDetach, 2, 'detach() left the segment attached: a SharedArrayBuffer still reached it')
    t.is(out.back, 5)
    t.is(shm.buffer[0], 5, "the child's write after detach() is in the segment")
    t.is(out.afterGc, 1, 'the shmdt ran once the SharedArrayBuffer was collected')
  })

  test('detach() in main while a worker still writes through its copy of sharedBuffer: no crash, and the worker outlives the handle', async (t) => {
    const shm = segment(t)
    const sab = shm.sharedBuffer
    const i32 = new Int32Array(sab)
    const { worker, reply } = startWorker(
      t,
      `const { parentPort } = require('node:worker_threads');
      parentPort.on('message', ({ sab }) => {
        const i32 = new Int32Array(sab);
        Atomics.store(i32, 0, 1);
        Atomics.notify(i32, 0);
        Atomics.wait(i32, 1, 0);  // until main has detached
        for (let i = 0; i < 1000; i++) Atomics.add(i32, 3, 1);
        parentPort.postMessage(Atomics.load(i32, 3));
      });`,
    )
    worker.postMessage({ sab })
    await until(() => Atomics.load(i32, 0) === 1, "the worker's flag")
    const other = attach(t, shm.id, { zeroCopy: false })
    shm.detach()
    t.false(shm.attached)
    Atomics.store(i32, 1, 1)
    Atomics.notify(i32, 1)
    t.is(await reply, 1000)
    t.is(other.read(12, 4).readInt32LE(0), 1000, "the worker's writes after detach() reached the segment")
  })
}

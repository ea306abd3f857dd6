// Lifetime of attachments: garbage collection detaches when the handle and
// every view are gone (not before), worker threads attach and terminate
// safely, and the Electron branch (external buffers refused) keeps the copy
// API working against the live segment.
import test from 'ava'

import { IPC_PRIVATE, SharedMemory } from '../dist/index.js'
import { dispose, noLeaks, runNode } from './helpers.mjs'

noLeaks(test)

// Serial: a child being spawned holds a copy of this process's attachments
// between fork and exec, which would make another test's attach counts racy.

const settle = `async function collect() {
  for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
}`

test.serial('GC detaches a handle that became unreachable, but not while a view of its buffer lives', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  const r = await runNode(
    `${settle}
    let a = SharedMemory.openById(${shm.id});
    let view = new Uint8Array(a.buffer.buffer, a.buffer.byteOffset, 16);
    a = null;
    await collect();
    const withView = SharedMemory.statById(${shm.id}).attachCount;
    view[0] = 7; // the memory is still mapped: this must not crash
    view = null;
    await collect();
    const afterAll = SharedMemory.statById(${shm.id}).attachCount;
    let b = SharedMemory.openById(${shm.id}, { zeroCopy: false });
    b = null;
    await collect();
    console.log(JSON.stringify({ withView, afterAll, copyMode: SharedMemory.statById(${shm.id}).attachCount }));
    `,
    { nodeArgs: ['--expose-gc'] },
  )
  t.is(r.code, 0, r.stderr)
  t.is(r.signal, null)
  t.deepEqual(JSON.parse(r.stdout), { withView: 2, afterAll: 1, copyMode: 1 })
  t.is(shm.read(0, 1)[0], 7)
})

test.serial('100 handles dropped without detach are all detached by GC', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  const r = await runNode(
    `${settle}
    for (let i = 0; i < 100; i++) SharedMemory.openById(${shm.id}).buffer[i] = i;
    const before = SharedMemory.statById(${shm.id}).attachCount;
    await collect();
    console.log(before > 1, SharedMemory.statById(${shm.id}).attachCount);
    `,
    { nodeArgs: ['--expose-gc'] },
  )
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout.trim(), 'true 1')
  t.is(shm.read(99, 1)[0], 99)
})

test.serial('worker threads: several attach at once, write, and are terminated; no crash, the attach count returns', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  const r = await runNode(`
    import { Worker } from 'node:worker_threads';
    const id = ${shm.id};
    const code = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const { SharedMemory } = require(workerData.pkg);
      const s = SharedMemory.openById(workerData.id);
      s.buffer[workerData.i] = workerData.i + 1;
      const keep = new Uint8Array(s.buffer.buffer); // a view alive at termination
      parentPort.postMessage('attached');
      setInterval(() => keep[100 + workerData.i]++, 1);
    \`;
    const workers = [0, 1, 2, 3].map((i) => new Worker(code, { eval: true, execArgv: [], workerData: { id, i, pkg: process.argv[1] } }));
    await Promise.all(workers.map((w) => new Promise((res, rej) => { w.once('message', res); w.once('error', rej); })));
    const during = SharedMemory.statById(id).attachCount;
    await Promise.all(workers.map((w) => w.terminate()));
    const after = SharedMemory.statById(id).attachCount;
    const mine = SharedMemory.openById(id);
    console.log(JSON.stringify({ during, after, bytes: [...mine.read(0, 4)] }));
    mine.detach();
  `, { argv: [new URL('../dist/index.js', import.meta.url).pathname] })
  t.is(r.code, 0, r.stderr)
  t.is(r.signal, null)
  t.deepEqual(JSON.parse(r.stdout), { during: 5, after: 1, bytes: [1, 2, 3, 4] })
})

test.serial('worker threads: detach inside a worker, then terminate it', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  const r = await runNode(`
    import { Worker } from 'node:worker_threads';
    const code = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const { SharedMemory } = require(workerData.pkg);
      const s = SharedMemory.openById(workerData.id);
      const b = s.buffer;
      s.detach();
      parentPort.postMessage(b.length);
    \`;
    const w = new Worker(code, { eval: true, execArgv: [], workerData: { id: ${shm.id}, pkg: process.argv[1] } });
    const len = await new Promise((res) => w.once('message', res));
    await w.terminate();
    console.log(len, SharedMemory.statById(${shm.id}).attachCount);
  `, { argv: [new URL('../dist/index.js', import.meta.url).pathname] })
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout.trim(), '0 1')
})

test.serial('Electron branch (external buffers refused, simulated): zeroCopy false, buffer throws, the copy API works on the live segment', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4096)
  t.teardown(() => dispose(shm))
  shm.write('from the parent')
  const r = await runNode(
    `
    const out = {};
    const s = SharedMemory.openById(${shm.id});
    out.zeroCopy = s.zeroCopy;
    try { s.buffer } catch (e) { out.bufferError = [e instanceof ShmError, e.code] }
    out.read = s.read(0, 15).toString();
    out.written = s.write('from the child!', 100);
    const into = Buffer.alloc(4);
    out.readInto = s.readInto(into, 0);
    out.count = s.stat().attachCount;
    const p = SharedMemory.create(IPC_PRIVATE, 64);
    out.createZeroCopy = p.zeroCopy;
    p.write('x'); out.privRead = p.read(0, 1).toString();
    p.remove(); p.detach();
    s.detach();
    out.afterDetach = SharedMemory.statById(${shm.id}).attachCount;
    try { s.read() } catch (e) { out.detachedError = e.code }
    console.log(JSON.stringify(out));
    `,
    { env: { SYSV_SHM_SIMULATE_NO_EXTERNAL_BUFFERS: '1' } },
  )
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), {
    zeroCopy: false,
    bufferError: [true, 'ERR_SHM_NO_ZERO_COPY'],
    read: 'from the parent',
    written: 15,
    readInto: 4,
    count: 2,
    createZeroCopy: false,
    privRead: 'x',
    afterDetach: 1,
    detachedError: 'ERR_SHM_DETACHED',
  })
  t.is(shm.read(100, 15).toString(), 'from the child!')
})

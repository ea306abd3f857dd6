// Two and more real processes sharing one segment: data both ways, attach
// counts, and the removal rules of the seed (mark while attached, key 0,
// refused opens by key, freed at the last detach).
import test from 'ava'

import { SharedMemory, ShmError, listSegments } from '../dist/index.js'
import { dispose, eventually, noLeaks, runNode, sh, startNode, uniqueKey } from './helpers.mjs'

noLeaks(test)

// Serial: a child being spawned holds a copy of this process's attachments
// between fork and exec, which would make another test's attach counts racy.

test.serial('a child process opens by key, reads what the parent wrote, and writes back', async (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 4096)
  t.teardown(() => dispose(shm))
  shm.write('from parent')
  const r = await runNode(`
    const s = SharedMemory.open(${key});
    console.log(s.read(0, 11).toString());
    s.write('from child!', 100);
    console.log(s.stat().attachCount);
    s.detach();
  `)
  t.is(r.code, 0, r.stderr)
  const [seen, count] = r.stdout.trim().split('\n')
  t.is(seen, 'from parent')
  t.is(Number(count), 2)
  t.is(shm.read(100, 11).toString(), 'from child!')
  t.is(shm.stat().attachCount, 1)
  t.not(shm.stat().lastPid, process.pid)
})

test.serial('zero-copy: a write through one process\'s buffer is seen in the other\'s buffer with no call', async (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 64)
  t.teardown(() => dispose(shm))
  const i32 = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 16)
  const child = startNode(`
    const s = SharedMemory.open(${key});
    const a = new Int32Array(s.buffer.buffer, s.buffer.byteOffset, 16);
    say('ready');
    // Wait (spinning on shared memory) for the parent's value, answer with its double.
    while (Atomics.load(a, 0) === 0) {}
    Atomics.store(a, 1, Atomics.load(a, 0) * 2);
    await next();
    s.detach();
  `)
  t.is(await child.next(), 'ready')
  Atomics.store(i32, 0, 21)
  await eventually(() => Atomics.load(i32, 1) !== 0)
  t.is(Atomics.load(i32, 1), 42)
  child.send('done')
  t.is((await child.exit()).code, 0)
})

test.serial('attach count counts every process; a process that exits without detaching is detached by the kernel', async (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 64)
  t.teardown(() => dispose(shm))
  const kids = [0, 1, 2].map(() =>
    startNode(`const s = SharedMemory.open(${key}); say(s.stat().attachCount); await next(); process.exit(0);`),
  )
  for (const k of kids) await k.next()
  t.is(shm.stat().attachCount, 4)
  for (const k of kids) k.send('exit')
  for (const k of kids) t.is((await k.exit()).code, 0)
  t.is(shm.stat().attachCount, 1)
})

test.serial('remove() while another process is attached: marked, key 0 in stat() and ipcs, open(key) ENOENT elsewhere, the holder keeps going, freed at its detach', async (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 4096)
  const id = shm.id
  const holder = startNode(`
    const s = SharedMemory.open(${key});
    say('attached');
    await next();
    // After the removal: read what the parent wrote, write an answer.
    const seen = { text: s.read(0, 5).toString(), removed: s.stat().removed, key: s.stat().key };
    s.write('alive');
    say(seen);
    await next();
    s.detach();
    say('detached');
    await next();
  `)
  t.teardown(() => holder.child.kill())
  t.is(await holder.next(), 'attached')
  shm.write('hello')
  shm.remove()
  shm.detach()
  const st = SharedMemory.statById(id)
  t.true(st.removed)
  t.is(st.key, 0)
  t.is(st.attachCount, 1)
  // ipcs prints the key as 0x00000000 and the status "dest".
  const row = sh('ipcs', ['-m']).split('\n').find((l) => l.trim().split(/\s+/)[1] === String(id))
  t.truthy(row)
  t.regex(row, /^0x00000000\s/)
  t.regex(row, /dest/)
  // A third process cannot open it by key any more.
  const third = await runNode(`
    try { SharedMemory.open(${key}); console.log('opened') }
    catch (e) { console.log(e instanceof ShmError, e.code) }
  `)
  t.is(third.stdout.trim(), 'true ENOENT')
  // The holder keeps reading and writing.
  holder.send('go')
  t.deepEqual(await holder.next(), { text: 'hello', removed: true, key: 0 })
  const peek = SharedMemory.openById(id)
  t.is(peek.read(0, 5).toString(), 'alive')
  peek.detach()
  // Freed when the last process detaches.
  holder.send('detach')
  t.is(await holder.next(), 'detached')
  t.false(listSegments().some((s) => s.id === id))
  const err = t.throws(() => SharedMemory.statById(id), { instanceOf: ShmError })
  t.true(['EINVAL', 'EIDRM'].includes(err.code))
  holder.send('exit')
  t.is((await holder.exit()).code, 0)
})

test.serial('a segment outlives the process that created it, until removed', async (t) => {
  const key = uniqueKey()
  const r = await runNode(`const s = SharedMemory.create(${key}, 100); s.write('left behind'); console.log(s.id);`)
  t.is(r.code, 0, r.stderr)
  const id = Number(r.stdout.trim())
  const shm = SharedMemory.open(key)
  t.teardown(() => dispose(shm))
  t.is(shm.id, id)
  t.is(shm.read(0, 11).toString(), 'left behind')
  t.is(shm.stat().attachCount, 1)
  t.not(shm.stat().creatorPid, process.pid)
})

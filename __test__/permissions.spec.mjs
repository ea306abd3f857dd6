// Permission bits are enforced by the kernel. Root bypasses them, so the
// other side runs as the unprivileged user nobody (uid/gid 65534).
import test from 'ava'

import { IPC_PRIVATE, SharedMemory } from '../dist/index.js'
import { dispose, noLeaks, runNodeAsNobody, uniqueKey } from './helpers.mjs'

noLeaks(test)

const attempt = (id, opts) => `
  const out = {};
  for (const [name, f] of Object.entries({
    rw: () => SharedMemory.openById(${id}),
    ro: () => SharedMemory.openById(${id}, { readOnly: true }),
  })) {
    try { const s = f(); out[name] = s.readOnly ? s.read(0, 2).toString() : (s.write('nb'), 'wrote'); s.detach(); }
    catch (e) { out[name] = e.code + ':' + e.syscall; }
  }
  ${opts?.extra ?? ''}
  console.log(JSON.stringify(out));
`

test('the default mode 0600 keeps other users out: EACCES from shmat, for reading and writing', async (t) => {
  const shm = SharedMemory.create(uniqueKey(), 64)
  t.teardown(() => dispose(shm))
  t.is(shm.stat().mode, 0o600)
  const r = await runNodeAsNobody(attempt(shm.id))
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), { rw: 'EACCES:shmat', ro: 'EACCES:shmat' })
})

test('0644 lets others attach read-only and refuses a read-write attach', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64, { mode: 0o644 })
  t.teardown(() => dispose(shm))
  shm.write('ok')
  const r = await runNodeAsNobody(attempt(shm.id))
  t.deepEqual(JSON.parse(r.stdout), { rw: 'EACCES:shmat', ro: 'ok' })
})

test('0640 with the group set to nobody\'s: the group may read, not write', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64, { mode: 0o640 })
  t.teardown(() => dispose(shm))
  shm.write('gr')
  const before = await runNodeAsNobody(attempt(shm.id))
  t.deepEqual(JSON.parse(before.stdout), { rw: 'EACCES:shmat', ro: 'EACCES:shmat' })
  shm.set({ gid: 65534 })
  const after = await runNodeAsNobody(attempt(shm.id))
  t.deepEqual(JSON.parse(after.stdout), { rw: 'EACCES:shmat', ro: 'gr' })
})

test('set({ mode }) takes effect for new attaches; 0666 lets others write', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => dispose(shm))
  shm.set({ mode: 0o666 })
  const r = await runNodeAsNobody(attempt(shm.id))
  t.deepEqual(JSON.parse(r.stdout), { rw: 'wrote', ro: 'nb' })
  t.is(shm.read(0, 2).toString(), 'nb')
})

test('only the owner or creator may remove or change a segment: EPERM for others', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64, { mode: 0o666 })
  t.teardown(() => dispose(shm))
  const r = await runNodeAsNobody(`
    const s = SharedMemory.openById(${shm.id});
    const out = {};
    try { s.remove(); out.remove = 'removed' } catch (e) { out.remove = e.code + ':' + e.syscall }
    try { s.set({ mode: 0o600 }); out.set = 'set' } catch (e) { out.set = e.code }
    try { SharedMemory.removeById(${shm.id}); out.byId = 'removed' } catch (e) { out.byId = e.code }
    s.detach();
    console.log(JSON.stringify(out));
  `)
  t.deepEqual(JSON.parse(r.stdout), { remove: 'EPERM:shmctl', set: 'EPERM', byId: 'EPERM' })
  t.false(shm.stat().removed)
})

test('a segment handed to nobody (IPC_SET uid) can be removed by nobody', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => dispose(shm))
  shm.set({ uid: 65534 })
  const r = await runNodeAsNobody(`SharedMemory.removeById(${shm.id}); console.log('ok')`)
  t.is(r.stdout.trim(), 'ok', r.stderr)
  t.true(shm.stat().removed)
})

test('an owner who set mode 0 (no read permission, so no IPC_STAT) can set it back: segments and semaphore sets', async (t) => {
  // As nobody, since root bypasses the read check that made set() fail with EACCES.
  const r = await runNodeAsNobody(`
    const { Semaphore } = shm;
    const out = {};
    const seg = SharedMemory.create(IPC_PRIVATE, 64);
    const sem = Semaphore.create(IPC_PRIVATE, { initial: 2 });
    try {
      for (const [name, h, stat] of [['segment', seg, () => SharedMemory.statById(seg.id)], ['semaphore', sem, () => sem.stat()]]) {
        h.set({ mode: 0 });
        try { stat(); out[name + 'Locked'] = 'readable' } catch (e) { out[name + 'Locked'] = e.code }
        h.set({ mode: 0o640 });
        out[name + 'Mode'] = stat().mode.toString(8);
      }
      out.value = sem.value;
      out.uid = seg.stat().uid;
    } finally {
      seg.remove(); seg.detach(); sem.remove();
    }
    console.log(JSON.stringify(out));
  `)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout), {
    segmentLocked: 'EACCES',
    segmentMode: '640',
    semaphoreLocked: 'EACCES',
    semaphoreMode: '640',
    value: 2,
    uid: 65534,
  })
})

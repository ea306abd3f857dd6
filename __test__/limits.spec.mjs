// The kernel's limits, hit for real: each test runs a child in its own IPC
// namespace (unshare --ipc), where kernel.shmmni, kernel.shmmax and
// kernel.shmall belong to that namespace alone, sets one low, and checks
// that running into it gives a ShmError with the errno, the syscall and a
// message that names the limit; that limits() reports the namespace's
// values; and that nothing is left. Without a namespace these tests fail
// with a message saying why: they are never skipped.
import { readFileSync } from 'node:fs'

import test from 'ava'

import { NO_NAMESPACE, ipcNamespace, runNodeInNamespace } from './helpers.mjs'

const prelude = `
import { writeFileSync } from 'node:fs';
const sysctl = (name, value) => writeFileSync('/proc/sys/kernel/' + name, String(value));
const attempt = (f) => {
  try { const s = f(); return { ok: s.size } }
  catch (e) { return { error: [e instanceof ShmError, e.code, e.errno, e.syscall], message: e.message } }
};
const made = [];
const keep = (s) => (made.push(s), s);
const cleanup = () => { for (const s of made) { if (s.attached) { s.remove(); s.detach(); } } return listSegments().length; };
`

async function inNamespace(t, code) {
  const r = await runNodeInNamespace(prelude + code)
  t.is(r.signal, null, r.stderr)
  t.is(r.code, 0, r.stderr)
  return JSON.parse(r.stdout)
}

test('a private IPC namespace is available (unshare --ipc): these tests and the isolated CI run need one', (t) => {
  t.truthy(ipcNamespace(), NO_NAMESPACE)
})

test('kernel.shmmni: one segment too many is ENOSPC from shmget, naming kernel.shmmni; freeing one makes room', async (t) => {
  const out = await inNamespace(t, `
    sysctl('shmmni', 4);
    const out = { maxSegments: limits().maxSegments };
    for (let i = 0; i < 4; i++) keep(SharedMemory.create(i % 2 ? IPC_PRIVATE : 0x1000 + i, 4096));
    out.fifth = attempt(() => SharedMemory.create(IPC_PRIVATE, 4096));
    out.fifthByKey = attempt(() => SharedMemory.create(0x2000, 64));
    out.usedSegments = limits().usedSegments;
    made[0].remove(); made[0].detach();
    out.afterFree = attempt(() => keep(SharedMemory.create(IPC_PRIVATE, 4096)));
    out.left = cleanup();
    console.log(JSON.stringify(out));
  `)
  t.is(out.maxSegments, 4)
  t.is(out.usedSegments, 4)
  t.deepEqual(out.fifth.error, [true, 'ENOSPC', 28, 'shmget'])
  t.regex(out.fifth.message, /kernel\.shmmni/)
  t.regex(out.fifth.message, /size 4096/)
  t.deepEqual(out.fifthByKey.error, [true, 'ENOSPC', 28, 'shmget'])
  t.regex(out.fifthByKey.message, /key 0x00002000/)
  t.deepEqual(out.afterFree, { ok: 4096 })
  t.is(out.left, 0)
})

test('kernel.shmmax: a segment one byte larger is EINVAL from shmget, naming kernel.shmmax and the size; so is growing an existing key', async (t) => {
  const out = await inNamespace(t, `
    sysctl('shmmax', 65536);
    const out = { maxSegmentSize: limits().maxSegmentSize };
    out.atLimit = attempt(() => keep(SharedMemory.create(IPC_PRIVATE, 65536)));
    out.above = attempt(() => SharedMemory.create(IPC_PRIVATE, 65537));
    keep(SharedMemory.create(0x3000, 100));
    out.larger = attempt(() => SharedMemory.create(0x3000, 200, { exclusive: false }));
    out.left = cleanup();
    console.log(JSON.stringify(out));
  `)
  t.is(out.maxSegmentSize, 65536)
  t.deepEqual(out.atLimit, { ok: 65536 })
  t.deepEqual(out.above.error, [true, 'EINVAL', 22, 'shmget'])
  t.regex(out.above.message, /size 65537/)
  t.regex(out.above.message, /kernel\.shmmax/)
  t.deepEqual(out.larger.error, [true, 'EINVAL', 22, 'shmget'])
  t.regex(out.larger.message, /larger than the existing segment/)
  t.is(out.left, 0)
})

test('kernel.shmall: pages beyond the total are ENOSPC from shmget, naming kernel.shmall; exactly the total fits', async (t) => {
  const out = await inNamespace(t, `
    sysctl('shmall', 4);
    const page = limits().pageSize;
    const out = { maxTotalPages: limits().maxTotalPages };
    out.three = attempt(() => keep(SharedMemory.create(IPC_PRIVATE, 3 * page)));
    out.two = attempt(() => SharedMemory.create(IPC_PRIVATE, page + 1));
    out.one = attempt(() => keep(SharedMemory.create(IPC_PRIVATE, page)));
    out.usedPages = limits().usedPages;
    out.more = attempt(() => SharedMemory.create(IPC_PRIVATE, 1));
    out.left = cleanup();
    console.log(JSON.stringify({ ...out, page }));
  `)
  t.is(out.maxTotalPages, 4)
  t.deepEqual(out.three, { ok: 3 * out.page })
  t.deepEqual(out.two.error, [true, 'ENOSPC', 28, 'shmget'])
  t.regex(out.two.message, /kernel\.shmall/)
  t.deepEqual(out.one, { ok: out.page })
  t.is(out.usedPages, 4)
  t.deepEqual(out.more.error, [true, 'ENOSPC', 28, 'shmget'])
  t.is(out.left, 0)
})

test('ENOMEM: shmat beyond the address space the process may use (RLIMIT_AS) is a ShmError, and the process goes on', async (t) => {
  const out = await inNamespace(t, `
    import { spawnSync } from 'node:child_process';
    import { readFileSync } from 'node:fs';
    const big = keep(SharedMemory.create(IPC_PRIVATE, 1 << 30, { zeroCopy: false, noReserve: true }));
    const vsz = Number(/VmSize:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const prlimit = (soft) => spawnSync('prlimit', ['--pid', String(process.pid), '--as=' + soft + ':']).status;
    const out = { lowered: prlimit(vsz + (256 << 20)) };
    out.attach = attempt(() => SharedMemory.openById(big.id));
    out.raised = prlimit('unlimited');
    out.again = attempt(() => keep(SharedMemory.openById(big.id, { zeroCopy: false })));
    out.left = cleanup();
    console.log(JSON.stringify(out));
  `)
  t.is(out.lowered, 0, 'prlimit (util-linux) could lower RLIMIT_AS')
  t.deepEqual(out.attach.error, [true, 'ENOMEM', 12, 'shmat'])
  t.regex(out.attach.message, /address space/)
  t.is(out.raised, 0)
  t.deepEqual(out.again, { ok: 1 << 30 })
  t.is(out.left, 0)
})

test('ENOMEM: a segment larger than memory and swap is refused by shmget under the overcommit policy (vm.overcommit_memory 0 or 2)', async (t) => {
  const policy = Number(readFileSync('/proc/sys/vm/overcommit_memory', 'utf8'))
  const mem = readFileSync('/proc/meminfo', 'utf8')
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(mem)[1])
  const size = 2 * (kib('MemTotal') + kib('SwapTotal')) * 1024
  const out = await inNamespace(t, `
    const out = { huge: attempt(() => keep(SharedMemory.create(IPC_PRIVATE, ${size}, { zeroCopy: false }))) };
    out.left = cleanup();
    console.log(JSON.stringify(out));
  `)
  if (policy === 1) {
    // "Always overcommit": the kernel accepts any size and fails only when pages are touched.
    t.deepEqual(out.huge, { ok: size })
  } else {
    t.deepEqual(out.huge.error, [true, 'ENOMEM', 12, 'shmget'])
    t.regex(out.huge.message, new RegExp(`size ${size}.*not enough memory`))
  }
  t.is(out.left, 0)
})

test('kernel.sem: the most semaphores in a set is SEMMSL as the kernel tells it, not a number written down (32000 is only its default)', async (t) => {
  const out = await inNamespace(t, `
    const { Semaphore } = shm;
    const sets = [];
    const make = (count) => {
      try { const s = Semaphore.create(IPC_PRIVATE, { count }); sets.push(s); return { ok: s.stat().count } }
      catch (e) { return { error: [e.constructor.name, e.code], message: e.message } }
    };
    const out = {};
    sysctl('sem', '40000 1024000000 500 32000');
    out.above32000 = make(32001);
    sysctl('sem', '8 1024000000 500 32000');
    out.atLimit = make(8);
    out.aboveLimit = make(9);
    for (const s of sets) s.remove();
    console.log(JSON.stringify(out));
  `)
  t.deepEqual(out.above32000, { ok: 32001 })
  t.deepEqual(out.atLimit, { ok: 8 })
  t.deepEqual(out.aboveLimit.error, ['RangeError', 'ERR_INVALID_ARG_VALUE'])
  t.regex(out.aboveLimit.message, /count must be from 1 to 8 \(SEMMSL, kernel\.sem\), got 9/)
})

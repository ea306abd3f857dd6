// The same kernel objects as C programs and util-linux see them: a C peer
// compiled with cc, `ipcs -m` rows, and `ipcrm -m` run from outside.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { SharedMemory, ShmError, listSegments } from '../dist/index.js'
import { dispose, noLeaks, sh, uniqueKey } from './helpers.mjs'

noLeaks(test)

const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-c-'))
const peer = join(dir, 'shm_peer')
test.before(() => {
  sh('cc', ['-O2', '-Wall', '-Werror', '-o', peer, fileURLToPath(new URL('fixtures/shm_peer.c', import.meta.url))])
})
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const hex = (key) => '0x' + key.toString(16).padStart(8, '0')

test('C creates and writes, Node opens by key and reads; Node writes, C reads', (t) => {
  const key = uniqueKey()
  const id = Number(sh(peer, ['create', hex(key), '4096', 'written by C']).trim())
  const shm = SharedMemory.open(key)
  t.teardown(() => dispose(shm))
  t.is(shm.id, id)
  t.is(shm.size, 4096)
  t.is(shm.read(0, 12).toString(), 'written by C')
  shm.write('written by Node')
  t.is(sh(peer, ['read', hex(key), '15']).trim(), 'written by Node')
})

test('Node creates, C opens by the same key, writes; Node sees it in its zero-copy buffer', (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 100)
  t.teardown(() => dispose(shm))
  sh(peer, ['write', String(key), 'hello from C'])
  t.is(shm.buffer.toString('utf8', 0, 12), 'hello from C')
  t.is(sh(peer, ['nattch', String(shm.id)]).trim(), '1')
})

/** The row of `ipcs -m` for an id: key, shmid, owner, perms, bytes, nattch, status. */
function ipcsRow(id) {
  const line = sh('ipcs', ['-m']).split('\n').find((l) => l.trim().split(/\s+/)[1] === String(id))
  if (!line) return null
  const [key, shmid, owner, perms, bytes, nattch, ...status] = line.trim().split(/\s+/)
  return { key, shmid: Number(shmid), owner, perms, bytes: Number(bytes), nattch: Number(nattch), status: status.join(' ') }
}

test('ipcs -m shows our segment with the same key, id, owner, permissions, size and attach count', (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 12345, { mode: 0o640 })
  t.teardown(() => dispose(shm))
  const second = SharedMemory.open(key)
  t.teardown(() => second.detach())
  t.deepEqual(ipcsRow(shm.id), {
    key: hex(key),
    shmid: shm.id,
    owner: userInfo().username,
    perms: '640',
    bytes: 12345,
    nattch: 2,
    status: '',
  })
  const fromList = listSegments().find((s) => s.id === shm.id)
  t.is(fromList.attachCount, 2)
  shm.lock()
  t.regex(ipcsRow(shm.id).status, /locked/)
  shm.unlock()
})

test('ipcrm -m from outside while attached is seen by stat() (removed, key 0); the data stays; gone at the last detach', (t) => {
  const key = uniqueKey()
  const shm = SharedMemory.create(key, 64)
  const id = shm.id
  t.teardown(() => dispose(shm))
  shm.write('before ipcrm')
  sh('ipcrm', ['-m', String(id)])
  const st = shm.stat()
  t.true(st.removed)
  t.is(st.key, 0)
  t.is(ipcsRow(id).status, 'dest')
  t.is(t.throws(() => SharedMemory.open(key), { instanceOf: ShmError }).code, 'ENOENT')
  t.is(shm.read(0, 12).toString(), 'before ipcrm')
  shm.detach()
  t.is(ipcsRow(id), null)
})

test('ipcrm -m of a segment nobody has attached frees it at once: openById then fails', (t) => {
  const shm = SharedMemory.create(uniqueKey(), 64)
  const id = shm.id
  shm.detach()
  sh('ipcrm', ['-m', String(id)])
  const err = t.throws(() => SharedMemory.openById(id), { instanceOf: ShmError })
  t.is(err.syscall, 'shmat')
  t.true(['EINVAL', 'EIDRM'].includes(err.code))
  t.is(ipcsRow(id), null)
})

test('a segment removed by C (IPC_RMID) while Node holds it reads as removed in Node', (t) => {
  const shm = SharedMemory.create(uniqueKey(), 64)
  t.teardown(() => dispose(shm))
  sh(peer, ['remove', String(shm.id)])
  t.true(shm.stat().removed)
  shm.write('still writable')
  t.is(shm.read(0, 14).toString(), 'still writable')
})

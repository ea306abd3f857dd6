// The `sysv-shm` command line, run as a real child process and checked
// against what ipcs, ipcrm and hexdump say about the same segments.
//
// Tests that compare attach counts are serial: spawning a child forks this
// process, and a fork holds this process's attachments until it execs.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { IPC_PRIVATE, SharedMemory, ftok } from '../dist/index.js'

import { AS_NOBODY, publicCli } from './helpers.mjs'
import { CLI, ENV, HERE, Namespace, Peer, ROOT, cli, freshKey, hexKey, noLeaks, removeAll, run } from './interop/helpers.mjs'

noLeaks(test)

const NODE_PEER = join(HERE, 'peer.mjs')
const nodePeer = () => new Peer(process.execPath, [NODE_PEER])
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))

/** The JSON fields of a segment, as docs/guide.md documents them. */
const SEGMENT_FIELDS = [
  'id', 'key', 'keyHex', 'size', 'mode', 'modeOctal', 'perms', 'uid', 'user', 'gid', 'group',
  'cuid', 'creatorUser', 'cgid', 'creatorGroup', 'creatorPid', 'lastPid', 'attachCount',
  'attachTime', 'detachTime', 'changeTime', 'removed', 'locked',
]

/** The rows of `ipcs -m`, by shmid. */
function ipcsRows(text) {
  const rows = new Map()
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/)
    if (!/^0x[0-9a-f]{8}$/.test(w[0])) continue
    rows.set(Number(w[1]), { key: w[0], owner: w[2], perms: w[3], bytes: Number(w[4]), nattch: Number(w[5]), status: w.slice(6).join(' ') })
  }
  return rows
}

/** A time as `ipcs -t` prints it under LC_ALL=C: `Dec  1 19:21:13`, `Nov 27 04:24:25` or `Not set`. */
const IPCS_TIME = /Not set|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d/g

/** Rows of a table whose first column is the shmid (`ipcs -m -c/-p/-t`), as arrays of words. */
function ipcsById(text) {
  const rows = new Map()
  for (const line of text.split('\n')) {
    if (/^\d+\s/.test(line)) rows.set(Number(line.split(/\s+/)[0]), line)
  }
  return rows
}

/** `ipcs -m -i ID`: its fields, times as ms since the epoch (ipcs runs with TZ=UTC). */
function ipcsInfo(text) {
  const field = (name) => text.match(new RegExp(`\\b${name}=(\\S+)`))?.[1]
  const time = (name) => {
    const s = text.match(new RegExp(`${name}=(.*)`))[1].trim()
    return s === 'Not set' ? null : Date.parse(`${s} UTC`)
  }
  return {
    uid: Number(field('uid')), gid: Number(field('gid')), cuid: Number(field('cuid')), cgid: Number(field('cgid')),
    mode: Number.parseInt(field('mode'), 8), perms: field('access_perms'), bytes: Number(field('bytes')),
    lpid: Number(field('lpid')), cpid: Number(field('cpid')), nattch: Number(field('nattch')),
    attachTime: time('att_time'), detachTime: time('det_time'), changeTime: time('change_time'),
  }
}

const ms = (iso) => (iso === null ? null : Date.parse(iso))

async function json(args, options) {
  const r = await cli([...args, '--json'], options)
  if (r.code !== 0) throw new Error(`sysv-shm ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/**
 * Four segments in three processes: A (key, 0640, 5000 bytes) attached by two
 * Node peers and locked; B (key, 1 byte) removed while its peer holds it;
 * D (key, 0604) attached by nobody, owned by uid 54321 (no passwd entry) and
 * group nogroup.
 */
async function scene(t) {
  const ids = []
  const peers = []
  t.teardown(async () => {
    for (const p of peers) await p.close()
    removeAll(ids)
  })
  const keyA = freshKey()
  const a = nodePeer()
  peers.push(a)
  const idA = Number(await a.call(`create ${keyA} 5000 640`))
  ids.push(idA)
  const a2 = nodePeer()
  peers.push(a2)
  await a2.call(`attach ${idA}`)
  const lockA = SharedMemory.openById(idA)
  lockA.lock()
  lockA.detach()

  const keyB = freshKey()
  const b = nodePeer()
  peers.push(b)
  const idB = Number(await b.call(`create ${keyB} 1 600`))
  ids.push(idB)
  await b.call('remove')

  const keyD = freshKey()
  const d = SharedMemory.create(keyD, 100, { mode: 0o604 })
  ids.push(d.id)
  d.set({ uid: 54321, gid: 65534 })
  d.detach()
  return { idA, keyA, idB, keyB, idD: d.id, keyD, pidsA: [a.pid, a2.pid].sort((x, y) => x - y), pidB: b.pid }
}

test.serial('ls and ls --json show what ipcs -m shows: key, id, owner, mode, size, attach count, status', async (t) => {
  const s = await scene(t)
  const segments = await json(['ls'])
  const text = (await cli(['ls'])).stdout
  const ipcs = ipcsRows((await run('ipcs', ['-m'])).stdout)
  const mine = [s.idA, s.idB, s.idD]
  for (const id of mine) {
    const j = segments.find((x) => x.id === id)
    const i = ipcs.get(id)
    t.truthy(j, `ls --json lists ${id}`)
    t.truthy(i, `ipcs -m lists ${id}`)
    t.deepEqual(Object.keys(j), SEGMENT_FIELDS)
    t.is(j.keyHex, i.key)
    t.is(j.key, Number.parseInt(i.key, 16))
    t.is(j.user ?? String(j.uid), i.owner)
    t.is(j.mode, Number.parseInt(i.perms, 8))
    t.is(j.size, i.bytes)
    t.is(j.attachCount, i.nattch)
    t.is([j.removed ? 'dest' : '', j.locked ? 'locked' : ''].filter(Boolean).join(' '), i.status)

    const row = text.split('\n').find((l) => l.split(/\s+/)[1] === String(id))
    t.truthy(row, `ls lists ${id}`)
    const [key, , owner, perms, octal, bytes, nattch, ...status] = row.split(/\s+/)
    t.is(key, i.key)
    t.is(owner, i.owner)
    t.is(Number.parseInt(octal, 8), Number.parseInt(i.perms, 8))
    t.is(perms, j.perms)
    t.is(Number(bytes), i.bytes)
    t.is(Number(nattch), i.nattch)
    t.is(status.join(' '), i.status || '-')
  }
  const [a, b, d] = mine.map((id) => segments.find((x) => x.id === id))
  t.like(a, { key: s.keyA, perms: 'rw-r-----', modeOctal: '0640', size: 5000, attachCount: 2, locked: true, removed: false, user: 'root' })
  t.like(b, { key: 0, keyHex: '0x00000000', attachCount: 1, removed: true, locked: false })
  t.like(d, { key: s.keyD, perms: 'rw----r--', attachCount: 0, uid: 54321, user: null, gid: 65534, group: 'nogroup', cuid: 0, creatorUser: 'root' })
  // The header, like ipcs -m's.
  t.regex(text.split('\n')[0], /^key\s+shmid\s+owner\s+perms\s+mode\s+bytes\s+nattch\s+status$/)
})

test.serial('ls -l shows what ipcs -m -c, -p and -t show: creator and owner names, pids, times', async (t) => {
  const s = await scene(t)
  const lines = (await cli(['ls', '-l'])).stdout.split('\n')
  const [c, p, tm] = await Promise.all(['-c', '-p', '-t'].map(async (o) => ipcsById((await run('ipcs', ['-m', o])).stdout)))
  const fmt = (iso) => {
    if (iso === '-') return 'Not set'
    const d = new Date(iso.replace(' ', 'T') + 'Z')
    const mon = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })
    return `${mon} ${String(d.getUTCDate()).padStart(2, ' ')} ${iso.slice(11)}`
  }
  t.regex(lines[0], /^key\s+shmid\s+owner\s+group\s+perms\s+mode\s+bytes\s+nattch\s+status\s+cuser\s+cgroup\s+cpid\s+lpid\s+attached\s+detached\s+changed$/)
  for (const id of [s.idA, s.idB, s.idD]) {
    const row = lines.find((l) => l.split(/\s+/)[1] === String(id))
    // Times have a space inside: split on two or more spaces.
    const cells = row.split(/ {2,}/)
    const [, , owner, group, , , , , status, cuser, cgroup, cpid, lpid, attached, detached, changed] = cells
    const [, , cuidName, cgidName, uidName, gidName] = c.get(id).split(/\s+/)
    t.deepEqual([cuser, cgroup, owner, group], [cuidName, cgidName, uidName, gidName])
    const [, , ipcsCpid, ipcsLpid] = p.get(id).split(/\s+/)
    t.deepEqual([cpid, lpid], [ipcsCpid, ipcsLpid])
    // `ipcs -t` pads a one-digit day with a space (`Dec  1 19:21:13`): pick
    // the times out by their shape, not by the spaces between columns.
    const times = tm.get(id).match(IPCS_TIME)
    t.deepEqual([attached, detached, changed].map(fmt), times, `times of ${id}`)
    t.truthy(status)
  }
})

test.serial('stat and stat --json show what ipcs -m -i shows; ids and keys may be decimal or 0x hex', async (t) => {
  const s = await scene(t)
  for (const id of [s.idA, s.idB, s.idD]) {
    const j = await json(['stat', String(id)])
    const i = ipcsInfo((await run('ipcs', ['-m', '-i', String(id)])).stdout)
    t.deepEqual(Object.keys(j), [...SEGMENT_FIELDS, 'attachedBy'])
    t.deepEqual(
      [j.uid, j.gid, j.cuid, j.cgid, j.modeOctal, j.size, j.lastPid, j.creatorPid, j.attachCount],
      [i.uid, i.gid, i.cuid, i.cgid, i.perms, i.bytes, i.lpid, i.cpid, i.nattch],
    )
    t.deepEqual([ms(j.attachTime), ms(j.detachTime), ms(j.changeTime)], [i.attachTime, i.detachTime, i.changeTime])
    // ipcs's mode has the kernel's SHM_DEST (01000) and SHM_LOCKED (02000) bits.
    t.is(j.removed, (i.mode & 0o1000) !== 0)
    t.is(j.locked, (i.mode & 0o2000) !== 0)
    t.deepEqual(await json(['stat', '0x' + id.toString(16)]), j)
  }
  // Which processes hold each segment, from /proc/PID/maps: what ipcs cannot tell.
  const by = async (id) => (await json(['stat', String(id)])).attachedBy
  const a = await by(s.idA)
  t.deepEqual(a.map((x) => [x.pid, x.mappings]), s.pidsA.map((pid) => [pid, 1]))
  t.true(a.every((x) => x.command.endsWith('interop/peer.mjs')))
  t.deepEqual((await by(s.idB)).map((x) => x.pid), [s.pidB])
  t.deepEqual(await by(s.idD), [])
  t.is((await json(['stat', '--key', hexKey(s.keyA)])).id, s.idA)
  t.is((await json(['stat', '--key', String(s.keyA)])).id, s.idA)
  // A key as a C program prints a negative key_t.
  t.is((await json(['stat', '--key', String(s.keyD | 0)])).id, s.idD)

  const text = (await cli(['stat', String(s.idA)])).stdout
  t.regex(text, new RegExp(`^shmid +${s.idA}$`, 'm'))
  t.regex(text, new RegExp(`^key +${hexKey(s.keyA)}$`, 'm'))
  t.regex(text, /^size +5000 bytes \(4\.9 KiB, 2 pages of 4096\)$/m)
  t.regex(text, /^perms +rw-r----- \(0640\)$/m)
  t.regex(text, /^attached +2 attachments$/m)
  t.regex(text, new RegExp(`^attached by +pid ${s.pidsA[0]}: .*peer\\.mjs\n +pid ${s.pidsA[1]}: .*peer\\.mjs$`, 'm'))
  t.regex(text, /^status +locked \(SHM_LOCK\)$/m)
  t.regex(text, /^creator pid +\d+ \(running\)$/m)
  const b = (await cli(['stat', String(s.idB)])).stdout
  t.regex(b, /^key +0x00000000 \(removed\)$/m)
  t.regex(b, /^status +dest \(removed: freed at the last detach\)$/m)
  t.regex((await cli(['stat', String(s.idD)])).stdout, /^owner +54321:nogroup \(uid 54321, gid 65534\)$/m)
})

test.serial('ls filters: --key, --orphans, --mine, --older-than', async (t) => {
  const s = await scene(t)
  const ids = (list) => list.map((x) => x.id)
  t.deepEqual(ids(await json(['ls', '--key', hexKey(s.keyA)])), [s.idA])
  const orphans = ids(await json(['ls', '--orphans']))
  t.true(orphans.includes(s.idD))
  t.false(orphans.includes(s.idA))
  t.false(orphans.includes(s.idB))
  const mine = ids(await json(['ls', '--mine']))
  t.true(mine.includes(s.idA) && mine.includes(s.idD))
  const old = ids(await json(['ls', '--older-than', '1h']))
  t.false(old.includes(s.idA) || old.includes(s.idB) || old.includes(s.idD))
  // Text output filters the same way.
  const lines = (await cli(['ls', '--key', hexKey(s.keyD)])).stdout.trim().split('\n')
  t.is(lines.length, 2)
  t.is(lines[1].split(/\s+/)[1], String(s.idD))
})


test.serial('as another user: stat falls back to what ipcs shows, dump fails with EACCES, rm with EPERM, --mine skips', async (t) => {
  const shm = SharedMemory.create(freshKey(), 64, { mode: 0o600 })
  t.teardown(() => removeAll([shm.id]))
  shm.write('secret')
  shm.detach()
  const cliPath = publicCli()
  const nobody = (args) =>
    run(AS_NOBODY[0], [...AS_NOBODY.slice(1), process.execPath, cliPath, ...args])

  const st = await nobody(['stat', String(shm.id), '--json'])
  t.is(st.code, 0, st.stderr)
  t.like(JSON.parse(st.stdout), { id: shm.id, size: 64, modeOctal: '0600', user: 'root' })

  const dump = await nobody(['dump', String(shm.id)])
  t.is(dump.code, 1)
  t.is(dump.stdout, '')
  t.regex(dump.stderr, new RegExp(`^sysv-shm dump: shmid ${shm.id}: EACCES: `))

  const rm = await nobody(['rm', String(shm.id)])
  t.is(rm.code, 1)
  t.regex(rm.stderr, new RegExp(`^sysv-shm rm: shmid ${shm.id}: EPERM: only its owner, its creator or a privileged user`))
  t.is(SharedMemory.statById(shm.id).id, shm.id, 'still there')

  const mine = JSON.parse((await nobody(['ls', '--mine', '--json'])).stdout)
  t.false(mine.some((x) => x.id === shm.id))
  const all = JSON.parse((await nobody(['ls', '--json'])).stdout)
  t.true(all.some((x) => x.id === shm.id))
})

test.serial('rm removes ids and keys, says what it removed, marks attached ones, fails with exit 1 and the errno name', async (t) => {
  const peer = nodePeer()
  const orphan = SharedMemory.create(freshKey(), 10)
  orphan.detach()
  const keyed = SharedMemory.create(freshKey(), 20)
  keyed.detach()
  const attachedKey = freshKey()
  const attachedId = Number(await peer.call(`create ${attachedKey} 30 600`))
  t.teardown(async () => {
    await peer.close()
    removeAll([orphan.id, keyed.id, attachedId])
  })
  const bogus = 2_147_483_000

  const dry = await cli(['rm', '-n', String(orphan.id)])
  t.is(dry.code, 0)
  t.is(dry.stdout, `would remove shmid ${orphan.id} (key ${hexKey(orphan.key)}, 10 bytes)\n`)
  t.is(SharedMemory.statById(orphan.id).id, orphan.id)

  const r = await cli(['rm', String(orphan.id), String(attachedId), String(bogus), '--key', hexKey(keyed.key)])
  t.is(r.code, 1)
  t.deepEqual(r.stdout.trim().split('\n'), [
    `removed shmid ${orphan.id} (key ${hexKey(orphan.key)}, 10 bytes)`,
    `marked for removal shmid ${attachedId} (key ${hexKey(attachedKey)}, 30 bytes, still attached 1 time: freed at the last detach)`,
    `removed shmid ${keyed.id} (key ${hexKey(keyed.key)}, 20 bytes)`,
  ])
  t.is(r.stderr, `sysv-shm rm: shmid ${bogus}: EINVAL: no segment has this id (shmctl: Invalid argument)\n`)

  const gone = (id) => t.throws(() => SharedMemory.statById(id), { code: 'EINVAL' })
  gone(orphan.id)
  gone(keyed.id)
  t.like(await peer.stat(), { dest: 1, key: '0x00000000', nattch: 1 })
  t.is(ipcsInfo((await run('ipcs', ['-m', '-i', String(attachedId)])).stdout).mode & 0o1000, 0o1000)
  await peer.call('write 0 6869')
  t.is(await peer.call('read 0 2'), '6869', 'the peer still uses it')
  await peer.call('detach')
  gone(attachedId)

  const again = await cli(['rm', '--json', String(orphan.id), '--key', hexKey(keyed.key)])
  t.is(again.code, 1)
  const out = JSON.parse(again.stdout)
  t.deepEqual(out.removed, [])
  t.is(out.dryRun, false)
  t.like(out.failed[0], { id: orphan.id, key: null, code: 'EINVAL', errno: 22, syscall: 'shmctl' })
  t.like(out.failed[1], { id: null, key: keyed.key, code: 'ENOENT', errno: 2 })
  t.regex(again.stderr, new RegExp(`key ${hexKey(keyed.key)}: ENOENT: no segment has key`))
})

test('rm --orphans [--older-than] removes only unattached segments (in a private IPC namespace)', async (t) => {
  const ns = new Namespace()
  t.teardown(() => ns.close())
  const orphan = (key, size) => ns.run([process.execPath, NODE_PEER], `create ${key} ${size} 600\ndetach\nquit\n`)
  t.is((await orphan(0x11, 100)).code, 0)
  // 20 s apart; the threshold is set halfway, just before rm runs, so the CLI's
  // own start-up has 10 s of slack either way. (8 s apart failed with both cores
  // busy: a node start-up in the namespace took more than 4 s there.)
  await new Promise((resolve) => setTimeout(resolve, 20_000))
  t.is((await orphan(0x22, 200)).code, 0)
  const made22 = Date.now()
  const holder = await ns.start([process.execPath, NODE_PEER], 'create 0x33 300 600\n')
  let list
  for (let i = 0; i < 100; i++) {
    list = JSON.parse((await ns.cli(['ls', '--json'])).stdout)
    if (list.length === 3) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.deepEqual(list.map((s) => [s.key, s.attachCount]), [[0x11, 0], [0x22, 0], [0x33, 1]])

  const threshold = Math.round((Date.now() - made22) / 1000) + 10
  const old = await ns.cli(['rm', '--orphans', '--older-than', `${threshold}s`, '--json'])
  t.is(old.code, 0, old.stderr)
  t.deepEqual(JSON.parse(old.stdout).removed.map((s) => s.key), [0x11])

  const dry = await ns.cli(['rm', '--orphans', '--dry-run'])
  t.is(dry.stdout, `would remove shmid ${list[1].id} (key 0x00000022, 200 bytes)\n`)
  const rest = await ns.cli(['rm', '--orphans'])
  t.is(rest.stdout, `removed shmid ${list[1].id} (key 0x00000022, 200 bytes)\n`)
  t.is((await ns.cli(['rm', '--orphans'])).stdout, 'nothing to remove\n')
  t.deepEqual(JSON.parse((await ns.cli(['ls', '--json'])).stdout).map((s) => s.key), [0x33])
  t.is((await ns.stop(holder)).code, 0)
  // The holder detached without removing: 0x33 is an orphan now.
  t.deepEqual(JSON.parse((await ns.cli(['ls', '--orphans', '--json'])).stdout).map((s) => s.key), [0x33])
})

test('stat lists as attached only processes of its own IPC namespace, not one elsewhere mapping a segment of the same id', async (t) => {
  // shmids are per IPC namespace: a process in another one (a container, another test suite
  // run isolated) can have a segment of the same id mapped, with the same inode in its maps.
  const shm = SharedMemory.create(IPC_PRIVATE, 64)
  t.teardown(() => {
    removeAll([shm.id])
    shm.detach()
  })
  const ns = new Namespace()
  t.teardown(() => ns.close())
  const next = await ns.run(['sh', '-c', `echo ${shm.id} > /proc/sys/kernel/shm_next_id`])
  t.is(next.code, 0, next.stderr)
  const elsewhere = await ns.start([process.execPath, NODE_PEER], 'create 0x66 64 600\n')
  let there
  for (let i = 0; i < 100 && !there?.length; i++) there = JSON.parse((await ns.cli(['ls', '--json'])).stdout)
  t.deepEqual(there.map((s) => [s.id, s.attachCount]), [[shm.id, 1]], 'the same id, attached, in the other namespace')
  const by = (await json(['stat', String(shm.id)])).attachedBy
  t.deepEqual(by.map((x) => x.pid), [process.pid])
  t.false(by.some((x) => x.pid === elsewhere))
  t.is((await ns.stop(elsewhere)).code, 0)
})

test('limits shows what ipcs -l and ipcs -u show (in a private IPC namespace)', async (t) => {
  const ns = new Namespace()
  t.teardown(() => ns.close())
  for (const [key, size] of [[0x44, 4096 * 3], [0x55, 10]]) {
    t.is((await ns.run([process.execPath, NODE_PEER], `create ${key} ${size} 600\ndetach\nquit\n`)).code, 0)
  }
  const j = JSON.parse((await ns.cli(['limits', '--json'])).stdout)
  const l = (await ns.run(['ipcs', '-m', '-l'])).stdout
  const u = (await ns.run(['ipcs', '-m', '-u'])).stdout
  const num = (text, label) => Number(text.match(new RegExp(`${label}\\s*=?\\s*(\\d+)`))[1])
  t.is(j.maxSegments, num(l, 'max number of segments'))
  t.is(j.minSegmentSize, num(l, 'min seg size \\(bytes\\)'))
  const kb = num(l, 'max seg size \\(kbytes\\)')
  t.true(Math.abs(j.maxSegmentSize / 1024 - kb) / kb < 1e-9, `${j.maxSegmentSize} bytes vs ${kb} KiB`)
  t.is(j.usedSegments, num(u, 'segments allocated'))
  t.is(j.usedSegments, 2)
  t.is(j.usedPages, num(u, 'pages allocated'))
  t.is(j.usedPages, 4)
  t.is(j.largestSegmentSize, 4096 * 3)
  t.is(j.pageSize, 4096)
  const text = (await ns.cli(['limits'])).stdout
  t.regex(text, /^max number of segments +4096 +2 \(<0\.1%\) +kernel\.shmmni$/m)
  t.regex(text, /^max segment size .* largest 12288 bytes \(12\.0 KiB\) +kernel\.shmmax$/m)
  t.regex(text, /^max total shared memory .* 4 pages \(16\.0 KiB\).* kernel\.shmall$/m)
})

test('limits follows kernel.shmmax, shmall and shmmni as sysctl sets them (in a private IPC namespace)', async (t) => {
  const ns = new Namespace()
  t.teardown(() => ns.close())
  const set = await ns.run(['sh', '-c', 'echo 1048576 > /proc/sys/kernel/shmmax && echo 512 > /proc/sys/kernel/shmall && echo 32 > /proc/sys/kernel/shmmni'])
  t.is(set.code, 0, set.stderr)
  t.like(JSON.parse((await ns.cli(['limits', '--json'])).stdout), { maxSegmentSize: 1048576, maxTotalPages: 512, maxSegments: 32 })
  const text = (await ns.cli(['limits'])).stdout
  t.regex(text, /^max segment size +1048576 bytes \(1\.0 MiB\) +largest 0 bytes \(0 B\) +kernel\.shmmax$/m)
  t.regex(text, /^max total shared memory +512 pages \(2\.0 MiB\) +0 pages \(0 B\) \(0\.0%\) +kernel\.shmall$/m)
  t.regex(text, /^max number of segments +32 +0 \(0\.0%\) +kernel\.shmmni$/m)
  // The limit is real: a segment above shmmax is refused.
  const big = await ns.run([process.execPath, NODE_PEER], `create 0x66 ${2 << 20} 600\nquit\n`)
  t.regex(big.stdout, /^err EINVAL /)
})

test('dump prints what hexdump -C prints for the same bytes, with --offset, --length and -v', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 1007)
  t.teardown(() => {
    shm.remove()
    shm.detach()
  })
  shm.write('hello world, this is sysv-shm\n')
  shm.write(Buffer.from(Array.from({ length: 256 }, (_, i) => i)), 200)
  shm.write(Buffer.alloc(64, 0xab), 600)
  shm.write('tail', 1003)
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-dump-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'bytes')
  writeFileSync(file, shm.read())

  const cases = [
    [[], []],
    [['-v'], ['-v']],
    [['--offset', '0x64', '--length', '300'], ['-s', '100', '-n', '300']],
    [['--offset', '999'], ['-s', '999']],
    [['--length', '5000'], []],
  ]
  for (const [ours, theirs] of cases) {
    const r = await cli(['dump', String(shm.id), ...ours])
    t.is(r.code, 0, r.stderr)
    t.is(r.stdout, (await run('hexdump', ['-C', ...theirs, file])).stdout, `dump ${ours.join(' ')}`)
  }
  t.regex((await cli(['dump', String(shm.id)])).stdout, /^\*$/m, 'runs of equal lines are squeezed')
  const past = await cli(['dump', String(shm.id), '--offset', '2000'])
  t.is(past.code, 1)
  t.regex(past.stderr, /offset 2000 is past the end of the segment \(1007 bytes\)/)
  t.deepEqual(shm.read(), readFileSync(file), 'dump changed nothing')
})

test('dump into a closed pipe (| head) ends quietly with exit 0', async (t) => {
  const shm = SharedMemory.create(IPC_PRIVATE, 4 << 20)
  t.teardown(() => {
    shm.remove()
    shm.detach()
  })
  const r = await run('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" dump -v ${shm.id} | head -n 2`])
  t.is(r.code, 0, r.stderr)
  t.is(r.stderr, '')
  t.is(r.stdout.split('\n').length, 3)
})

test.serial('ipcrm from outside is seen by stat(), ls and the other side', async (t) => {
  const peer = nodePeer()
  const key = freshKey()
  const id = Number(await peer.call(`create ${key} 64 600`))
  const mine = SharedMemory.open(key)
  t.teardown(async () => {
    mine.detach()
    await peer.close()
    removeAll([id])
  })
  const ipcrm = await run('ipcrm', ['-m', String(id)])
  t.is(ipcrm.code, 0, ipcrm.stderr)

  t.like(mine.stat(), { removed: true, key: 0, attachCount: 2 })
  t.like(await peer.stat(), { dest: 1, key: '0x00000000', nattch: 2 })
  t.like(await json(['stat', String(id)]), { removed: true, key: 0, attachCount: 2 })
  const row = (await cli(['ls'])).stdout.split('\n').find((l) => l.split(/\s+/)[1] === String(id))
  t.regex(row, /\bdest$/)
  t.is(ipcsRows((await run('ipcs', ['-m'])).stdout).get(id).status, 'dest')
  t.throws(() => SharedMemory.open(key), { code: 'ENOENT' })
  t.is((await peer.send(`open ${key}`)).code, 'ENOENT')
  // Both sides still share the memory.
  await peer.call('write 0 0102')
  t.deepEqual([...mine.read(0, 2)], [1, 2])
  mine.write(Buffer.from([3]), 2)
  t.is(await peer.call('read 0 3'), '010203')

  mine.detach()
  await peer.call('detach')
  const gone = await cli(['stat', String(id)])
  t.is(gone.code, 1)
  t.is(gone.stderr, `sysv-shm stat: shmid ${id}: EINVAL: no segment has this id (shmctl: Invalid argument)\n`)
  t.false((await json(['ls'])).some((s) => s.id === id))

  // ipcrm -M KEY of a segment nobody has attached: gone at once.
  const other = SharedMemory.create(freshKey(), 8)
  other.detach()
  t.teardown(() => removeAll([other.id]))
  t.is((await run('ipcrm', ['-M', hexKey(other.key)])).code, 0)
  t.throws(() => SharedMemory.statById(other.id), { code: 'EINVAL' })
  const byKey = await cli(['stat', '--key', hexKey(other.key)])
  t.is(byKey.code, 1)
  t.is(byKey.stderr, `sysv-shm stat: key ${hexKey(other.key)}: ENOENT: no segment has key ${hexKey(other.key)}\n`)
})

test('ftok prints the key of a path and project id, as the API computes it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-ftok-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const expected = hexKey(ftok(dir, 65))
  for (const proj of ['A', '65', '0x41']) {
    const r = await cli(['ftok', dir, proj])
    t.is(r.code, 0, r.stderr)
    t.is(r.stdout, expected + '\n')
  }
  t.deepEqual(await json(['ftok', dir, '7']), { path: dir, projId: 7, key: ftok(dir, 7) >>> 0, keyHex: hexKey(ftok(dir, 7)) })
  const missing = await cli(['ftok', join(dir, 'missing'), '1'])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /^sysv-shm ftok: .*missing: ENOENT: no such file or directory \(ftok: /)
})

test('usage errors exit 2 with a message on stderr and nothing on stdout', async (t) => {
  const cases = [
    [[], /^Usage: sysv-shm <command>/],
    [['bogus'], /unknown command "bogus"/],
    [['ls', '--bogus'], /^sysv-shm ls: Unknown option '--bogus'/],
    [['ls', 'extra'], /^sysv-shm ls: unexpected argument "extra"/],
    [['ls', '--older-than', 'soon'], /a duration is a number with a unit/],
    [['stat'], /^sysv-shm stat: give an id or --key KEY/],
    [['stat', '12x'], /an id must be a number in decimal or 0x hex, not "12x"/],
    [['stat', '0x80000000'], /an id must be at most 2147483647/],
    [['stat', '1', '--key', '0x1'], /give an id or --key, not both/],
    [['stat', '--key', '0x100000000'], /a key must be at most 4294967295/],
    [['rm'], /give ids, --key KEY or --orphans/],
    [['rm', '--key', '0'], /key 0 is IPC_PRIVATE/],
    [['rm', '--older-than', '1h'], /add --orphans/],
    [['rm', '--orphans', '5'], /--orphans takes no ids or keys/],
    [['dump', '1', '--offset=-1'], /--offset must be a number/],
    [['dump', '1', '--offset', '-1'], /^sysv-shm dump: --offset must be a number in decimal or 0x hex, not "-1"\n/],
    [['ftok', '/tmp'], /give a path and a project id/],
    [['ftok', '/tmp', '0'], /a project id must be 1 to 255/],
    [['ftok', '/tmp', '256'], /a project id must be 1 to 255/],
    [['help', 'bogus'], /unknown command "bogus"/],
  ]
  for (const [args, message] of cases) {
    const r = await cli(args)
    t.is(r.code, 2, `sysv-shm ${args.join(' ')}`)
    t.is(r.stdout, '', `sysv-shm ${args.join(' ')}`)
    t.regex(r.stderr, message, `sysv-shm ${args.join(' ')}`)
  }
})

test('--help on every command, help COMMAND, --version', async (t) => {
  const main = await cli(['--help'])
  t.is(main.code, 0)
  for (const name of ['ls', 'stat', 'rm', 'limits', 'dump', 'ftok']) {
    t.regex(main.stdout, new RegExp(`^  ${name} +\\S`, 'm'))
    const help = await cli([name, '--help'])
    t.is(help.code, 0)
    t.regex(help.stdout, new RegExp(`^Usage: sysv-shm ${name}\\b`))
    t.is((await cli([name, '-h'])).stdout, help.stdout)
    t.is((await cli(['help', name])).stdout, help.stdout)
  }
  t.regex(main.stdout, /Exit codes: 0 success, 1 an operation failed/)
  t.is((await cli(['--version'])).stdout, pkg.version + '\n')
})

test('the bin of the package is an executable script with a node shebang', async (t) => {
  t.is(pkg.bin['sysv-shm'], 'dist/src/cli.js')
  t.is(join(ROOT, pkg.bin['sysv-shm']), CLI)
  t.true((statSync(CLI).mode & 0o111) === 0o111)
  t.true(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n'))
  const r = await run(CLI, ['--version'], { env: ENV })
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, pkg.version + '\n')
})

// `sysv-shm sem ls|stat|rm` and `ls -s`, run as real child processes and
// checked against what ipcs -s, ipcs -s -c/-t, ipcs -s -i and ipcrm -s say
// about the same semaphore sets, with processes really waiting on them.

import test from 'ava'

import { IPC_PRIVATE, Semaphore, listSemaphores } from '../dist/index.js'

import { AS_NOBODY, eventually, publicCli, removeOnTeardown, runNode } from './helpers.mjs'
import { cli, hexKey, run } from './interop/helpers.mjs'

// ------------------------------------------------------------------ no set left behind

/** Ids of the sets this file made (directly or through children), removed and checked at the end. */
const made = new Set()
test.after.always('no semaphore set left behind', (t) => {
  const left = listSemaphores().filter((s) => made.has(s.id))
  for (const s of left) {
    try {
      Semaphore.removeById(s.id)
    } catch {}
  }
  t.deepEqual(left.map((s) => s.id), [], 'semaphore sets left behind')
})

let keyN = 0
/** A key in a range of its own (0x5c......), not used by any set now. */
function freshSemKey() {
  const used = new Set(listSemaphores().map((s) => s.key >>> 0))
  for (;;) {
    const key = (0x5c00_0000 | ((process.pid & 0xffff) << 8) | (++keyN & 0xff)) >>> 0
    if (!used.has(key)) return key
  }
}

function create(t, key, options) {
  const sem = removeOnTeardown(t, Semaphore.create(key, options))
  made.add(sem.id)
  return sem
}

async function json(args, options) {
  const r = await cli([...args, '--json'], options)
  if (r.code !== 0) throw new Error(`sysv-shm ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

const SEM_FIELDS = [
  'id', 'key', 'keyHex', 'mode', 'modeOctal', 'perms', 'uid', 'user', 'gid', 'group',
  'cuid', 'creatorUser', 'cgid', 'creatorGroup', 'count', 'opTime', 'changeTime',
]

// ------------------------------------------------------------------ what ipcs prints

/** Rows of `ipcs -s` by semid: key, owner, perms, nsems. */
function ipcsRows(text) {
  const rows = new Map()
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/)
    if (/^0x[0-9a-f]{8}$/.test(w[0])) rows.set(Number(w[1]), { key: w[0], owner: w[2], perms: w[3], nsems: Number(w[4]) })
  }
  return rows
}

/** Rows of a table whose first column is the semid (`ipcs -s -c`, `-t`), as lines. */
function ipcsById(text) {
  const rows = new Map()
  for (const line of text.split('\n')) if (/^\d+\s/.test(line)) rows.set(Number(line.split(/\s+/)[0]), line)
  return rows
}

/** `Fri Nov 27 05:34:45 2026` (ipcs runs with TZ=UTC) or `Not set`, as ms since the epoch or null. */
const ipcsTime = (s) => (s.trim() === 'Not set' ? null : Date.parse(`${s.trim()} UTC`))

/** `ipcs -s -i ID`: the header fields and one row per semaphore. */
function ipcsInfo(text) {
  const field = (name) => text.match(new RegExp(`\\b${name}\\s*=\\s*(\\S+)`))?.[1]
  const rows = []
  let inTable = false
  for (const line of text.split('\n')) {
    if (/^semnum\s/.test(line)) inTable = true
    else if (inTable && /^\d+\s/.test(line)) {
      const [index, value, ncount, zcount, pid] = line.trim().split(/\s+/).map(Number)
      rows.push({ index, value, forIncrease: ncount, forZero: zcount, lastPid: pid })
    }
  }
  return {
    uid: Number(field('uid')), gid: Number(field('gid')), cuid: Number(field('cuid')), cgid: Number(field('cgid')),
    mode: Number.parseInt(field('mode').replace(/,$/, ''), 8), nsems: Number(field('nsems')),
    opTime: ipcsTime(text.match(/otime = (.*)/)[1]), changeTime: ipcsTime(text.match(/ctime = (.*)/)[1]),
    rows,
  }
}

// ------------------------------------------------------------------ processes that wait

/**
 * A node process that waits on semaphore `index` of set `id`: `acquire` (ncount) or
 * `zero` (zcount). Resolves with its pid and what the wait ended in (`result`): 'ok' or the error code.
 */
function waiter(id, index, how) {
  const op = how === 'zero' ? `s.waitForZero({ index: ${index} })` : `s.acquire(1, { index: ${index}, undo: false })`
  return runNode(`
    const s = shm.Semaphore.openById(${id});
    let result;
    try { ${op}; result = 'ok' } catch (e) { result = e.code }
    console.log(process.pid, result);
  `).then((r) => {
    const [pid, result] = r.stdout.trim().split(' ')
    return { ...r, pid: Number(pid), result }
  })
}

/**
 * Three sets: A (key, 0640, 3 semaphores, made by another process, which
 * also did the last semop on semaphore 0), B (IPC_PRIVATE, owned by uid
 * 54321, which has no name), C (key, 0644, group nogroup).
 */
async function scene(t) {
  const keyA = freshSemKey()
  const child = await runNode(`
    const s = shm.Semaphore.create(${keyA}, { count: 3, initial: 2, mode: 0o640 });
    s.acquire(1, { undo: false });
    console.log(s.id, process.pid);
  `)
  t.is(child.code, 0, child.stderr)
  const childPid = Number(child.stdout.trim().split(' ')[1])
  const a = removeOnTeardown(t, Semaphore.open(keyA))
  made.add(a.id)
  const b = create(t, IPC_PRIVATE, { initial: 1 })
  b.set({ uid: 54321 })
  const keyC = freshSemKey()
  const c = create(t, keyC, { count: 2, mode: 0o644 })
  c.set({ gid: 65534 })
  return { a, b, c, keyA, keyC, childPid }
}

// ------------------------------------------------------------------ tests

test.serial('sem ls, ls -s and --json show what ipcs -s shows: key, semid, owner, perms, nsems', async (t) => {
  const { a, b, c, keyA, keyC } = await scene(t)
  const text = (await cli(['sem', 'ls'])).stdout
  const ipcs = ipcsRows((await run('ipcs', ['-s'])).stdout)
  const sets = await json(['sem', 'ls'])
  // Other test files run in parallel and may add or remove sets between two listings: compare ours.
  const ours = (ids) => ids.filter((id) => [a.id, b.id, c.id].includes(id))
  t.deepEqual(ours(sets.map((s) => s.id)), ours([...ipcs.keys()]), "the kernel's order, as ipcs")
  t.is(ours(sets.map((s) => s.id)).length, 3)
  t.deepEqual(ours((await json(['ls', '-s'])).map((s) => s.id)), ours(sets.map((s) => s.id)))
  const rowsOf = (out) => out.split('\n').filter((l, i) => i === 0 || ours([Number(l.split(/\s+/)[1])]).length)
  t.deepEqual(rowsOf((await cli(['ls', '-s'])).stdout), rowsOf(text), 'ls -s is sem ls')
  t.regex(text.split('\n')[0], /^key\s+semid\s+owner\s+perms\s+mode\s+nsems$/)
  for (const sem of [a, b, c]) {
    const i = ipcs.get(sem.id)
    const j = sets.find((s) => s.id === sem.id)
    t.truthy(i, `ipcs -s lists ${sem.id}`)
    t.deepEqual(Object.keys(j), SEM_FIELDS)
    const row = text.split('\n').find((l) => l.split(/\s+/)[1] === String(sem.id)).trim().split(/\s+/)
    // key semid owner perms mode nsems
    t.deepEqual([row[0], row[2], row[4].slice(1), Number(row[5])], [i.key, i.owner, i.perms, i.nsems])
    t.deepEqual([j.keyHex, j.user ?? String(j.uid), j.modeOctal.slice(1), j.count], [i.key, i.owner, i.perms, i.nsems])
    const st = sem.stat()
    t.like(j, { id: st.id, key: st.key, mode: st.mode, uid: st.uid, gid: st.gid, cuid: st.cuid, cgid: st.cgid, count: st.count })
    t.is(Date.parse(j.opTime), st.opTime.getTime())
    t.is(Date.parse(j.changeTime), st.changeTime.getTime())
  }
  t.like(sets.find((s) => s.id === a.id), { keyHex: hexKey(keyA), perms: 'rw-r-----', count: 3, user: 'root' })
  t.like(sets.find((s) => s.id === b.id), { key: 0, uid: 54321, user: null, creatorUser: 'root' })
  t.like(sets.find((s) => s.id === c.id), { keyHex: hexKey(keyC), modeOctal: '0644', group: 'nogroup', count: 2 })
})

test.serial('sem ls -l shows what ipcs -s -c and ipcs -s -t show: creator and owner names, last semop and change times', async (t) => {
  const { a, b, c } = await scene(t)
  const long = (await cli(['sem', 'ls', '-l'], {})).stdout.split('\n')
  t.regex(long[0], /^key\s+semid\s+owner\s+group\s+perms\s+mode\s+nsems\s+cuser\s+cgroup\s+last-op\s+changed$/)
  const creators = ipcsById((await run('ipcs', ['-s', '-c'])).stdout)
  const times = ipcsById((await run('ipcs', ['-s', '-t'])).stdout)
  for (const sem of [a, b, c]) {
    const w = long.find((l) => l.split(/\s+/)[1] === String(sem.id)).trim().split(/\s+/)
    // key semid owner group perms mode nsems cuser cgroup last-op(2 words) changed(2 words)
    const [, , owner, group, , , , cuser, cgroup] = w
    const [, perms, icuid, icgid, iuid, igid] = creators.get(sem.id).trim().split(/\s+/)
    t.deepEqual([cuser, cgroup, owner, group], [icuid, icgid, iuid, igid], `ipcs -s -c of ${sem.id}`)
    t.is(w[5].slice(1), perms)
    // ipcs -s -t: semid owner last-op last-changed, each time "Fri Nov 27 05:34:45 2026".
    const m = times.get(sem.id).match(/^\d+\s+\S+\s+(\w{3} \w{3} +\d+ [\d:]+ \d{4}|Not set)\s+(\w{3} \w{3} +\d+ [\d:]+ \d{4}|Not set)/)
    t.truthy(m, times.get(sem.id))
    t.is(Date.parse(`${w[9]}T${w[10]}Z`), ipcsTime(m[1]), `last-op of ${sem.id}`)
    t.is(Date.parse(`${w[11]}T${w[12]}Z`), ipcsTime(m[2]), `changed of ${sem.id}`)
  }
})

test.serial('sem stat shows what ipcs -s -i shows, with processes waiting for an increase (ncount) and for zero (zcount)', async (t) => {
  const { a, keyA, childPid } = await scene(t)
  // Semaphore 1 is 2: two take it to 0, a third waits (ncount 1); semaphore 2 is 2: one waits for zero.
  a.setValue(0, 1)
  const waiting = [waiter(a.id, 1, 'acquire'), waiter(a.id, 2, 'zero')]
  await eventually(() => a.waiters(1).forIncrease === 1 && a.waiters(2).forZero === 1)

  const ipcs = ipcsInfo((await run('ipcs', ['-s', '-i', String(a.id)])).stdout)
  const j = await json(['sem', 'stat', String(a.id)])
  t.deepEqual(Object.keys(j), [...SEM_FIELDS, 'semaphores'])
  t.like(j, { id: a.id, uid: ipcs.uid, gid: ipcs.gid, cuid: ipcs.cuid, cgid: ipcs.cgid, mode: ipcs.mode, count: ipcs.nsems })
  t.is(Date.parse(j.opTime), ipcs.opTime)
  t.is(Date.parse(j.changeTime), ipcs.changeTime)
  t.deepEqual(j.semaphores, ipcs.rows)
  t.deepEqual(
    j.semaphores.map((s) => [s.value, s.forIncrease, s.forZero]),
    [[1, 0, 0], [0, 1, 0], [2, 0, 1]],
  )
  t.is(j.semaphores[0].lastPid, childPid, 'the creating process did the last semop on semaphore 0')

  // The text form: the same table, and the key as --key in hex or decimal.
  const text = (await cli(['sem', 'stat', '--key', hexKey(keyA)])).stdout
  const noAgo = (out) => out.replace(/\(\d+[smhd] ago\)/g, '(ago)') // a second may pass between the two
  t.is(noAgo((await cli(['sem', 'stat', '--key', String(keyA)])).stdout), noAgo(text))
  t.regex(text, new RegExp(`^semid +${a.id}$`, 'm'))
  t.regex(text, new RegExp(`^key +${hexKey(keyA)}$`, 'm'))
  t.regex(text, /^perms +rw-r----- \(0640\)$/m)
  t.regex(text, /^nsems +3$/m)
  const table = text.split('\n').slice(text.split('\n').findIndex((l) => /^semnum/.test(l)))
  t.regex(table[0], /^semnum\s+value\s+ncount\s+zcount\s+pid$/)
  const cells = table.slice(1, 4).map((l) => l.trim().split(/\s+/))
  t.deepEqual(cells.map((c) => c.slice(0, 5).map(Number)), ipcs.rows.map((r) => [r.index, r.value, r.forIncrease, r.forZero, r.lastPid]))
  t.deepEqual(cells[0].slice(5), ['(not', 'running)'], 'the creating process has exited')

  // Release the waiters: the acquirer takes the unit, semaphore 2 reaches zero.
  a.release(1, { index: 1, undo: false })
  a.setValue(0, 2)
  t.deepEqual((await Promise.all(waiting)).map((r) => r.result), ['ok', 'ok'])
  const after = await json(['sem', 'stat', String(a.id)])
  t.deepEqual(after.semaphores.map((s) => [s.value, s.forIncrease, s.forZero]), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
  const [acquirer, zeroWaiter] = await Promise.all(waiting)
  t.deepEqual(after.semaphores.map((s) => s.lastPid), [childPid, acquirer.pid, zeroWaiter.pid], 'the last semop on each')
})

test.serial('filters: --key, --mine, --older-than; as another user: ls lists unreadable sets, stat shows no values, rm is EPERM', async (t) => {
  const { a, b, c, keyA } = await scene(t)
  t.deepEqual((await json(['sem', 'ls', '--key', hexKey(keyA)])).map((s) => s.id), [a.id])
  t.deepEqual((await json(['ls', '-s', '--key', String(keyA)])).map((s) => s.id), [a.id])
  t.true((await json(['sem', 'ls', '--key', '0'])).some((s) => s.id === b.id))
  t.deepEqual((await json(['sem', 'ls', '--older-than', '1h', '--key', hexKey(keyA)])), [])
  t.deepEqual((await json(['sem', 'ls', '--older-than', '0s', '--key', hexKey(keyA)])).map((s) => s.id), [a.id])
  const mine = (await json(['sem', 'ls', '--mine'])).map((s) => s.id)
  t.true(mine.includes(a.id) && mine.includes(b.id), 'root created b although 54321 owns it')

  // Another user: nobody may not read the 0640 set A, may read the 0644 set C.
  const cliPath = publicCli()
  const nobody = (args) => run(AS_NOBODY[0], [...AS_NOBODY.slice(1), process.execPath, cliPath, ...args])
  const listed = JSON.parse((await nobody(['sem', 'ls', '--json'])).stdout).map((s) => s.id)
  t.true([a.id, b.id, c.id].every((id) => listed.includes(id)), 'SEM_STAT_ANY lists sets nobody may not read')
  t.false(JSON.parse((await nobody(['sem', 'ls', '--mine', '--json'])).stdout).some((s) => [a.id, b.id, c.id].includes(s.id)))

  const st = await nobody(['sem', 'stat', String(a.id), '--json'])
  t.is(st.code, 0, st.stderr)
  t.like(JSON.parse(st.stdout), { id: a.id, modeOctal: '0640', count: 3, semaphores: null })
  const text = await nobody(['sem', 'stat', String(a.id)])
  t.regex(text.stdout, /^values +not shown: the set's mode does not let you read it/m)
  t.notRegex(text.stdout, /^semnum/m)
  const readable = JSON.parse((await nobody(['sem', 'stat', String(c.id), '--json'])).stdout)
  t.deepEqual(readable.semaphores.map((s) => s.value), [0, 0])

  const rm = await nobody(['sem', 'rm', String(a.id)])
  t.is(rm.code, 1)
  t.is(rm.stdout, '')
  t.regex(rm.stderr, new RegExp(`^sysv-shm sem rm: semid ${a.id}: EPERM: only its owner, its creator or a privileged user`))
  t.is(Semaphore.statById(a.id).id, a.id, 'still there')
})

test.serial('sem rm removes ids and keys, wakes waiters with EIDRM and says so; --dry-run, --json; failures exit 1; ipcrm -s is seen', async (t) => {
  const key = freshSemKey()
  const keyed = create(t, key, { count: 2 })
  const byId = create(t, IPC_PRIVATE)
  const other = create(t, IPC_PRIVATE)
  const sleeping = waiter(byId.id, 0, 'acquire')
  await eventually(() => byId.waiters(0).forIncrease === 1)

  const dry = await cli(['sem', 'rm', '-n', String(byId.id), '--key', hexKey(key)])
  t.is(dry.code, 0, dry.stderr)
  t.is(
    dry.stdout,
    `would remove semid ${byId.id} (key 0x00000000, 1 semaphore, would wake 1 waiting process with EIDRM)\n` +
      `would remove semid ${keyed.id} (key ${hexKey(key)}, 2 semaphores)\n`,
  )
  t.is(byId.waiters(0).forIncrease, 1, 'dry run: nothing removed')

  const r = await cli(['sem', 'rm', String(byId.id), '2147483000', '--key', hexKey(key), '--key', hexKey(freshSemKey())])
  t.is(r.code, 1)
  t.is(
    r.stdout,
    `removed semid ${byId.id} (key 0x00000000, 1 semaphore, woke 1 waiting process with EIDRM)\n` +
      `removed semid ${keyed.id} (key ${hexKey(key)}, 2 semaphores)\n`,
  )
  const errors = r.stderr.trim().split('\n')
  t.is(errors.length, 2)
  t.regex(errors[0], /^sysv-shm sem rm: semid 2147483000: EINVAL: no semaphore set has this id \(semctl: /)
  t.regex(errors[1], /^sysv-shm sem rm: key 0x5c[0-9a-f]{6}: ENOENT: no semaphore set has key /)
  t.is((await sleeping).result, 'EIDRM', 'the waiting process woke with EIDRM')
  const ipcs = ipcsRows((await run('ipcs', ['-s'])).stdout)
  t.false(ipcs.has(byId.id) || ipcs.has(keyed.id))
  t.true(ipcs.has(other.id))

  const j = await cli(['sem', 'rm', String(other.id), '999999', '--json'])
  t.is(j.code, 1)
  const out = JSON.parse(j.stdout)
  t.deepEqual(out.removed.map((s) => s.id), [other.id])
  t.deepEqual(Object.keys(out.removed[0]), SEM_FIELDS)
  t.like(out.failed[0], { id: 999999, key: null, code: 'EINVAL', errno: 22, syscall: 'semctl' })
  t.false(out.dryRun)

  // ipcrm -s from outside: sem stat then fails as for any missing id.
  const gone = create(t, IPC_PRIVATE)
  t.is((await run('ipcrm', ['-s', String(gone.id)])).code, 0)
  const st = await cli(['sem', 'stat', String(gone.id)])
  t.is(st.code, 1)
  t.regex(st.stderr, new RegExp(`^sysv-shm sem stat: semid ${gone.id}: (EINVAL|EIDRM): `))
})

test('sem usage errors exit 2 with a message on stderr and nothing on stdout; --help of each subcommand', async (t) => {
  const cases = [
    [['sem'], /^sysv-shm sem: give a subcommand; subcommands: ls, stat, rm/],
    [['sem', 'bogus'], /unknown subcommand "bogus"/],
    [['sem', 'ls', 'extra'], /^sysv-shm sem ls: unexpected argument "extra"/],
    [['sem', 'ls', '--orphans'], /^sysv-shm sem ls: Unknown option '--orphans'/],
    [['ls', '-s', '--orphans'], /semaphore sets have no attachments/],
    [['ls', '-s', '--human'], /semaphore sets have none/],
    [['ls', '-s', '-q'], /give -q \(queues\) or -s \(semaphore sets\), not both/],
    [['sem', 'stat'], /^sysv-shm sem stat: give an id or --key KEY/],
    [['sem', 'stat', '1', '2'], /give one id/],
    [['sem', 'stat', '1', '--key', '0x1'], /give an id or --key, not both/],
    [['sem', 'stat', '--key', '0'], /key 0 is IPC_PRIVATE/],
    [['sem', 'rm'], /^sysv-shm sem rm: give ids or --key KEY/],
    [['sem', 'rm', 'x1'], /an id must be a number/],
    [['sem', 'rm', '--key', '0'], /key 0 is IPC_PRIVATE/],
    [['help', 'sem', 'bogus'], /sem has no subcommand "bogus"/],
  ]
  for (const [args, message] of cases) {
    const r = await cli(args)
    t.is(r.code, 2, `sysv-shm ${args.join(' ')}: ${r.stderr}`)
    t.is(r.stdout, '', `sysv-shm ${args.join(' ')}`)
    t.regex(r.stderr, message, `sysv-shm ${args.join(' ')}`)
  }
  const main = await cli(['--help'])
  t.regex(main.stdout, /^  sem +semaphore sets: ls, stat, rm/m)
  const help = await cli(['sem', '--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /^Usage: sysv-shm sem <subcommand>/)
  t.is((await cli(['help', 'sem'])).stdout, help.stdout)
  for (const sub of ['ls', 'stat', 'rm']) {
    t.regex(help.stdout, new RegExp(`^  ${sub} +\\S`, 'm'))
    const h = await cli(['sem', sub, '--help'])
    t.is(h.code, 0)
    t.regex(h.stdout, new RegExp(`^Usage: sysv-shm sem ${sub}\\b`))
    t.is((await cli(['help', 'sem', sub])).stdout, h.stdout)
    t.is((await cli(['sem', sub, '-h'])).stdout, h.stdout)
  }
  t.regex((await cli(['ls', '--help'])).stdout, /^ {2}-s, --semaphores/m)
})


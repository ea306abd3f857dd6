// `sysv-shm queue ls|stat|rm` and `ls -q`, run as real child processes and
// checked against what ipcs -q, ipcs -q -i and ipcrm -q say about the same
// message queues, with processes really blocked on them. Also: negative keys
// as `--key -N` for every command that takes a key, and clean usage errors.
import { readFileSync } from 'node:fs'

import test from 'ava'

import { IPC_PRIVATE, MessageQueue, listQueues } from '../dist/index.js'

import { eventually, madeQueues, newQueue, removeOnTeardown, runNode, startNode } from './helpers.mjs'
import { Namespace, cli, hexKey, run } from './interop/helpers.mjs'

// ------------------------------------------------------------------ no queue left behind

/** Ids of the queues this file made (directly or through children), removed and checked at the end. */
const made = madeQueues
test.after.always('no message queue left behind', (t) => {
  const left = listQueues().filter((q) => made.has(q.id))
  for (const q of left) {
    try {
      MessageQueue.openById(q.id).remove()
    } catch {}
  }
  t.deepEqual(left.map((q) => q.id), [], 'message queues left behind')
})

let keyN = 0
/**
 * A key in a range of its own (0xe1......), not used by any queue now. Its high bit is set:
 * as C's signed `key_t` it is negative (`signed(key)`), which `--key` must take as `--key -N`.
 */
function freshQueueKey() {
  const used = new Set(listQueues().map((q) => q.key >>> 0))
  for (;;) {
    const key = (0xe100_0000 | ((process.pid & 0xffff) << 8) | (++keyN & 0xff)) >>> 0
    if (!used.has(key)) return key
  }
}
const signed = (key) => String(key | 0)

async function json(args, options) {
  const r = await cli([...args, '--json'], options)
  if (r.code !== 0) throw new Error(`sysv-shm ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

const QUEUE_FIELDS = [
  'id', 'key', 'keyHex', 'mode', 'modeOctal', 'perms', 'uid', 'user', 'gid', 'group', 'cuid', 'creatorUser',
  'cgid', 'creatorGroup', 'messages', 'bytes', 'maxBytes', 'lastSendPid', 'lastReceivePid', 'sendTime',
  'receiveTime', 'changeTime',
]

// ------------------------------------------------------------------ what ipcs prints

/** Rows of `ipcs -q` by msqid: key, owner, perms, used-bytes, messages. */
function ipcsRows(text) {
  const rows = new Map()
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/)
    if (/^0x[0-9a-f]{8}$/.test(w[0])) {
      rows.set(Number(w[1]), { key: w[0], owner: w[2], perms: w[3], bytes: Number(w[4]), messages: Number(w[5]) })
    }
  }
  return rows
}

/** `Fri Nov 27 05:34:45 2026` (ipcs runs with TZ=UTC) or `Not set`, as ms since the epoch or null. */
const ipcsTime = (s) => (s.trim() === 'Not set' ? null : Date.parse(`${s.trim()} UTC`))

/** `ipcs -q -i ID`: its `name=value` fields, and the three times. */
function ipcsInfo(text) {
  const field = (name) => text.match(new RegExp(`\\b${name}=(\\S+)`))?.[1]
  return {
    uid: Number(field('uid')), gid: Number(field('gid')), cuid: Number(field('cuid')), cgid: Number(field('cgid')),
    mode: Number.parseInt(field('mode'), 8), bytes: Number(field('cbytes')), maxBytes: Number(field('qbytes')),
    messages: Number(field('qnum')), lastSendPid: Number(field('lspid')), lastReceivePid: Number(field('lrpid')),
    sendTime: ipcsTime(text.match(/send_time=(.*)/)[1]),
    receiveTime: ipcsTime(text.match(/rcv_time=(.*)/)[1]),
    changeTime: ipcsTime(text.match(/change_time=(.*)/)[1]),
  }
}

// ------------------------------------------------------------------ the scene

/**
 * Three queues: A (key with the high bit set, 0640, two messages of 1 and 7 bytes left by
 * another process, which sent three and received the first), B (IPC_PRIVATE, empty, owned by uid 54321,
 * which has no name), C (key, 0644, group nogroup, empty).
 */
async function scene(t) {
  const keyA = freshQueueKey()
  const child = await runNode(`
    const q = shm.MessageQueue.create(${keyA}, { mode: 0o640 });
    q.send('first'); q.send('x'); q.receive({ type: 0 }); q.send('seventh');
    console.log(process.pid);
  `)
  t.is(child.code, 0, child.stderr)
  const childPid = Number(child.stdout.trim())
  const a = removeOnTeardown(t, MessageQueue.open(keyA))
  made.add(a.id)
  const b = newQueue(t, IPC_PRIVATE)
  b.set({ uid: 54321 })
  const keyC = freshQueueKey()
  const c = newQueue(t, keyC, { mode: 0o644 })
  c.set({ gid: 65534 })
  return { a, b, c, keyA, keyC, childPid }
}

// ------------------------------------------------------------------ tests

test.serial('queue ls, ls -q and --json show what ipcs -q shows: key, msqid, owner, perms, used-bytes, messages', async (t) => {
  const { a, b, c, keyA, keyC } = await scene(t)
  const text = (await cli(['queue', 'ls'])).stdout
  const ipcs = ipcsRows((await run('ipcs', ['-q'])).stdout)
  const queues = await json(['queue', 'ls'])
  // Other test files run in parallel and may add or remove queues between two listings: compare ours.
  const ours = (ids) => ids.filter((id) => [a.id, b.id, c.id].includes(id))
  t.deepEqual(ours(queues.map((q) => q.id)), ours([...ipcs.keys()]), "the kernel's order, as ipcs")
  t.is(ours(queues.map((q) => q.id)).length, 3)
  t.deepEqual(ours((await json(['ls', '-q'])).map((q) => q.id)), ours(queues.map((q) => q.id)))
  const rowsOf = (out) => out.split('\n').filter((l, i) => i === 0 || ours([Number(l.split(/\s+/)[1])]).length)
  t.deepEqual(rowsOf((await cli(['ls', '-q'])).stdout), rowsOf(text), 'ls -q is queue ls')
  t.regex(text.split('\n')[0], /^key\s+msqid\s+owner\s+perms\s+mode\s+used-bytes\s+messages$/)
  for (const q of [a, b, c]) {
    const i = ipcs.get(q.id)
    const j = queues.find((x) => x.id === q.id)
    t.truthy(i, `ipcs -q lists ${q.id}`)
    t.deepEqual(Object.keys(j), QUEUE_FIELDS)
    const row = text.split('\n').find((l) => l.split(/\s+/)[1] === String(q.id)).trim().split(/\s+/)
    // key msqid owner perms mode used-bytes messages
    t.deepEqual([row[0], row[2], row[4].slice(1), Number(row[5]), Number(row[6])], [i.key, i.owner, i.perms, i.bytes, i.messages])
    t.deepEqual([j.keyHex, j.user ?? String(j.uid), j.modeOctal.slice(1), j.bytes, j.messages], [i.key, i.owner, i.perms, i.bytes, i.messages])
  }
  t.like(queues.find((q) => q.id === a.id), { keyHex: hexKey(keyA), perms: 'rw-r-----', messages: 2, bytes: 8, user: 'root' })
  t.like(queues.find((q) => q.id === b.id), { key: 0, uid: 54321, user: null, creatorUser: 'root', messages: 0 })
  t.like(queues.find((q) => q.id === c.id), { keyHex: hexKey(keyC), modeOctal: '0644', group: 'nogroup', messages: 0 })
})

test.serial('queue stat shows what ipcs -q -i shows; --key in hex, decimal and as a negative decimal (--key -N)', async (t) => {
  const { a, keyA, childPid } = await scene(t)
  const ipcs = ipcsInfo((await run('ipcs', ['-q', '-i', String(a.id)])).stdout)
  const j = await json(['queue', 'stat', String(a.id)])
  t.deepEqual(Object.keys(j), QUEUE_FIELDS)
  t.like(j, {
    id: a.id, uid: ipcs.uid, gid: ipcs.gid, cuid: ipcs.cuid, cgid: ipcs.cgid, mode: ipcs.mode, bytes: ipcs.bytes,
    maxBytes: ipcs.maxBytes, messages: ipcs.messages, lastSendPid: ipcs.lastSendPid, lastReceivePid: ipcs.lastReceivePid,
  })
  t.like(j, { messages: 2, bytes: 8, lastSendPid: childPid, lastReceivePid: childPid })
  // ipcs prints seconds; the JSON has the kernel's seconds too.
  t.is(Date.parse(j.sendTime), ipcs.sendTime)
  t.is(Date.parse(j.receiveTime), ipcs.receiveTime)
  t.is(Date.parse(j.changeTime), ipcs.changeTime)

  const text = (await cli(['queue', 'stat', '--key', hexKey(keyA)])).stdout
  const noAgo = (out) => out.replace(/\(\d+[smhd] ago\)/g, '(ago)') // a second may pass between two runs
  t.true(keyA > 0x7fff_ffff && Number(signed(keyA)) < 0, 'the key is negative as a key_t')
  for (const form of [String(keyA), signed(keyA), `=${signed(keyA)}`]) {
    const args = form.startsWith('=') ? ['queue', 'stat', `--key${form}`] : ['queue', 'stat', '--key', form]
    const r = await cli(args)
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    t.is(noAgo(r.stdout), noAgo(text), args.join(' '))
  }
  t.regex(text, new RegExp(`^msqid +${a.id}$`, 'm'))
  t.regex(text, new RegExp(`^key +${hexKey(keyA)}$`, 'm'))
  t.regex(text, /^perms +rw-r----- \(0640\)$/m)
  t.regex(text, /^messages +2$/m)
  t.regex(text, /^used bytes +8 /m)
  t.regex(text, new RegExp(`^max bytes +${ipcs.maxBytes} `, 'm'))
  t.regex(text, new RegExp(`^last send pid +${childPid} \\(not running\\)$`, 'm'), 'the sender has exited')
  t.regex(text, new RegExp(`^last receive pid +${childPid} \\(not running\\)$`, 'm'))
})

test.serial('filters: --key (also -N), --mine, --empty, --older-than; --orphans says to use --empty', async (t) => {
  const { a, b, c, keyA } = await scene(t)
  const ids = (list) => list.map((q) => q.id)
  t.deepEqual(ids(await json(['queue', 'ls', '--key', hexKey(keyA)])), [a.id])
  t.deepEqual(ids(await json(['queue', 'ls', '--key', signed(keyA)])), [a.id])
  t.deepEqual(ids(await json(['ls', '-q', '--key', signed(keyA)])), [a.id])
  t.true(ids(await json(['queue', 'ls', '--key', '0'])).includes(b.id))
  t.deepEqual(await json(['queue', 'ls', '--older-than', '1h', '--key', hexKey(keyA)]), [])
  t.deepEqual(ids(await json(['queue', 'ls', '--older-than', '0s', '--key', hexKey(keyA)])), [a.id])
  const mine = ids(await json(['queue', 'ls', '--mine']))
  t.true(mine.includes(a.id) && mine.includes(b.id), 'root created b although 54321 owns it')
  for (const args of [['queue', 'ls', '--empty'], ['ls', '-q', '--empty']]) {
    const empty = ids(await json(args))
    t.true(empty.includes(b.id) && empty.includes(c.id), args.join(' '))
    t.false(empty.includes(a.id), `${args.join(' ')}: a holds two messages`)
  }
  for (const args of [['ls', '-q', '--orphans'], ['queue', 'ls', '--orphans']]) {
    const r = await cli(args)
    t.is(r.code, 2, args.join(' '))
    t.regex(r.stderr, args[0] === 'ls' ? /queues have no attachments: --empty lists those with no message/ : /^sysv-shm queue ls: Unknown option '--orphans'; queue ls takes .*--empty/)
  }
})

test.serial('queue rm removes ids and keys, wakes blocked processes with EIDRM, says what it dropped; --dry-run, --json; failures exit 1; ipcrm -q is seen', async (t) => {
  const key = freshQueueKey()
  const keyed = newQueue(t, key)
  keyed.send('abc')
  const byId = newQueue(t, IPC_PRIVATE)
  const other = newQueue(t, IPC_PRIVATE)
  const blocked = startNode(`
    const q = shm.MessageQueue.openById(Number(await next()));
    say('ready');
    try { q.receive(); say('ok') } catch (e) { say(e.code) }`)
  t.teardown(() => blocked.child.kill())
  blocked.send(String(byId.id))
  t.is(await blocked.next(), 'ready')
  await eventually(() => inMsgrcv(blocked.child.pid))

  const dry = await cli(['queue', 'rm', '-n', String(byId.id), '--key', signed(key)])
  t.is(dry.code, 0, dry.stderr)
  t.is(
    dry.stdout,
    `would remove msqid ${byId.id} (key 0x00000000, empty)\n` +
      `would remove msqid ${keyed.id} (key ${hexKey(key)}, holding 1 message of 3 bytes)\n`,
  )
  t.is(keyed.stat().messages, 1, 'dry run: nothing removed')

  const r = await cli(['queue', 'rm', String(byId.id), '2147483000', '--key', hexKey(key), '--key', hexKey(freshQueueKey())])
  t.is(r.code, 1)
  t.is(
    r.stdout,
    `removed msqid ${byId.id} (key 0x00000000, empty)\n` + `removed msqid ${keyed.id} (key ${hexKey(key)}, dropped 1 message of 3 bytes)\n`,
  )
  const errors = r.stderr.trim().split('\n')
  t.is(errors.length, 2)
  t.regex(errors[0], /^sysv-shm queue rm: msqid 2147483000: EINVAL: no message queue has this id \(msgctl: /)
  t.regex(errors[1], /^sysv-shm queue rm: key 0xe1[0-9a-f]{6}: ENOENT: no message queue has key /)
  t.is(await blocked.next(), 'EIDRM', 'the blocked receiver woke with EIDRM')
  t.is((await blocked.exit()).code, 0)
  const ipcs = ipcsRows((await run('ipcs', ['-q'])).stdout)
  t.false(ipcs.has(byId.id) || ipcs.has(keyed.id))
  t.true(ipcs.has(other.id))

  const j = await cli(['queue', 'rm', String(other.id), '999999', '--json'])
  t.is(j.code, 1)
  const out = JSON.parse(j.stdout)
  t.deepEqual(out.removed.map((q) => q.id), [other.id])
  t.deepEqual(Object.keys(out.removed[0]), QUEUE_FIELDS)
  t.like(out.failed[0], { id: 999999, key: null, code: 'EINVAL', errno: 22, syscall: 'msgctl' })
  t.false(out.dryRun)

  // ipcrm -q from outside: queue stat then fails as for any missing id.
  const gone = newQueue(t, IPC_PRIVATE)
  t.is((await run('ipcrm', ['-q', String(gone.id)])).code, 0)
  const st = await cli(['queue', 'stat', String(gone.id)])
  t.is(st.code, 1)
  t.regex(st.stderr, new RegExp(`^sysv-shm queue stat: msqid ${gone.id}: (EINVAL|EIDRM): `))
})

/** Whether process `pid` is blocked in msgrcv (/proc/PID/syscall: ipcs cannot tell). */
function inMsgrcv(pid) {
  const msgrcv = { x64: '70', arm64: '188' }[process.arch]
  try {
    return readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] === msgrcv
  } catch {
    return false
  }
}

test.serial('queue rm --empty, in a private IPC namespace: removes every empty queue (--mine, --older-than filter) and none that holds a message', async (t) => {
  const ns = new Namespace()
  t.teardown(() => ns.close())
  const node = (code) => ns.run([process.execPath, '-e', `const m = require(${JSON.stringify(new URL('../dist/index.js', import.meta.url).pathname)}); ${code}`])
  const made = await node(`
    const full = m.MessageQueue.create(m.IPC_PRIVATE); full.send('kept');
    const empty1 = m.MessageQueue.create(m.IPC_PRIVATE);
    const empty2 = m.MessageQueue.create(0x1234);
    const theirs = m.MessageQueue.create(m.IPC_PRIVATE); theirs.set({ uid: 54321 });
    console.log(JSON.stringify([full.id, empty1.id, empty2.id, theirs.id]));
  `)
  t.is(made.code, 0, made.stderr)
  const [full, empty1, empty2, theirs] = JSON.parse(made.stdout)

  t.deepEqual(JSON.parse((await ns.cli(['queue', 'rm', '--empty', '--older-than', '1h', '--json'])).stdout).removed, [], 'all were changed just now')
  const dry = await ns.cli(['queue', 'rm', '--empty', '-n'])
  t.is(
    dry.stdout,
    `would remove msqid ${empty1} (key 0x00000000, empty)\n` +
      `would remove msqid ${empty2} (key 0x00001234, empty)\n` +
      `would remove msqid ${theirs} (key 0x00000000, empty)\n`,
  )
  // --mine is owner or creator: 54321 owns `theirs`, but root created it.
  const r = await ns.cli(['queue', 'rm', '--empty', '--mine', '--json'])
  t.is(r.code, 0, r.stderr)
  t.deepEqual(JSON.parse(r.stdout).removed.map((q) => q.id), [empty1, empty2, theirs])
  const left = ipcsRows((await ns.run(['ipcs', '-q'])).stdout)
  t.deepEqual([...left.keys()], [full], 'only the queue that holds a message is left')
  t.is((await ns.cli(['queue', 'rm', '--empty'])).stdout, 'nothing to remove\n')
  t.is((await ns.run(['ipcrm', '-q', String(full)])).code, 0)
})

test('--key -N (a negative key_t) is a key for every command that takes one, never a usage error', async (t) => {
  const key = freshQueueKey() // no segment, set or queue has it
  const hex = hexKey(key)
  for (const args of [
    ['ls'], ['ls', '-q'], ['ls', '-s'], ['queue', 'ls'], ['sem', 'ls'],
  ]) {
    const r = await cli([...args, '--key', signed(key), '--json'])
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    t.deepEqual(JSON.parse(r.stdout), [], args.join(' '))
  }
  for (const [args, what] of [
    [['stat'], 'segment'], [['rm'], 'segment'], [['dump'], 'segment'],
    [['sem', 'stat'], 'semaphore set'], [['sem', 'rm'], 'semaphore set'],
    [['queue', 'stat'], 'message queue'], [['queue', 'rm'], 'message queue'],
  ]) {
    const r = await cli([...args, '--key', signed(key)])
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`)
    t.true(r.stderr.includes(`ENOENT: no ${what} has key ${hex}`), `${args.join(' ')}: ${r.stderr}`)
  }
  // After `--`, a negative number is a positional, as always.
  const r = await cli(['queue', 'rm', '--', '-5'])
  t.is(r.code, 2)
  t.regex(r.stderr, /an id must be a number/)
})

test('queue usage errors exit 2 with a clean message and nothing on stdout; rm -q and stat -q point to queue; --help', async (t) => {
  const cases = [
    [['queue'], /^sysv-shm queue: give a subcommand; subcommands: ls, stat, rm/],
    [['queue', 'bogus'], /unknown subcommand "bogus"/],
    [['queue', 'ls', 'extra'], /^sysv-shm queue ls: unexpected argument "extra"/],
    [['queue', 'stat'], /^sysv-shm queue stat: give an id or --key KEY/],
    [['queue', 'stat', '1', '2'], /give one id/],
    [['queue', 'stat', '1', '--key', '0x1'], /give an id or --key, not both/],
    [['queue', 'stat', '--key', '0'], /key 0 is IPC_PRIVATE, which names no message queue/],
    [['queue', 'stat', '--key'], /^sysv-shm queue stat: option '--key' needs a value\n/],
    [['queue', 'ls', '--json=yes'], /^sysv-shm queue ls: option '--json' takes no value\n/],
    [['queue', 'rm'], /^sysv-shm queue rm: give ids, --key KEY or --empty/],
    [['queue', 'rm', 'x1'], /an id must be a number/],
    [['queue', 'rm', '--empty', '1'], /--empty takes no ids or keys/],
    [['queue', 'rm', '--mine', '1'], /--older-than and --mine filter --empty; add --empty/],
    [['ls', '--empty'], /--empty is about message queues/],
    [['rm', '-q', '1'], /^sysv-shm rm: Unknown option '-q'; rm takes --key, .*; message queues: 'sysv-shm queue rm'\n/],
    [['stat', '-q', '1'], /^sysv-shm stat: Unknown option '-q'; stat takes --key, --json, -h, --help; message queues: 'sysv-shm queue stat'\n/],
    [['rm', '-s', '1'], /; semaphore sets: 'sysv-shm sem rm'\n/],
    [['help', 'queue', 'bogus'], /queue has no subcommand "bogus"/],
  ]
  for (const [args, message] of cases) {
    const r = await cli(args)
    t.is(r.code, 2, `sysv-shm ${args.join(' ')}: ${r.stderr}`)
    t.is(r.stdout, '', `sysv-shm ${args.join(' ')}`)
    t.regex(r.stderr, message, `sysv-shm ${args.join(' ')}`)
    t.false(r.stderr.includes('"-'), `no nested quoting: ${r.stderr}`)
  }
  const main = await cli(['--help'])
  t.regex(main.stdout, /^  queue +message queues: ls, stat, rm/m)
  const help = await cli(['queue', '--help'])
  t.is(help.code, 0)
  t.regex(help.stdout, /^Usage: sysv-shm queue <subcommand>/)
  t.is((await cli(['help', 'queue'])).stdout, help.stdout)
  for (const sub of ['ls', 'stat', 'rm']) {
    t.regex(help.stdout, new RegExp(`^  ${sub} +\\S`, 'm'))
    const h = await cli(['queue', sub, '--help'])
    t.is(h.code, 0)
    t.regex(h.stdout, new RegExp(`^Usage: sysv-shm queue ${sub}\\b`))
    t.is((await cli(['help', 'queue', sub])).stdout, h.stdout)
  }
  t.regex((await cli(['ls', '--help'])).stdout, /^ {2}--empty +with -q: only queues that hold no message/m)
})

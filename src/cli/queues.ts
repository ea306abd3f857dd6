/**
 * `sysv-shm queue ls|stat|rm` (and `ls -q`): message queues, like `ipcs -q`,
 * `ipcs -q -i` and `ipcrm -q`.
 * @internal
 * @module
 */

import { MessageQueue, listQueues, type QueueInfo } from '../message-queue'
import type { Command } from './command'
import * as f from './format'
import { commandGroup } from './group'
import { QUEUES, json, lsKind, select, statAny, type QueueJson } from './kinds'
import { byKey, describe, err, failureJson, out, type Hints } from './io'
import { UsageError, noPrivateKey, parseId, parseKey } from './parse'
import { pidState } from './procs'

const HINTS: Hints = {
  EINVAL: 'no message queue has this id',
  EIDRM: 'the message queue has been removed',
  EACCES: "the queue's mode does not let you read it",
  EPERM: 'only its owner, its creator or a privileged user may do this',
}

const FILTERS = `  --key KEY          only the queue of this key (0x hex or decimal; 0 lists IPC_PRIVATE ones)
  --mine             only queues you own or created
  --empty            only queues that hold no message
  --older-than DUR   only queues with no send, receive or change for DUR (30s, 10m, 2h, 1d, 1w)`

const ls: Command = {
  summary: 'list message queues, like ipcs -q',
  help: `Usage: sysv-shm queue ls [-l] [--json] [--human] [--key KEY] [--mine] [--empty] [--older-than DUR]
       (the same as sysv-shm ls -q)

Lists every message queue of this IPC namespace, like ipcs -q, in the
kernel's order: key (hex), msqid, owner, permissions (rwx and octal), the
bytes of the messages it holds (used-bytes) and their number.

Options:
  -l, --long         add group, max-bytes (msg_qbytes), creator user and group,
                     the pids of the last send and receive, and the last send,
                     receive and change times (like ipcs -q -c, -p and -t)
  --json             print a JSON array of queues with every field (see docs/guide.md)
  --human            sizes as 4.0 KiB instead of bytes
${FILTERS}
  -h, --help         show this help
`,
  options: {
    long: { type: 'boolean', short: 'l' },
    human: { type: 'boolean' },
    key: { type: 'string' },
    mine: { type: 'boolean' },
    empty: { type: 'boolean' },
    'older-than': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
    return lsKind(QUEUES, values)
  },
}



const stat: Command = {
  summary: 'show one message queue, like ipcs -q -i',
  help: `Usage: sysv-shm queue stat <id> [--json]
       sysv-shm queue stat --key KEY [--json]

Shows one message queue (like ipcs -q -i ID): key, permissions, owner and
creator, the messages it holds and their bytes, its byte limit (msg_qbytes),
the pids of the last send and receive (and whether they still run), and the
last send, receive and change times. Without permission to read the queue it
shows what the kernel lists for everyone (as ipcs -q does).

Options:
  --key KEY    the queue with this key (0x hex or decimal) instead of an id
  --json       print the queue as a JSON object: the fields of queue ls --json
  -h, --help   show this help
`,
  options: { key: { type: 'string' }, json: { type: 'boolean' } },
  async run(values, positionals) {
    let subject = typeof values.key === 'string' ? `key ${values.key}` : `msqid ${positionals[0] ?? ''}`
    try {
      let id: number
      if (typeof values.key === 'string') {
        if (positionals.length) throw new UsageError('give an id or --key, not both')
        const key = noPrivateKey(parseKey(values.key), 'message queue')
        subject = `key ${f.hexKey(key)}`
        id = byKey(listQueues(), key, 'message queue').id
      } else {
        if (positionals.length !== 1) throw new UsageError(positionals.length ? 'give one id' : 'give an id or --key KEY')
        id = parseId(positionals[0]!)
        subject = `msqid ${id}`
      }
      const q = statAny(QUEUES, id).info
      if (values.json) {
        await out(json(QUEUES.json(q)))
        return 0
      }
      const who = (uid: number, gid: number): string => `${f.user(uid)}:${f.group(gid)} (uid ${uid}, gid ${gid})`
      const when = (d: Date | null): string => (d ? `${f.time(d)} (${f.ago(d)})` : '-')
      const pid = (p: number): string => (p === 0 ? '-' : `${p}${pidState(p)}`)
      const lines: [string, string][] = [
        ['msqid', String(q.id)],
        ['key', q.key === 0 ? `${f.hexKey(0)} (IPC_PRIVATE)` : f.hexKey(q.key)],
        ['perms', `${f.rwx(q.mode)} (${f.octal(q.mode)})`],
        ['owner', who(q.uid, q.gid)],
        ['creator', who(q.cuid, q.cgid)],
        ['messages', String(q.messages)],
        ['used bytes', `${q.bytes} (${f.human(q.bytes)})`],
        ['max bytes', `${q.maxBytes} (${f.human(q.maxBytes)})`],
        ['last send pid', pid(q.lastSendPid)],
        ['last receive pid', pid(q.lastReceivePid)],
        ['send time', when(q.sendTime)],
        ['receive time', when(q.receiveTime)],
        ['change time', when(q.changeTime)],
      ]
      const w = Math.max(...lines.map(([k]) => k.length))
      await out(lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n')
      return 0
    } catch (e) {
      if (e instanceof UsageError) throw e
      err(`sysv-shm queue stat: ${describe(subject, e, HINTS)}`)
      return 1
    }
  },
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

const rm: Command = {
  summary: 'remove message queues, like ipcrm -q / -Q',
  help: `Usage: sysv-shm queue rm <id>... [--key KEY]... [--json] [--dry-run]
       sysv-shm queue rm --empty [--older-than DUR] [--mine] [--json] [--dry-run]

Removes message queues (msgctl IPC_RMID), asking nothing, and prints each one
it removed with the messages it still held, which are lost. Removal is
immediate: processes blocked sending to or receiving from the queue wake with
EIDRM. Exit code 1 if any removal failed.

Options:
  --key KEY          the queue with this key (0x hex or decimal); repeatable
  --empty            every queue that holds no message
  --older-than DUR   with --empty: only those with no send, receive or change
                     for DUR (30s, 10m, 2h, 1d, 1w)
  --mine             with --empty: only queues you own or created
  -n, --dry-run      print what would be removed, remove nothing
  --json             print {"removed": [queues], "failed": [errors], "dryRun": bool}
  -h, --help         show this help
`,
  options: {
    key: { type: 'string', multiple: true },
    empty: { type: 'boolean' },
    'older-than': { type: 'string' },
    mine: { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    const keys = (values.key as string[] | undefined) ?? []
    const empty = values.empty === true
    if (empty && (keys.length || positionals.length)) throw new UsageError('--empty takes no ids or keys')
    if (!empty && (values['older-than'] !== undefined || values.mine)) {
      throw new UsageError('--older-than and --mine filter --empty; add --empty')
    }
    if (!empty && !keys.length && !positionals.length) throw new UsageError('give ids, --key KEY or --empty')
    const dryRun = values['dry-run'] === true
    const todo: { subject: string; id?: number; key?: number; listed?: QueueInfo }[] = empty
      ? select(QUEUES, { empty: true, mine: values.mine, 'older-than': values['older-than'] }).map((q) => ({
          subject: `msqid ${q.id}`,
          id: q.id,
          listed: q,
        }))
      : [
          ...positionals.map(parseId).map((id) => ({ subject: `msqid ${id}`, id })),
          ...keys.map((k) => noPrivateKey(parseKey(k), 'message queue')).map((key) => ({ subject: `key ${f.hexKey(key)}`, key })),
        ]
    const removed: QueueJson[] = []
    const failed: (ReturnType<typeof failureJson> & { id: number | null; key: number | null })[] = []
    const lines: string[] = []
    for (const r of todo) {
      try {
        const q = r.key !== undefined ? byKey(listQueues(), r.key, 'message queue') : statAny(QUEUES, r.id!).info
        // --empty: a message may have come since the listing, or the id may name a new queue.
        if (r.listed && (q.messages > 0 || q.key !== r.listed.key || q.cuid !== r.listed.cuid)) continue
        if (!dryRun) MessageQueue.openById(q.id).remove()
        removed.push(QUEUES.json(q))
        const held = q.messages ? `, ${dryRun ? 'holding' : 'dropped'} ${plural(q.messages, 'message')} of ${plural(q.bytes, 'byte')}` : ', empty'
        lines.push(`${dryRun ? 'would remove' : 'removed'} msqid ${q.id} (key ${f.hexKey(q.key)}${held})`)
      } catch (e) {
        failed.push({ id: r.id ?? null, key: r.key ?? null, ...failureJson(e) })
        err(`sysv-shm queue rm: ${describe(r.subject, e, r.key !== undefined ? {} : HINTS)}`)
      }
    }
    if (values.json) await out(json({ removed, failed, dryRun }))
    else if (lines.length) await out(lines.join('\n') + '\n')
    else if (!failed.length) await out('nothing to remove\n')
    return failed.length ? 1 : 0
  },
}

export const queue: Command = commandGroup(
  'queue',
  'message queues: ls, stat, rm (like ipcs -q, ipcs -q -i, ipcrm -q)',
  'System V message queues.',
  'ls -q',
  { ls, stat, rm },
)

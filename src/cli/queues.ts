/**
 * `sysv-shm ls -q`: message queues, like `ipcs -q`.
 * @internal
 * @module
 */
import { listQueues, type QueueInfo } from '../message-queue'
import * as f from './format'
import { out } from './io'
import { UsageError, parseDuration, parseKey } from './parse'

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>

/**
 * The JSON form of a queue, printed by `ls -q --json`.
 * Its fields are part of the CLI's documented interface: add, never rename.
 */
export interface QueueJson {
  id: number
  key: number
  keyHex: string
  mode: number
  modeOctal: string
  perms: string
  uid: number
  user: string | null
  gid: number
  group: string | null
  cuid: number
  creatorUser: string | null
  cgid: number
  creatorGroup: string | null
  messages: number
  bytes: number
  maxBytes: number
  lastSendPid: number
  lastReceivePid: number
  sendTime: string | null
  receiveTime: string | null
  changeTime: string | null
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)

export function queueJson(q: QueueInfo): QueueJson {
  return {
    id: q.id,
    key: q.key >>> 0,
    keyHex: f.hexKey(q.key),
    mode: q.mode & 0o777,
    modeOctal: f.octal(q.mode),
    perms: f.rwx(q.mode),
    uid: q.uid,
    user: f.userName(q.uid),
    gid: q.gid,
    group: f.groupName(q.gid),
    cuid: q.cuid,
    creatorUser: f.userName(q.cuid),
    cgid: q.cgid,
    creatorGroup: f.groupName(q.cgid),
    messages: q.messages,
    bytes: q.bytes,
    maxBytes: q.maxBytes,
    lastSendPid: q.lastSendPid,
    lastReceivePid: q.lastReceivePid,
    sendTime: iso(q.sendTime),
    receiveTime: iso(q.receiveTime),
    changeTime: iso(q.changeTime),
  }
}

/** The last time anything happened to the queue: a send, a receive, or creation / `IPC_SET`. */
const lastActivity = (q: QueueInfo): number =>
  Math.max(q.sendTime?.getTime() ?? 0, q.receiveTime?.getTime() ?? 0, q.changeTime?.getTime() ?? 0)

/** `ls -q`: the queues, filtered by `--key`, `--mine`, `--older-than`, as a table or JSON. */
export async function lsQueues(values: Values): Promise<number> {
  if (values.orphans) throw new UsageError('--orphans is about segments (attach count 0); queues have no attachments')
  const key = typeof values.key === 'string' ? parseKey(values.key) : undefined
  const olderThan = typeof values['older-than'] === 'string' ? parseDuration(values['older-than']) : undefined
  const uid = process.getuid?.() ?? -1
  const now = Date.now()
  const queues = listQueues().filter(
    (q) =>
      (key === undefined || q.key >>> 0 === key) &&
      (!values.mine || q.uid === uid || q.cuid === uid) &&
      (olderThan === undefined || lastActivity(q) <= now - olderThan),
  )
  if (values.json) {
    await out(JSON.stringify(queues.map(queueJson), null, 2) + '\n')
    return 0
  }
  const long = values.long === true
  const size = (n: number): string => (values.human ? f.human(n) : String(n))
  const columns: f.Column[] = [
    { title: 'key' },
    { title: 'msqid', right: true },
    { title: 'owner' },
    ...(long ? [{ title: 'group' }] : []),
    { title: 'perms' },
    { title: 'mode' },
    { title: 'used-bytes', right: true },
    { title: 'messages', right: true },
    ...(long
      ? [
          { title: 'max-bytes', right: true },
          { title: 'cuser' },
          { title: 'cgroup' },
          { title: 'lspid', right: true },
          { title: 'lrpid', right: true },
          { title: 'sent' },
          { title: 'received' },
          { title: 'changed' },
        ]
      : []),
  ]
  const rows = queues.map((q) => [
    f.hexKey(q.key),
    String(q.id),
    f.user(q.uid),
    ...(long ? [f.group(q.gid)] : []),
    f.rwx(q.mode),
    f.octal(q.mode),
    size(q.bytes),
    String(q.messages),
    ...(long
      ? [
          size(q.maxBytes),
          f.user(q.cuid),
          f.group(q.cgid),
          String(q.lastSendPid),
          String(q.lastReceivePid),
          f.time(q.sendTime),
          f.time(q.receiveTime),
          f.time(q.changeTime),
        ]
      : []),
  ])
  await out(f.table(columns, rows).join('\n') + '\n')
  return 0
}

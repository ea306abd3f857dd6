/**
 * The three kinds of IPC object as the CLI shows them, one table each: how to list them and read
 * one by id (with `*_STAT_ANY` where `IPC_STAT` is refused, as `ipcs` does), their columns for
 * `ls` / `ls -q` / `ls -s`, their JSON form, and their filters. {@link lsKind} is the one lister,
 * {@link select} the one filter block, {@link statAny} the one way to read an object by id.
 * @internal
 * @module
 */

import { ShmError } from '../errors'
import type { IpcInfo } from '../ipc'
import { MessageQueue, listQueues, statAnyQueue, type QueueInfo } from '../message-queue'
import { Semaphore, listSemaphores, statAnySemaphore, type SemaphoreInfo } from '../semaphore'
import { SharedMemory, listSegments, statAnySegment, type SegmentInfo } from '../shared-memory'
import type { Values } from './command'
import * as f from './format'
import { out } from './io'
import { UsageError, parseDuration, parseKey } from './parse'


/** A column of `ls`: heading, alignment, whether only `-l` shows it, and its cell. */
interface Cell<I> extends f.Column {
  long?: true
  cell: (i: I, size: (n: number) => string) => string
}

/** One kind of IPC object, as the CLI lists, reads and prints it. */
export interface Kind<I extends IpcInfo, J> {
  /** `segment`, `message queue`, `semaphore set`: in messages. */
  noun: string
  list(): I[]
  /** `IPC_STAT` by id (throws `EACCES` without read permission). */
  stat(id: number): I
  /** `*_STAT_ANY` by id: no read permission needed; `null` when gone. */
  statAny(id: number): I | null
  columns: Cell<I>[]
  json(i: I): J
  /** The last attach/detach, send/receive or semop, or change, in ms. */
  lastActivity(i: I): number
  /** The kind's own filter (`--orphans`, `--empty`), given the command's values. */
  filter?: (values: Values) => (i: I) => boolean
  /** Refuses options that are about another kind. */
  check(values: Values): void
}

/** `2026-11-27T04:24:25.000Z`, or `null` for never: the times of the JSON forms. */
export const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)

/** Printed JSON: two-space indent and a final newline. */
export const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'

/** The JSON fields every kind has, from `ipc_perm`, in the documented order. */
function permJson(i: IpcInfo) {
  return {
    id: i.id,
    key: i.key >>> 0,
    keyHex: f.hexKey(i.key),
    mode: i.mode & 0o777,
    modeOctal: f.octal(i.mode),
    perms: f.rwx(i.mode),
    uid: i.uid,
    user: f.userName(i.uid),
    gid: i.gid,
    group: f.groupName(i.gid),
    cuid: i.cuid,
    creatorUser: f.userName(i.cuid),
    cgid: i.cgid,
    creatorGroup: f.groupName(i.cgid),
  }
}

type PermJson = ReturnType<typeof permJson>

/**
 * The JSON form of a segment, printed by `ls --json`, `stat --json` and `rm --json`.
 * Its fields are part of the CLI's documented interface: add, never rename.
 */
export interface SegmentJson extends PermJson {
  size: number
  creatorPid: number
  lastPid: number
  attachCount: number
  attachTime: string | null
  detachTime: string | null
  changeTime: string | null
  removed: boolean
  locked: boolean
}

/**
 * The JSON form of a queue, printed by `queue ls --json` (`ls -q --json`), `queue stat --json`
 * and `queue rm --json`. Its fields are part of the CLI's documented interface: add, never rename.
 */
export interface QueueJson extends PermJson {
  messages: number
  bytes: number
  maxBytes: number
  lastSendPid: number
  lastReceivePid: number
  sendTime: string | null
  receiveTime: string | null
  changeTime: string | null
}

/**
 * The JSON form of a semaphore set, printed by `sem ls --json`, `sem stat --json` and
 * `sem rm --json`. Its fields are part of the CLI's documented interface: add, never rename.
 */
export interface SemaphoreJson extends PermJson {
  /** nsems: how many semaphores the set has. */
  count: number
  opTime: string | null
  changeTime: string | null
}

const latest = (...dates: (Date | null)[]): number => Math.max(0, ...dates.map((d) => d?.getTime() ?? 0))

/** The columns every kind starts with: key, id, owner, (group), permissions. */
function head<I extends IpcInfo>(idTitle: string): Cell<I>[] {
  return [
    { title: 'key', cell: (i) => f.hexKey(i.key) },
    { title: idTitle, right: true, cell: (i) => String(i.id) },
    { title: 'owner', cell: (i) => f.user(i.uid) },
    { title: 'group', long: true, cell: (i) => f.group(i.gid) },
    { title: 'perms', cell: (i) => f.rwx(i.mode) },
    { title: 'mode', cell: (i) => f.octal(i.mode) },
  ]
}

/** The creator columns of `-l`. */
function creator<I extends IpcInfo>(): Cell<I>[] {
  return [
    { title: 'cuser', long: true, cell: (i) => f.user(i.cuid) },
    { title: 'cgroup', long: true, cell: (i) => f.group(i.cgid) },
  ]
}

const time = <I>(title: string, of: (i: I) => Date | null): Cell<I> => ({ title, long: true, cell: (i) => f.time(of(i)) })

export const SEGMENTS: Kind<SegmentInfo, SegmentJson> = {
  noun: 'segment',
  list: listSegments,
  stat: (id) => SharedMemory.statById(id),
  statAny: statAnySegment,
  columns: [
    ...head('shmid'),
    { title: 'bytes', right: true, cell: (s, size) => size(s.size) },
    { title: 'nattch', right: true, cell: (s) => String(s.attachCount) },
    { title: 'status', cell: (s) => f.status(s) || '-' },
    ...creator<SegmentInfo>(),
    { title: 'cpid', right: true, long: true, cell: (s) => String(s.creatorPid) },
    { title: 'lpid', right: true, long: true, cell: (s) => String(s.lastPid) },
    time('attached', (s) => s.attachTime),
    time('detached', (s) => s.detachTime),
    time('changed', (s) => s.changeTime),
  ],
  json: (s) => {
    const p = permJson(s)
    return {
      ...{ id: p.id, key: p.key, keyHex: p.keyHex, size: s.size },
      ...p,
      creatorPid: s.creatorPid,
      lastPid: s.lastPid,
      attachCount: s.attachCount,
      attachTime: iso(s.attachTime),
      detachTime: iso(s.detachTime),
      changeTime: iso(s.changeTime),
      removed: s.removed,
      locked: s.locked,
    }
  },
  lastActivity: (s) => latest(s.attachTime, s.detachTime, s.changeTime),
  filter: (values) => (s) => values.orphans !== true || s.attachCount === 0,
  check(values) {
    if (values.empty) throw new UsageError('--empty is about message queues (no message): add -q')
  },
}

export const QUEUES: Kind<QueueInfo, QueueJson> = {
  noun: 'message queue',
  list: listQueues,
  stat: (id) => MessageQueue.openById(id).stat(),
  statAny: statAnyQueue,
  columns: [
    ...head('msqid'),
    { title: 'used-bytes', right: true, cell: (q, size) => size(q.bytes) },
    { title: 'messages', right: true, cell: (q) => String(q.messages) },
    { title: 'max-bytes', right: true, long: true, cell: (q, size) => size(q.maxBytes) },
    ...creator<QueueInfo>(),
    { title: 'lspid', right: true, long: true, cell: (q) => String(q.lastSendPid) },
    { title: 'lrpid', right: true, long: true, cell: (q) => String(q.lastReceivePid) },
    time('sent', (q) => q.sendTime),
    time('received', (q) => q.receiveTime),
    time('changed', (q) => q.changeTime),
  ],
  json: (q) => ({
    ...permJson(q),
    messages: q.messages,
    bytes: q.bytes,
    maxBytes: q.maxBytes,
    lastSendPid: q.lastSendPid,
    lastReceivePid: q.lastReceivePid,
    sendTime: iso(q.sendTime),
    receiveTime: iso(q.receiveTime),
    changeTime: iso(q.changeTime),
  }),
  lastActivity: (q) => latest(q.sendTime, q.receiveTime, q.changeTime),
  filter: (values) => (q) => !values.empty || q.messages === 0,
  check(values) {
    if (values.orphans) {
      throw new UsageError('--orphans is about segments (attach count 0); queues have no attachments: --empty lists those with no message')
    }
  },
}

export const SEMAPHORES: Kind<SemaphoreInfo, SemaphoreJson> = {
  noun: 'semaphore set',
  list: listSemaphores,
  stat: (id) => Semaphore.statById(id),
  statAny: statAnySemaphore,
  columns: [
    ...head('semid'),
    { title: 'nsems', right: true, cell: (s) => String(s.count) },
    ...creator<SemaphoreInfo>(),
    time('last-op', (s) => s.opTime),
    time('changed', (s) => s.changeTime),
  ],
  json: (s) => ({ ...permJson(s), count: s.count, opTime: iso(s.opTime), changeTime: iso(s.changeTime) }),
  lastActivity: (s) => latest(s.opTime, s.changeTime),
  check(values) {
    if (values.empty) throw new UsageError('--empty is about message queues (no message): add -q')
    if (values.human) throw new UsageError('--human formats sizes; semaphore sets have none')
    if (values.orphans) throw new UsageError('--orphans is about segments (attach count 0); semaphore sets have no attachments')
  },
}

/**
 * `IPC_STAT` of the object with this id or, where that is refused with `EACCES` (no read
 * permission), what `*_STAT_ANY` shows, as `ipcs` does; `readable` tells which. Rethrows when
 * neither finds it.
 */
export function statAny<I extends IpcInfo, J>(kind: Kind<I, J>, id: number): { info: I; readable: boolean } {
  try {
    return { info: kind.stat(id), readable: true }
  } catch (e) {
    const info = e instanceof ShmError && e.code === 'EACCES' ? kind.statAny(id) : null
    if (info) return { info, readable: false }
    throw e
  }
}

/** The objects `--key`, `--mine`, `--older-than` and the kind's own filter select, in the kernel's order. */
export function select<I extends IpcInfo, J>(kind: Kind<I, J>, values: Values, all: I[] = kind.list()): I[] {
  const key = typeof values.key === 'string' ? parseKey(values.key) : undefined
  const olderThan = typeof values['older-than'] === 'string' ? parseDuration(values['older-than']) : undefined
  const uid = process.getuid?.() ?? -1
  const now = Date.now()
  const own = kind.filter?.(values) ?? (() => true)
  return all.filter(
    (i) =>
      (key === undefined || i.key >>> 0 === key) &&
      (!values.mine || i.uid === uid || i.cuid === uid) &&
      (olderThan === undefined || kind.lastActivity(i) <= now - olderThan) &&
      own(i),
  )
}

/** `ls`, `ls -q`, `ls -s` (and `queue ls`, `sem ls`): the selected objects as a table, or JSON with `--json`. */
export async function lsKind<I extends IpcInfo, J>(kind: Kind<I, J>, values: Values): Promise<number> {
  kind.check(values)
  const all = select(kind, values)
  if (values.json) {
    await out(json(all.map((i) => kind.json(i))))
    return 0
  }
  const columns = kind.columns.filter((c) => !c.long || values.long === true)
  const size = (n: number): string => (values.human ? f.human(n) : String(n))
  const rows = all.map((i) => columns.map((c) => c.cell(i, size)))
  await out(f.table(columns, rows).join('\n') + '\n')
  return 0
}

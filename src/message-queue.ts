/**
 * The `MessageQueue` class and the system-wide view of queues (`ipcs -q`).
 * @module
 */
/// <reference types="node" preserve="true" />
import type { NativeMsgStat } from '../binding'
import { abortError, abortSignal, run, timeout } from './async'

import { native } from './binding'
import { ShmError } from './errors'
import { date, perm, type IpcInfo } from './ipc'
import * as check from './validate'

/** Options of {@link MessageQueue.create}. */
export interface QueueCreateOptions {
  /** Permission bits, `0` to `0o777`. Default `0o600` (owner read/write only). */
  mode?: number
  /** `IPC_EXCL`: fail with `EEXIST` if the key exists. Default `true`; `false` opens an existing queue. */
  exclusive?: boolean
  /**
   * `msg_qbytes` of a queue this call creates: the most bytes of message text it holds (and the
   * most messages). Default: the kernel's `msgmnb` (16384 on Linux). Above `msgmnb` it needs
   * `CAP_SYS_RESOURCE` (`EPERM` otherwise). Not applied when an existing queue is opened.
   */
  maxBytes?: number
}

/** Options of {@link MessageQueue.send}. */
export interface SendOptions {
  /** The message type (`mtype`): an integer from 1. Default `1`. */
  type?: number
  /** Wait while the queue is full. Default `true`; `false` is `IPC_NOWAIT` (`EAGAIN` when full). */
  block?: boolean
  /** With `block`, wait at most this many milliseconds, then throw `EAGAIN`. Default: no limit. */
  timeoutMs?: number
}

/** Options of {@link MessageQueue.sendAsync}. */
export interface SendAsyncOptions {
  /** The message type (`mtype`): an integer from 1. Default `1`. */
  type?: number
  /** Wait at most this many milliseconds for room, then reject with `EAGAIN`. Default: no limit. */
  timeoutMs?: number
  /** Aborting it stops the wait: the promise rejects with an `AbortError` and nothing is sent. */
  signal?: AbortSignal
}

/** Which message to take, common to the receive methods. */
export interface ReceiveSelector {
  /**
   * `msgtyp`: `0` (default) takes the oldest message; `n > 0` the oldest of type `n`; `n < 0` the
   * oldest of the lowest type `<= |n|` (a priority queue).
   */
  type?: number
  /** With `type > 0`: the oldest message of any *other* type (`MSG_EXCEPT`). Default `false`. */
  except?: boolean
  /**
   * The longest text accepted, in bytes. A longer message throws `E2BIG` and stays in the queue
   * (unless `truncate`). Default: the kernel's `msgmax`, so that every message fits.
   */
  maxSize?: number
  /** Take a longer message cut to `maxSize` bytes (`MSG_NOERROR`); the rest is lost. Default `false`. */
  truncate?: boolean
}

/** Options of {@link MessageQueue.receive}. */
export interface ReceiveOptions extends ReceiveSelector {
  /** Wait until a message comes. Default `true`; `false` is `IPC_NOWAIT` (`ENOMSG` when none). */
  block?: boolean
  /** With `block`, wait at most this many milliseconds, then throw `ENOMSG`. Default: no limit. */
  timeoutMs?: number
}

/** Options of {@link MessageQueue.receiveAsync}. */
export interface ReceiveAsyncOptions extends ReceiveSelector {
  /** Wait at most this many milliseconds, then reject with `ENOMSG`. Default: no limit. */
  timeoutMs?: number
  /** Aborting it stops the wait: the promise rejects with an `AbortError` and no message is taken. */
  signal?: AbortSignal
}

/** Changes made by {@link MessageQueue.set} (`IPC_SET`). */
export interface QueueSetOptions {
  uid?: number
  gid?: number
  mode?: number
  /** New `msg_qbytes`; above the kernel's `msgmnb` it needs `CAP_SYS_RESOURCE`. */
  maxBytes?: number
}

/** A message: its type and its bytes. */
export interface QueueMessage {
  /** `mtype`, from 1. (A C or Python peer may send types above 2^53; they read rounded.) */
  type: number
  /**
   * The text: a new `Buffer` of exactly the message's length, owned by the caller. (It views its
   * own `ArrayBuffer` from byte 8 on: mind `byteOffset` when you wrap `data.buffer`.)
   */
  data: Buffer
}

/** A queue as `msgctl(IPC_STAT)` and `ipcs -q` describe it (`struct msqid_ds`). */
export interface QueueInfo extends IpcInfo {
  /** Messages in the queue (`msg_qnum`). */
  messages: number
  /** Bytes of text in the queue (`msg_cbytes`); types are not counted. */
  bytes: number
  /** The most bytes of text the queue holds (`msg_qbytes`); also the most messages. */
  maxBytes: number
  /** Pid of the last send and of the last receive (`msg_lspid`, `msg_lrpid`); 0 if none. */
  lastSendPid: number
  lastReceivePid: number
  /** Last send, last receive and last change; `null` if none yet. */
  sendTime: Date | null
  receiveTime: Date | null
  changeTime: Date | null
}

/** The kernel's message queue limits and usage (`ipcs -q -l`, `ipcs -q -u`). */
export interface QueueLimits {
  /** `kernel.msgmax`: the longest message text, in bytes. */
  maxMessageSize: number
  /** `kernel.msgmnb`: `maxBytes` of a new queue, and the most an unprivileged owner may set. */
  defaultMaxBytes: number
  /** `kernel.msgmni`: how many queues may exist. */
  maxQueues: number
  /** Queues, messages and bytes of text that exist now, in all queues. */
  usedQueues: number
  totalMessages: number
  totalBytes: number
}

function info(s: NativeMsgStat): QueueInfo {
  return {
    ...perm(s.id, s.perm),
    messages: s.messages,
    bytes: s.bytes,
    maxBytes: s.maxBytes,
    lastSendPid: s.lastSendPid,
    lastReceivePid: s.lastReceivePid,
    sendTime: date(s.sendTime),
    receiveTime: date(s.receiveTime),
    changeTime: date(s.changeTime),
  }
}

/** A message from the addon: `mtype` as 8 bytes little-endian, then the text. */
function message(raw: Buffer): QueueMessage {
  const type = raw.readInt32LE(4) * 0x1_0000_0000 + raw.readUInt32LE(0)
  return { type, data: raw.subarray(8) }
}

const CREATE_KEYS = ['mode', 'exclusive', 'maxBytes'] as const
const SEND_KEYS = ['type', 'block', 'timeoutMs'] as const
const TRY_SEND_KEYS = ['type'] as const
const SEND_ASYNC_KEYS = ['type', 'timeoutMs', 'signal'] as const
const SELECT_KEYS = ['type', 'except', 'maxSize', 'truncate'] as const
const RECEIVE_KEYS = [...SELECT_KEYS, 'block', 'timeoutMs'] as const
const RECEIVE_ASYNC_KEYS = [...SELECT_KEYS, 'timeoutMs', 'signal'] as const
const SET_KEYS = ['uid', 'gid', 'mode', 'maxBytes'] as const
const MAX_TYPE = Number.MAX_SAFE_INTEGER
/** `msgmax` and `msg_qbytes` are C ints and longs; this bound keeps sizes sane. */
const MAX_BYTES = 0x7fff_ffff

function sendType(value: unknown): number {
  return value === undefined ? 1 : check.integer('type', value, 1, MAX_TYPE)
}

function blocking(block: unknown, timeoutMs: unknown): { block: boolean; timeoutMs: number | undefined } {
  const b = check.boolean('block', block) ?? true
  const t = timeout(timeoutMs)
  if (!b && t !== undefined) throw check.rangeError('timeoutMs needs block: true (block: false never waits)')
  return { block: b, timeoutMs: t }
}

interface Selector {
  type: number
  except: boolean
  maxSize: number | undefined
  truncate: boolean
}

function selector(o: ReceiveSelector): Selector {
  const type = o.type === undefined ? 0 : check.integer('type', o.type, -MAX_TYPE, MAX_TYPE)
  const except = check.boolean('except', o.except) ?? false
  if (except && type <= 0) throw check.rangeError('except (MSG_EXCEPT) needs a type above 0')
  const maxSize = o.maxSize === undefined ? undefined : check.integer('maxSize', o.maxSize, 0, MAX_BYTES)
  const truncate = check.boolean('truncate', o.truncate) ?? false
  if (truncate && maxSize === undefined) throw check.rangeError('truncate needs maxSize: the size to cut messages to')
  return { type, except, maxSize, truncate }
}

/**
 * A System V message queue (`msgget`, `msgsnd`, `msgrcv`, `msgctl`), shared with any process
 * that knows its key or id: C programs, Python's `sysv_ipc`, `ipcs -q`.
 *
 * A message is a positive integer type and 0 or more bytes (at most the kernel's `msgmax`,
 * 8192 by default). Messages of one type are received in the order they were sent.
 *
 * The handle holds no resource: the queue lives in the kernel until {@link MessageQueue.remove}
 * (or `ipcrm -q`), whatever happens to this object or this process.
 */
export class MessageQueue {
  /** The msqid, as `ipcs -q` prints it. */
  readonly id: number
  /** The key (unsigned 32-bit); `0` for `IPC_PRIVATE`. */
  readonly key: number
  /** Whether this handle's `create` call made the queue (`false` for opens). */
  readonly created: boolean

  private constructor(id: number, key: number, created: boolean) {
    this.id = id
    this.key = key >>> 0
    this.created = created
  }

  /**
   * Creates a queue: `msgget(key, IPC_CREAT | IPC_EXCL | mode)`, then `msgctl(IPC_SET)` for `maxBytes`.
   *
   * @param key A key from {@link ftok}, any 32-bit number, or `IPC_PRIVATE` (0).
   * @throws {ShmError} `EEXIST` if the key exists (unless `exclusive: false`), `ENOSPC` (`msgmni`
   * queues exist), `EACCES`, `ENOMEM`; `EPERM` for `maxBytes` above `msgmnb` without privilege
   * (the queue is then removed again).
   * @throws {TypeError | RangeError} for bad arguments, before any system call.
   */
  static create(key: number, options?: QueueCreateOptions): MessageQueue {
    const k = check.key(key)
    const o = check.options<QueueCreateOptions>(options, CREATE_KEYS)
    const mode = o.mode === undefined ? 0o600 : check.mode(o.mode)
    const exclusive = check.boolean('exclusive', o.exclusive) ?? true
    const maxBytes = o.maxBytes === undefined ? undefined : check.integer('maxBytes', o.maxBytes, 0, MAX_BYTES)
    const { id, created } = native.msgCreate(k, mode, exclusive, maxBytes)
    return new MessageQueue(id, k, created)
  }

  /**
   * Opens the existing queue of `key`: `msgget(key, 0)`.
   *
   * @throws {ShmError} `ENOENT` if no queue has that key, `EACCES`.
   */
  static open(key: number): MessageQueue {
    const k = check.key(key)
    if (k === 0) throw check.rangeError('IPC_PRIVATE (0) names no queue: open it with openById(id)')
    return new MessageQueue(native.msgOpen(k), k, false)
  }

  /**
   * Opens the queue with this msqid (as `ipcs -q` prints it), checking that it exists: `msgctl(IPC_STAT)`.
   *
   * Needs no read permission (the key of a write-only queue is found with `ipcs`' listing).
   *
   * @throws {ShmError} `EINVAL` for an unknown id, `EIDRM` if removed.
   */
  static openById(id: number): MessageQueue {
    const i = check.id(id)
    let key: number
    try {
      key = native.msgStat(i).perm.key
    } catch (err) {
      // No read permission (a write-only mailbox, mode 0o602): MSG_STAT_ANY still tells the key.
      const any = (err as ShmError).code === 'EACCES' ? native.msgStatAny(i) : null
      if (!any) throw err
      key = any.perm.key
    }
    return new MessageQueue(i, key, false)
  }

  /**
   * How blocking calls with a timeout or an `AbortSignal` wait in this process: `'signal'`
   * (blocked in the kernel, woken by a thread-directed real-time signal, `SIGRTMAX - 6`; the
   * default) or `'poll'` (`IPC_NOWAIT` retries with sleeps of 50 µs growing to 4 ms; used when
   * `SYSV_SHM_MSG_WAIT=poll` is set or that signal already has another handler).
   */
  static get waitStrategy(): 'signal' | 'poll' {
    return native.msgWaitStrategy() as 'signal' | 'poll'
  }

  /** The kernel's limits on queues and their current usage (`ipcs -q -l`, `ipcs -q -u`). */
  static limits(): QueueLimits {
    return { ...native.msgLimits() }
  }

  /**
   * Sends a message: `msgsnd`. While the queue is full (its `maxBytes` of text, or as many
   * messages) it waits, blocking this thread; see {@link MessageQueue.sendAsync} for a wait that
   * leaves the event loop free.
   *
   * @param data The text: bytes, or a string sent as UTF-8. Up to the kernel's `msgmax` bytes.
   * @throws {ShmError} `EAGAIN` when full with `block: false` or after `timeoutMs`; `E2BIG` if the
   * message is longer than the queue's `maxBytes` (it could never fit: blocking would be forever);
   * `EINVAL` if longer than `msgmax` (or no such queue); `EIDRM` if the queue is removed (also
   * while waiting); `EACCES` without write permission.
   */
  send(data: string | ArrayBufferView | ArrayBufferLike, options?: SendOptions): void {
    const o = check.options<SendOptions>(options, SEND_KEYS)
    const type = sendType(o.type)
    const { block, timeoutMs } = blocking(o.block, o.timeoutMs)
    const bytes = check.bytes('data', data)
    native.msgSend(this.id, type, bytes, block, timeoutMs, false)
  }

  /**
   * Sends without waiting (`IPC_NOWAIT`): `false` if the queue is full, instead of `EAGAIN`.
   *
   * @throws {ShmError} as {@link MessageQueue.send}, but never `EAGAIN`.
   */
  trySend(data: string | ArrayBufferView | ArrayBufferLike, options?: { type?: number }): boolean {
    const o = check.options<{ type?: number }>(options, TRY_SEND_KEYS)
    const type = sendType(o.type)
    const bytes = check.bytes('data', data)
    return native.msgSend(this.id, type, bytes, false, undefined, true)
  }

  /**
   * Sends, waiting for room on a thread of its own so the event loop runs on. `data` is copied at
   * once. Sends at once if there is room.
   *
   * @throws {ShmError} (as a rejection) as {@link MessageQueue.send}; `EAGAIN` after `timeoutMs`.
   * @throws {AbortError} when `signal` aborts the wait; nothing is sent.
   */
  async sendAsync(data: string | ArrayBufferView | ArrayBufferLike, options?: SendAsyncOptions): Promise<void> {
    const o = check.options<SendAsyncOptions>(options, SEND_ASYNC_KEYS)
    const type = sendType(o.type)
    const timeoutMs = timeout(o.timeoutMs)
    const signal = abortSignal(o.signal)
    const bytes = check.bytes('data', data)
    if (signal?.aborted) throw abortError(signal)
    // Room now: no thread needed.
    if (native.msgSend(this.id, type, bytes, false, undefined, timeoutMs !== 0)) return
    await run(signal, (token) => native.msgSendAsync(this.id, type, bytes, timeoutMs, token))
  }

  /**
   * Receives a message: `msgrcv`. Without one it waits, blocking this thread; see
   * {@link MessageQueue.receiveAsync} for a wait that leaves the event loop free.
   *
   * @throws {ShmError} `ENOMSG` when none with `block: false` or after `timeoutMs`; `E2BIG` if the
   * message is longer than `maxSize` (it stays in the queue); `EIDRM` if the queue is removed
   * (also while waiting); `EINVAL` for no such queue; `EACCES` without read permission.
   */
  receive(options?: ReceiveOptions): QueueMessage {
    const o = check.options<ReceiveOptions>(options, RECEIVE_KEYS)
    const s = selector(o)
    const { block, timeoutMs } = blocking(o.block, o.timeoutMs)
    const m = native.msgReceive(this.id, s.type, s.maxSize, s.truncate, s.except, block, timeoutMs, false)
    return message(m as Buffer)
  }

  /**
   * Receives without waiting (`IPC_NOWAIT`): `null` if there is no such message, instead of `ENOMSG`.
   *
   * @throws {ShmError} as {@link MessageQueue.receive}, but never `ENOMSG`.
   */
  tryReceive(options?: ReceiveSelector): QueueMessage | null {
    const o = check.options<ReceiveSelector>(options, SELECT_KEYS)
    const s = selector(o)
    const m = native.msgReceive(this.id, s.type, s.maxSize, s.truncate, s.except, false, undefined, true)
    return m ? message(m) : null
  }

  /**
   * Receives, waiting on a thread of its own (not libuv's pool) so the event loop runs on.
   * Takes a message at once if one is there. A pending call keeps the process alive, as a
   * pending socket read does.
   *
   * Aborting `signal` wakes the waiting thread at once (a signal interrupts its `msgrcv`) and the
   * thread ends. If a message was taken just before the abort, the promise resolves with it
   * rather than losing it.
   *
   * @throws {ShmError} (as a rejection) as {@link MessageQueue.receive}; `ENOMSG` after `timeoutMs`.
   * @throws {AbortError} when `signal` aborts the wait; no message is taken.
   */
  async receiveAsync(options?: ReceiveAsyncOptions): Promise<QueueMessage> {
    const o = check.options<ReceiveAsyncOptions>(options, RECEIVE_ASYNC_KEYS)
    const s = selector(o)
    const timeoutMs = timeout(o.timeoutMs)
    const signal = abortSignal(o.signal)
    if (signal?.aborted) throw abortError(signal)
    // A message is there (or timeoutMs is 0): no thread needed.
    const now = native.msgReceive(this.id, s.type, s.maxSize, s.truncate, s.except, false, undefined, timeoutMs !== 0)
    if (now) return message(now)
    return message(
      await run(signal, (token) =>
        native.msgReceiveAsync(this.id, s.type, s.maxSize, s.truncate, s.except, timeoutMs, token),
      ),
    )
  }

  /**
   * The messages as they come, with {@link MessageQueue.receiveAsync}:
   * `for await (const m of q.messages({ type: 1, signal })) { … }`. Ends by throwing what
   * `receiveAsync` throws: an `AbortError` when `signal` aborts, `EIDRM` when the queue is removed,
   * `ENOMSG` when `timeoutMs` passes between two messages. Breaking out of the loop takes no
   * further message.
   */
  async *messages(options?: ReceiveAsyncOptions): AsyncGenerator<QueueMessage, never, undefined> {
    for (;;) yield await this.receiveAsync(options)
  }

  /** `msgctl(id, IPC_STAT)`: counts, limit, owner, mode, pids and times. */
  stat(): QueueInfo {
    return info(native.msgStat(this.id))
  }

  /**
   * `msgctl(id, IPC_SET)`: changes owner, permission bits and `maxBytes` (`msg_qbytes`).
   *
   * @throws {ShmError} `EPERM` unless owner or creator, or for `maxBytes` above `msgmnb` without privilege.
   */
  set(options: QueueSetOptions): void {
    const o = check.options<QueueSetOptions>(options, SET_KEYS)
    if (options === undefined) throw check.rangeError('set() needs an options object')
    native.msgSet(this.id, {
      uid: o.uid === undefined ? undefined : check.integer('uid', o.uid, 0, 0xffff_fffe),
      gid: o.gid === undefined ? undefined : check.integer('gid', o.gid, 0, 0xffff_fffe),
      mode: o.mode === undefined ? undefined : check.mode(o.mode),
      maxBytes: o.maxBytes === undefined ? undefined : check.integer('maxBytes', o.maxBytes, 0, MAX_BYTES),
    })
  }

  /**
   * `msgctl(id, IPC_RMID)`: removes the queue at once, with its messages. Every process blocked
   * sending to or receiving from it wakes with `EIDRM`.
   *
   * @throws {ShmError} `EPERM` unless owner or creator; `EINVAL`/`EIDRM` if already gone.
   */
  remove(): void {
    native.msgRemove(this.id)
  }
}

/** Every message queue of this IPC namespace, as `ipcs -q` lists them. */
export function listQueues(): QueueInfo[] {
  return native.msgList().map(info)
}

/**
 * `msgctl(slot, MSG_STAT_ANY)` of the queue with this id: its info without read permission, as
 * `ipcs -q` shows it; `null` if it is gone (or the kernel is older than 4.17).
 * @internal
 */
export function statAnyQueue(id: number): QueueInfo | null {
  const s = native.msgStatAny(check.id(id))
  return s ? info(s) : null
}

/**
 * `Channel`: a single-producer single-consumer message ring in one System V segment.
 * @module
 */
/// <reference types="node" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
import type { ChannelHandle, ExternalObject } from '../binding'

import { native } from './binding'
import { abortError, run } from './async'
import * as futex from './futex'
import { EMPTY as RING_EMPTY, FULL, Ring, SENT } from './ring'
import * as check from './validate'

/** How a blocked `send`/`recv` waits: busy-wait, sleep in the kernel at once, or busy-wait briefly then sleep. */
export type ChannelWait = 'spin' | 'park' | 'spin-then-park'

/** How this handle waits when it blocks (per handle, not stored in the segment). */
export interface ChannelWaitOptions {
  /** Default `'spin-then-park'`. */
  wait?: ChannelWait
  /** How long `'spin-then-park'` spins before it sleeps, in microseconds. Default 10. */
  spinMicros?: number
}

/** Options of {@link Channel.create}. */
export interface ChannelCreateOptions extends ChannelWaitOptions {
  /** Permission bits of the segment. Default `0o600`. */
  mode?: number
  /** `IPC_EXCL`: fail with `EEXIST` if the key exists. Default `true`; `false` opens an existing channel. */
  exclusive?: boolean
}

/** Options of {@link Channel.recvAsync}. */
export interface RecvAsyncOptions {
  /** Cancels the wait at once: the promise rejects with an `AbortError` whose `cause` is `signal.reason`. */
  signal?: AbortSignal
}

const WAIT_KEYS = ['wait', 'spinMicros'] as const
const CREATE_KEYS = ['mode', 'exclusive', 'wait', 'spinMicros'] as const
const EMPTY = -1
const SPLIT = -3

/**
 * A single-producer single-consumer ring of variable-length messages in one System V shared memory
 * segment: one process sends, one receives, with no kernel copy. The sender makes no system call
 * while the receiver is awake (it checks the receiver's waiting flag); a blocked side spins briefly,
 * then sleeps on a futex (see {@link ChannelWaitOptions}). The header is documented in the README
 * ("Channel layout") so that C or another language can be the other end.
 *
 * At most one process sends and one receives at a time; which end does which is up to you.
 *
 * The other end may be buggy or hostile: every send, receive, zero-copy and batch call, and
 * `nextMessageSize()` and `pendingBytes`, check the head, tail and record header they read, and throw
 * `ShmError` `ERR_CHANNEL_CORRUPT` (naming the word and its values) where they break the layout's
 * rules; nothing is read or written with them. The capacity is read once, at open.
 */
export class Channel implements Disposable, AsyncIterable<Buffer> {
  /** The shmid of the channel's segment. */
  readonly id: number
  /** Whether this handle's `create` made the segment. */
  readonly created: boolean

  #native: ChannelHandle
  /** The handle of the plain native functions of the hot paths (sends, receives, waits, wakes). */
  #h: ExternalObject<'ChannelCopy'>
  /** The ArrayBuffer over the whole segment (header and ring); null where there can be none (Electron). */
  #segment: ArrayBuffer | null = null
  /** A Buffer over the ring for zero-copy calls; null if there can be none. */
  #ring: Buffer | null = null
  /**
   * The JavaScript send and receive paths over the segment (see `ring.ts`): null where there is
   * no zero-copy view, and once detached. Then every call is native.
   */
  #js: Ring | null = null
  /** Inside a `sendWith`/`recvWith` callback: sends and receives go native (they end a reservation). */
  #inCallback = 0

  private constructor(handle: ChannelHandle, options: ChannelWaitOptions) {
    this.#native = handle
    const h = (this.#h = handle.copyHandle())
    this.id = handle.id
    this.created = handle.created
    try {
      this.setWait(options)
      const ab = handle.segmentBuffer()
      if (typeof ab !== 'string') {
        check.segmentBuffer(ab)
        const capacity = handle.capacity
        this.#segment = ab
        this.#ring = Buffer.from(ab, 512, capacity)
        this.#js = Ring.over(ab, capacity, (receiver) => native.channelWake(h, receiver))
      }
    } catch (err) {
      this.#detachNative()
      throw err
    }
  }

  /** The JavaScript paths, unless there are none or a zero-copy callback runs. */
  #fast(): Ring | null {
    return this.#inCallback === 0 ? this.#js : null
  }

  /**
   * Creates a channel whose ring holds `capacityBytes` (rounded up to a multiple of 8; the segment
   * is 512 bytes more). The largest message is `capacity - 8` bytes.
   *
   * @throws {ShmError} `EEXIST` (unless `exclusive: false`), `ERR_SHM_NOT_A_CHANNEL` when
   * `exclusive: false` finds a segment that is not a channel, and the errors of `shmget`.
   */
  static create(key: number, capacityBytes: number, options?: ChannelCreateOptions): Channel {
    const k = check.key(key)
    const cap = check.integer('capacityBytes', capacityBytes, 16, Number.MAX_SAFE_INTEGER - 1024)
    const o = check.options<ChannelCreateOptions>(options, CREATE_KEYS)
    const mode = o.mode === undefined ? 0o600 : check.mode(o.mode)
    const exclusive = check.boolean('exclusive', o.exclusive) ?? true
    return new Channel(native.ChannelHandle.create(k, cap, mode, exclusive), { wait: o.wait, spinMicros: o.spinMicros })
  }

  /** Opens the channel of `key`. @throws {ShmError} `ENOENT`, `EACCES`, `ERR_SHM_NOT_A_CHANNEL`. */
  static open(key: number, options?: ChannelWaitOptions): Channel {
    const k = check.key(key)
    if (k === 0) throw check.rangeError('IPC_PRIVATE (0) names no segment: open it with openById(id)')
    const o = check.options<ChannelWaitOptions>(options, WAIT_KEYS)
    return new Channel(native.ChannelHandle.open(k), o)
  }

  /** Opens the channel segment with this shmid (also for `IPC_PRIVATE` channels). */
  static openById(id: number, options?: ChannelWaitOptions): Channel {
    const o = check.options<ChannelWaitOptions>(options, WAIT_KEYS)
    return new Channel(native.ChannelHandle.openById(check.id(id)), o)
  }

  /** Bytes the ring holds. */
  get capacity(): number {
    return this.#native.capacity
  }

  /** The largest message, in bytes: `capacity - 8`. */
  get maxMessageSize(): number {
    return this.#native.maxMessage
  }

  /** Bytes of messages (with their 8-byte headers and padding) not yet received. */
  get pendingBytes(): number {
    return this.#native.pendingBytes
  }

  /** Whether either side called {@link Channel.close}. */
  get closed(): boolean {
    return native.channelClosed(this.#h)
  }

  /** Whether this handle is attached. */
  get attached(): boolean {
    return this.#native.attached
  }

  /** Changes how this handle waits when it blocks. */
  setWait(options: ChannelWaitOptions): void {
    const o = check.options<ChannelWaitOptions>(options, WAIT_KEYS)
    const wait: unknown = o.wait ?? 'spin-then-park'
    if (wait !== 'spin' && wait !== 'park' && wait !== 'spin-then-park') {
      throw check.rangeError(`The "wait" option must be 'spin', 'park' or 'spin-then-park'. Received ${String(wait)}`)
    }
    const spin = o.spinMicros === undefined ? 10 : check.integer('spinMicros', o.spinMicros, 0, 60_000_000)
    this.#native.setWait(wait, spin)
  }

  /**
   * Sends a message (a string is sent as UTF-8), waiting while the ring is too full: `true` when
   * sent, `false` if `timeoutMs` elapsed first. Blocks the thread while it waits.
   *
   * @throws {RangeError} if the message is larger than {@link Channel.maxMessageSize}.
   * @throws {ShmError} `ERR_CHANNEL_CLOSED`, `ERR_SHM_DETACHED`.
   */
  send(data: string | ArrayBufferView | ArrayBufferLike, timeoutMs?: number): boolean {
    const src = check.bytes('data', data)
    const ms = futex.timeout(timeoutMs)
    // Full, or anything the JavaScript path leaves to the native one: the native call waits or reports.
    if (this.#fast()?.trySend(check.bytesOf(src)) === SENT) return true
    return native.channelSend(this.#h, src, ms)
  }

  /** Sends if there is room now; `false` if the ring is too full. Never blocks. */
  trySend(data: string | ArrayBufferView | ArrayBufferLike): boolean {
    const src = check.bytes('data', data)
    const r = this.#fast()?.trySend(check.bytesOf(src))
    if (r === SENT) return true
    if (r === FULL) return false
    return native.channelTrySend(this.#h, src)
  }

  /** Sends messages in order while there is room, in one call; returns how many were sent. */
  trySendMany(items: readonly ArrayBufferView[]): number {
    if (!Array.isArray(items)) throw check.rangeError('The "items" argument must be an array of ArrayBufferViews')
    const js = this.#fast()
    if (js === null) return native.channelTrySendMany(this.#h, items as ArrayBufferView[])
    const n = js.trySendMany(items)
    // Stopped at an item the native call decides (it sends it, or throws for it): the rest go native.
    return js.stopped ? n + native.channelTrySendMany(this.#h, items.slice(n) as ArrayBufferView[]) : n
  }

  /**
   * Receives the next message into a new Buffer, waiting while the ring is empty; `null` if
   * `timeoutMs` elapsed, or if the channel is closed and empty.
   */
  recv(timeoutMs?: number): Buffer | null {
    const ms = futex.timeout(timeoutMs)
    return this.#take() ?? native.channelRecv(this.#h, ms)
  }

  /** Receives the next message into a new Buffer if there is one, else `null`. Never blocks. */
  tryRecv(): Buffer | null {
    const js = this.#fast()
    if (js === null) return native.channelTryRecv(this.#h)
    const n = js.receive(null)
    if (n === RING_EMPTY) return null
    return n >= 0 ? this.#received(js) : native.channelTryRecv(this.#h)
  }

  /** A message the JavaScript path received now, or null (nothing there, or for the native call to decide). */
  #take(): Buffer | null {
    const js = this.#fast()
    return js !== null && js.receive(null) >= 0 ? this.#received(js) : null
  }

  #received(js: Ring): Buffer {
    const msg = js.received as Buffer
    js.received = null
    return msg
  }

  /**
   * Receives the next message into `target` (no allocation), waiting while the ring is empty:
   * its length, or `null` on timeout or when closed and empty.
   *
   * @throws {RangeError} `ERR_BUFFER_TOO_SMALL` if the message does not fit; it stays in the
   * channel (see {@link Channel.nextMessageSize}).
   */
  recvInto(target: ArrayBufferView, timeoutMs?: number): number | null {
    const ms = futex.timeout(timeoutMs)
    const js = this.#fast()
    if (js !== null && ArrayBuffer.isView(target)) {
      const n = js.receive(check.bytesOf(target))
      if (n >= 0) return n
    }
    const n = native.channelRecvInto(this.#h, target, ms)
    return n < 0 ? null : n
  }

  /** Receives into `target` if a message is there: its length, else `null`. Never blocks. */
  tryRecvInto(target: ArrayBufferView): number | null {
    const js = this.#fast()
    if (js !== null && ArrayBuffer.isView(target)) {
      const n = js.receive(check.bytesOf(target))
      if (n >= 0) return n
      if (n === RING_EMPTY) return null
    }
    const n = native.channelTryRecvInto(this.#h, target)
    return n < 0 ? null : n
  }

  /**
   * Receives as many waiting messages as fit, in one call (for high message rates): they are
   * packed back to back into `target` and their lengths written to `lengths` (at most
   * `lengths.length` messages). Waits up to `timeoutMs` (default: forever) for the first. Returns
   * how many were received, or `null` on timeout or when the channel is closed and empty.
   *
   * @throws {RangeError} `ERR_BUFFER_TOO_SMALL` if even the first message does not fit.
   */
  recvMany(target: ArrayBufferView, lengths: Uint32Array, timeoutMs?: number): number | null {
    return this.#recvMany(target, lengthsOf(lengths), futex.timeout(timeoutMs))
  }

  /** {@link Channel.recvMany} without waiting: the count, or `null` if nothing is there. */
  tryRecvMany(target: ArrayBufferView, lengths: Uint32Array): number | null {
    return this.#recvMany(target, lengthsOf(lengths), 0)
  }

  #recvMany(target: ArrayBufferView, lengths: Uint32Array, ms: number | undefined): number | null {
    const js = this.#fast()
    if (js !== null && ArrayBuffer.isView(target)) {
      const n = js.receiveMany(check.bytesOf(target), lengths)
      if (n >= 0) return n
      if (n === RING_EMPTY && ms === 0) return null
    }
    const n = native.channelRecvMany(this.#h, target, lengths, ms)
    return n < 0 ? null : n
  }

  /**
   * Zero-copy send: reserves `length` bytes in the ring (waiting while it is too full), calls
   * `write` with a Buffer over exactly those bytes of shared memory, then publishes them. The
   * receiver sees nothing until `write` returns; the view must not be used after. Where the message
   * would wrap around the end of the ring (or zero-copy views are refused, as in Electron), `write`
   * gets a scratch Buffer that is then copied in. Returns `false` if `timeoutMs` elapsed first.
   * A ring whose capacity is a multiple of `8 + length` (rounded up to 8) never wraps a message.
   *
   * @throws {RangeError} `ERR_INVALID_ARG_VALUE` if `write` sent a message on this same channel: that
   * message is written where the view is (it arrives as sent, provided `write` does not write the
   * view after sending) and this one is not sent.
   */
  sendWith(length: number, write: (view: Buffer) => void, timeoutMs?: number): boolean {
    const len = check.integer('length', length, 0, this.maxMessageSize)
    if (typeof write !== 'function') throw notFunction('write')
    const ring = this.#ringBuffer()
    if (ring === null) {
      const scratch = Buffer.alloc(len)
      write(scratch)
      return native.channelSend(this.#h, scratch, futex.timeout(timeoutMs))
    }
    const ms = futex.timeout(timeoutMs)
    const off = this.#native.reserve(len, ms)
    if (off === EMPTY) return false
    if (off === SPLIT) {
      const scratch = Buffer.alloc(len)
      write(scratch)
      // The room reserve found is this sender's, unless another process took it (moved head or
      // tail): then this waits at most `timeoutMs` again, not for ever.
      return native.channelSend(this.#h, scratch, ms)
    }
    this.#inCallback++
    try {
      write(ring.subarray(off, off + len))
    } finally {
      this.#inCallback--
    }
    this.#native.commit(len)
    return true
  }

  /**
   * Zero-copy receive: waits for the next message and calls `read` with a Buffer over it in the
   * ring, then consumes it when `read` returns (copy what you keep: the sender reuses the bytes).
   * A message that wraps around the end of the ring is copied into a scratch Buffer first. Returns
   * `true` when a message was read, `false` on timeout or when the channel is closed and empty.
   */
  recvWith(read: (view: Buffer) => void, timeoutMs?: number): boolean {
    if (typeof read !== 'function') throw notFunction('read')
    const ms = futex.timeout(timeoutMs)
    const ring = this.#ringBuffer()
    if (ring === null) {
      const msg = native.channelRecv(this.#h, ms)
      if (msg === null) return false
      read(msg)
      return true
    }
    const off = this.#native.peek(ms)
    if (off === SPLIT) {
      const msg = native.channelRecv(this.#h, 0)
      if (msg === null) return false
      read(msg)
      return true
    }
    if (off < 0) return false
    // The length read with the offset (one read of the record header): a peer that rewrites the
    // header meanwhile cannot widen the view past the published record, and release consumes the
    // record peek showed.
    const len = this.#native.peekedLength
    this.#inCallback++
    try {
      read(ring.subarray(off, off + len))
    } finally {
      this.#inCallback--
      this.#native.release()
    }
    return true
  }

  /** The size of the next message, or `null` if there is none yet. */
  nextMessageSize(): number | null {
    const n = native.channelNextLength(this.#h)
    return n === EMPTY ? null : n
  }

  /**
   * Receives the next message without blocking the event loop: resolves to a new Buffer, or to
   * `null` once the channel is closed and empty. While empty, the receiver's waiting flag is set
   * and the process's waiter thread sleeps on it (no libuv pool thread is held).
   */
  async recvAsync(options?: RecvAsyncOptions): Promise<Buffer | null> {
    const signal = futex.signalOf(options)
    return run(signal, async (token) => {
      for (;;) {
        if (signal?.aborted) throw abortError(signal)
        const msg = native.channelTryRecv(this.#h)
        if (msg !== null) return msg
        if (native.channelClosed(this.#h) && native.channelNextLength(this.#h) === EMPTY) return null
        const pending = native.channelRecvWaitAsync(this.#h, token)
        if (pending !== null) await pending
      }
    })
  }

  /** `for await (const msg of channel)`: every message until the channel is closed and empty. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const msg = await this.recvAsync()
      if (msg === null) return
      yield msg
    }
  }

  /**
   * Marks the channel closed (in the segment, for both ends) and wakes a sleeping side. Messages
   * already sent can still be received; then receives return `null`, and sends throw.
   */
  close(): void {
    this.#native.close()
  }

  /** `shmctl(id, IPC_RMID)`: the segment goes away when both ends have detached. */
  remove(): void {
    this.#native.remove()
  }

  /**
   * Detaches this end (`shmdt`); pending `recvAsync` calls reject with `ERR_SHM_DETACHED`.
   * Idempotent. Views that `sendWith`/`recvWith` handed out read as length 0.
   */
  detach(): void {
    this.#js = null
    this.#ring = null
    this.#detachNative()
  }

  /** Detaches the native handle, and the segment's ArrayBuffer with it (its views read as length 0). */
  #detachNative(): void {
    const segment = this.#segment
    this.#segment = null
    this.#native.detach(segment)
  }

  #ringBuffer(): Buffer | null {
    return this.#ring
  }

  [Symbol.dispose](): void {
    this.detach()
  }
}

function lengthsOf(value: unknown): Uint32Array {
  if (!check.isUint32Array(value)) {
    throw Object.assign(new TypeError('The "lengths" argument must be a Uint32Array'), { code: 'ERR_INVALID_ARG_TYPE' })
  }
  if (check.countOf(value) === 0) throw check.rangeError('The "lengths" argument must have at least one element')
  return value
}

function notFunction(name: string): TypeError {
  return Object.assign(new TypeError(`The "${name}" argument must be a function`), { code: 'ERR_INVALID_ARG_TYPE' })
}

/**
 * The `SharedMemory` class and the system-wide views of segments.
 * @module
 */
/// <reference types="node" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
import { constants as bufferConstants } from 'node:buffer'
import { fileURLToPath } from 'node:url'

import type { ExternalObject, Mapping, NativeShmStat } from '../binding'

import { native } from './binding'
import { ShmError } from './errors'
import { run } from './async'
import * as futex from './futex'
import type { WaitAsyncOptions, WaitResult } from './futex'
import { date, perm, type IpcInfo } from './ipc'
import * as check from './validate'

/** The key that names no segment: `create(IPC_PRIVATE, size)` always makes a new one, reachable by its id. */
export const IPC_PRIVATE = 0

/** Options of {@link SharedMemory.open} and {@link SharedMemory.openById}. */
export interface OpenOptions {
  /** Attach with `SHM_RDONLY`: reads work, writes throw `ERR_SHM_READ_ONLY`, no `buffer`. Default `false`. */
  readOnly?: boolean
  /**
   * Hand out the segment as a zero-copy `Buffer` (`shm.buffer`). Default `true`.
   * Set `false` to use only the copying API (`read`/`write`); where the runtime refuses
   * external buffers (Electron 21+) it is `false` whatever you ask.
   */
  zeroCopy?: boolean
  /**
   * Let the kernel free the segment once nobody uses it, even if every process using it is killed:
   * the segment is marked removed (`IPC_RMID`) while attached, and the kernel frees it at the last
   * detach (a process that dies is detached by the kernel). Default `false`.
   *
   * - `true`: mark it right after this attach. Its key stops naming it (`open(key)` throws
   *   `ENOENT`); other processes attach with `openById(id)`.
   * - `{ parties: n }`: mark it as soon as `n` attachments exist. Give the same option to every
   *   party (`create` and `open`): the attach that brings `stat().attachCount` to `n` marks it.
   *   Until then `open(key)` finds it.
   *
   * Marking needs the owner's or creator's user: otherwise the call throws `EPERM` (and does not stay attached).
   */
  removeWhenUnused?: boolean | { parties: number }
}

/** Options of {@link SharedMemory.create}. */
export interface CreateOptions extends OpenOptions {
  /** Permission bits, `0` to `0o777`. Default `0o600` (owner read/write only). */
  mode?: number
  /** `IPC_EXCL`: fail with `EEXIST` if the key exists. Default `true`; `false` opens an existing segment. */
  exclusive?: boolean
  /** `SHM_HUGETLB`: back the segment with huge pages (needs reserved huge pages). */
  hugePages?: boolean
  /** `SHM_NORESERVE`: do not reserve swap space. */
  noReserve?: boolean
}

/** Changes made by {@link SharedMemory.set} (`IPC_SET`). */
export interface SetOptions {
  uid?: number
  gid?: number
  mode?: number
}

/** A segment as `shmctl(IPC_STAT)` and `ipcs -m` describe it (`struct shmid_ds`). */
export interface SegmentInfo extends IpcInfo {
  /** The size asked for at creation, in bytes (memory is taken in whole pages). */
  size: number
  /** Pid of the creator. */
  creatorPid: number
  /** Pid of the last `shmat` or `shmdt`. */
  lastPid: number
  /** Number of current attachments, in all processes. */
  attachCount: number
  /** Last attach, last detach and last change; `null` if none yet. */
  attachTime: Date | null
  detachTime: Date | null
  changeTime: Date | null
  /** Marked for removal (`IPC_RMID` while attached): freed when the last process detaches. */
  removed: boolean
  /** Locked in memory (`SHM_LOCK`). */
  locked: boolean
}

/** The kernel's limits on shared memory and the current usage, as `ipcs -l` and `ipcs -u` show them. */
export interface Limits {
  /** `kernel.shmmax`: the largest segment, in bytes. */
  maxSegmentSize: number
  /** The smallest segment, in bytes. */
  minSegmentSize: number
  /** `kernel.shmmni`: how many segments may exist. */
  maxSegments: number
  /** How many segments one process may attach. */
  maxSegmentsPerProcess: number
  /** `kernel.shmall`: pages of all segments together. */
  maxTotalPages: number
  /** The page size in bytes: memory is taken in whole pages. */
  pageSize: number
  /** Segments that exist now. */
  usedSegments: number
  /** Pages allocated to segments now, resident and swapped. */
  usedPages: number
  residentPages: number
  swappedPages: number
}

function info(s: NativeShmStat): SegmentInfo {
  const { perm: p, ...rest } = s
  return {
    ...perm(s.id, p),
    ...rest,
    attachTime: date(s.attachTime),
    detachTime: date(s.detachTime),
    changeTime: date(s.changeTime),
  }
}

const OPEN_KEYS = ['readOnly', 'zeroCopy', 'removeWhenUnused'] as const
const CREATE_KEYS = ['mode', 'exclusive', 'hugePages', 'noReserve', 'readOnly', 'zeroCopy', 'removeWhenUnused'] as const
const SET_KEYS = ['uid', 'gid', 'mode'] as const
const MAX_SIZE = Number.MAX_SAFE_INTEGER

/**
 * The copy path's handle of a `SharedMemory` (made at its first use), for the classes built on a
 * segment: `Mutex`'s word operations where there is no zero-copy view.
 * @internal
 */
export let copyHandleOf: (shm: SharedMemory) => ExternalObject<'CopyHandle'>

/**
 * One attachment of a System V shared memory segment.
 *
 * The segment itself lives in the kernel: it outlives this object and this
 * process until {@link SharedMemory.remove} (or `ipcrm -m`) and the last
 * detach. The attachment ends with {@link SharedMemory.detach}, a `using`
 * block, or garbage collection of the handle and every view of its buffer.
 */
export class SharedMemory implements Disposable {
  /** The shmid, as `ipcs -m` prints it. */
  readonly id: number
  /** The key (unsigned 32-bit); `0` for `IPC_PRIVATE`. */
  readonly key: number
  /** The segment's size in bytes, as asked at creation. */
  readonly size: number
  /** Whether this is a read-only (`SHM_RDONLY`) attachment. */
  readonly readOnly: boolean
  /** Whether this handle's `create` call made the segment (`false` for opens). */
  readonly created: boolean

  #native: Mapping

  static {
    copyHandleOf = (shm) => shm.#copyHandle()
  }
  /**
   * Whether this handle is attached: JavaScript's own record, so that the checks of every call
   * make no native call. Only {@link SharedMemory.detach} ends an attachment of a live handle.
   */
  #attached = true
  /**
   * The zero-copy view while attached (null once detached, read-only, or where there is none;
   * undefined until its first use: made then, not at attach, so that an attach and detach that
   * never touch the memory do not pay for the ArrayBuffer, its views and their finalizer):
   * `read`/`readInto`/`write` copy through it in JavaScript, with no native call, and check their
   * ranges themselves; without it they call the native copy, which checks them again.
   */
  #buffer: Buffer | null | undefined = undefined
  /** The handle of the plain native functions of the hot paths (copies, waits, wakes), made at its first use. */
  #copy: ExternalObject<'CopyHandle'> | null = null
  #sharedBuffer: SharedArrayBuffer | null = null
  #i32: Int32Array | null = null
  #zeroCopy = false
  /** Why there is no zero-copy buffer, for the error of `buffer`. */
  #noZeroCopy = 'zeroCopy: false was asked'

  private constructor(mapping: Mapping, id: number, key: number, size: number, readOnly: boolean, created: boolean, zeroCopy: boolean) {
    this.#native = mapping
    this.id = id
    this.key = key >>> 0
    this.size = size
    this.readOnly = readOnly
    this.created = created
    if (!zeroCopy || readOnly) this.#buffer = null
  }

  /**
   * Creates a segment and attaches it: `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`, then `shmat`.
   *
   * @param key A key from {@link ftok}, any 32-bit number, or {@link IPC_PRIVATE}.
   * @param size Bytes, at least 1; the kernel takes whole pages.
   * @throws {ShmError} `EEXIST` if the key exists (unless `exclusive: false`), `EINVAL` if the size
   * is out of the kernel's limits or larger than the existing segment, `ENOSPC`, `ENOMEM`, `EACCES`, `EPERM`.
   * @throws {TypeError | RangeError} for bad arguments, before any system call.
   */
  static create(key: number, size: number, options?: CreateOptions): SharedMemory {
    const k = check.key(key)
    const bytes = check.integer('size', size, 1, MAX_SIZE)
    const o = check.options<CreateOptions>(options, CREATE_KEYS)
    const mode = o.mode === undefined ? 0o600 : check.mode(o.mode)
    const exclusive = check.boolean('exclusive', o.exclusive) ?? true
    const hugePages = check.boolean('hugePages', o.hugePages) ?? false
    const noReserve = check.boolean('noReserve', o.noReserve) ?? false
    const readOnly = check.boolean('readOnly', o.readOnly) ?? false
    const zeroCopy = check.boolean('zeroCopy', o.zeroCopy) ?? true
    const parties = check.removeWhenUnused(o.removeWhenUnused)
    const { id, created } = native.shmCreate(k, bytes, mode, exclusive, hugePages, noReserve)
    return SharedMemory.#attach(id, k, { readOnly, zeroCopy, parties, created })
  }

  /**
   * Attaches the existing segment of `key`: `shmget(key, 0, 0)`, then `shmat`.
   *
   * @throws {ShmError} `ENOENT` if no segment has that key (also once it is removed),
   * `EACCES` without permission for the access asked.
   */
  static open(key: number, options?: OpenOptions): SharedMemory {
    const k = check.key(key)
    if (k === IPC_PRIVATE) {
      throw check.rangeError('The "key" argument must not be IPC_PRIVATE (0), which names no segment: open it with openById(id)')
    }
    const o = check.options<OpenOptions>(options, OPEN_KEYS)
    const readOnly = check.boolean('readOnly', o.readOnly) ?? false
    const zeroCopy = check.boolean('zeroCopy', o.zeroCopy) ?? true
    const parties = check.removeWhenUnused(o.removeWhenUnused)
    const id = native.shmOpen(k)
    return SharedMemory.#attach(id, k, { readOnly, zeroCopy, parties, created: false })
  }

  /**
   * Attaches the segment with this shmid (as `ipcs -m` prints it): `shmat(id, NULL, flags)`.
   * Works for `IPC_PRIVATE` segments and for segments marked removed but still attached.
   *
   * @throws {ShmError} `EINVAL` for an unknown id, `EIDRM` if removed, `EACCES`.
   */
  static openById(id: number, options?: OpenOptions): SharedMemory {
    const i = check.id(id)
    const o = check.options<OpenOptions>(options, OPEN_KEYS)
    const readOnly = check.boolean('readOnly', o.readOnly) ?? false
    const zeroCopy = check.boolean('zeroCopy', o.zeroCopy) ?? true
    const parties = check.removeWhenUnused(o.removeWhenUnused)
    return SharedMemory.#attach(i, undefined, { readOnly, zeroCopy, parties, created: false })
  }

  /**
   * `shmat`, the `removeWhenUnused` marking, then the handle. If any step fails, nothing stays
   * attached, and a segment that this call created is removed again: no segment is left that
   * nobody got to use. (`key` undefined: the key the attach read.)
   */
  static #attach(
    id: number,
    key: number | undefined,
    o: { readOnly: boolean; zeroCopy: boolean; parties: number; created: boolean },
  ): SharedMemory {
    let mapping: Mapping | undefined
    try {
      const [m, attachedKey, size] = native.mappingAttach(id, o.readOnly)
      mapping = m
      if (o.parties > 0) mapping.removeIfAttached(o.parties)
      return new SharedMemory(mapping, id, key ?? attachedKey, size, o.readOnly, o.created, o.zeroCopy)
    } catch (err) {
      try {
        mapping?.detach(null)
      } catch {
        // A zero-copy buffer already made keeps the mapping until it is collected.
      }
      if (o.created) {
        try {
          native.shmRemove(id)
        } catch {
          // Already gone; the error to report is the first one.
        }
      }
      throw err
    }
  }

  /** `shmctl(id, IPC_STAT)` of any segment, attached or not. */
  static statById(id: number): SegmentInfo {
    return info(native.shmStat(check.id(id)))
  }

  /** `shmctl(id, IPC_RMID)` of any segment, attached or not (what `ipcrm -m ID` does). */
  static removeById(id: number): void {
    native.shmRemove(check.id(id))
  }

  /** Whether this handle is still attached. */
  get attached(): boolean {
    return this.#attached
  }

  /** Whether {@link SharedMemory.buffer} is available: not read-only, not refused by the runtime, not turned off. */
  get zeroCopy(): boolean {
    if (this.#buffer === undefined) this.#view()
    return this.#zeroCopy && this.#attached
  }

  /**
   * The whole segment as a `Buffer`, with no copy: what another process writes shows here at once.
   * The same object on every access. After {@link SharedMemory.detach} it (and every view of its
   * `ArrayBuffer`) has length 0.
   *
   * @throws {ShmError} `ERR_SHM_DETACHED`, `ERR_SHM_READ_ONLY`, or `ERR_SHM_NO_ZERO_COPY`.
   */
  get buffer(): Buffer {
    this.#live()
    if (this.readOnly) {
      throw new ShmError(
        `segment ${this.id} is attached read-only: a writable view would crash the process on write; use read()`,
        'ERR_SHM_READ_ONLY',
      )
    }
    const buf = this.#view()
    if (!buf) {
      throw new ShmError(
        `segment ${this.id} has no zero-copy buffer: ${this.#noZeroCopy}; use read()/write()`,
        'ERR_SHM_NO_ZERO_COPY',
      )
    }
    return buf
  }

  /**
   * The whole segment as a `SharedArrayBuffer`, with no copy, made on first access (whatever the
   * `zeroCopy` option) and the same object on every access. Post it to worker threads
   * (`worker.postMessage(shm.sharedBuffer)`): every thread then reads and writes the one mapping,
   * with no copy, and `Atomics.wait`/`waitAsync`/`notify` work on it between threads of this
   * process (between processes, use {@link SharedMemory.wait}). What other processes write shows
   * here at once.
   *
   * Needs `node_api_create_external_sharedarraybuffer`: Node.js 22.23.5, 24.19 and 26.12 or newer,
   * and Bun 1.4.4, have it; Node.js 18 and 20 and Deno do not.
   *
   * Lifetime: a `SharedArrayBuffer` cannot be detached, so once this was read,
   * {@link SharedMemory.detach} ends the handle at once (`attached` is `false`, its methods throw
   * `ERR_SHM_DETACHED`) but the segment stays attached (`shmdt` waits, `stat().attachCount` still
   * counts it) until every `SharedArrayBuffer` of it, in every thread, is garbage-collected.
   *
   * @throws {ShmError} `ERR_SHM_DETACHED`; `ERR_SHM_READ_ONLY` on a read-only attachment (a write
   * through it would crash the process); `ERR_SHM_NO_SHARED_ARRAY_BUFFER` where the runtime lacks
   * the call, refuses external buffers (Electron's memory cage), or the segment is above
   * `buffer.constants.MAX_LENGTH`; the message says which.
   */
  get sharedBuffer(): SharedArrayBuffer {
    this.#live()
    if (this.readOnly) {
      throw new ShmError(
        `segment ${this.id} is attached read-only: a SharedArrayBuffer is writable, and a write would crash the process; use read()`,
        'ERR_SHM_READ_ONLY',
      )
    }
    if (this.#sharedBuffer === null) {
      const sab = this.#native.createSharedBuffer()
      if (typeof sab === 'string') {
        throw new ShmError(
          `segment ${this.id} has no sharedBuffer: ${sab} (this is ${runtime()}); use buffer or read()/write()`,
          'ERR_SHM_NO_SHARED_ARRAY_BUFFER',
        )
      }
      this.#sharedBuffer = check.segmentBuffer(sab)
    }
    return this.#sharedBuffer
  }

  /** Copies `length` bytes from `offset` (default: to the end) out of the segment. */
  read(offset = 0, length?: number): Buffer {
    this.#live()
    const start = check.integer('offset', offset, 0, this.size)
    const n = length === undefined ? this.size - start : check.integer('length', length, 0, this.size - start)
    if (n > bufferConstants.MAX_LENGTH) {
      throw check.rangeError(
        `The value of "length" is out of range: ${n} bytes from offset ${start} is more than the largest Buffer ` +
          `(buffer.constants.MAX_LENGTH, ${bufferConstants.MAX_LENGTH}); read in parts or use readInto()`,
      )
    }
    const out = Buffer.allocUnsafe(n)
    const buf = this.#view()
    if (buf !== null) buf.copy(out, 0, start, start + n)
    else native.mappingReadInto(this.#copyHandle(), out, start)
    return out
  }

  /** Copies from `offset` into `target`, as many bytes as fit; returns how many. */
  readInto(target: ArrayBufferView, offset = 0): number {
    this.#live()
    const view = check.view('target', target)
    const start = check.integer('offset', offset, 0, this.size)
    const buf = this.#view()
    if (buf === null) return native.mappingReadInto(this.#copyHandle(), view, start)
    const bytes = check.bytesOf(view)
    const n = Math.min(check.lengthOf(bytes), this.size - start)
    // (0 bytes: nothing to touch; the view may be of a detached ArrayBuffer.)
    return n === 0 ? 0 : buf.copy(bytes, 0, start, start + n)
  }

  /**
   * Copies `data` (a string is written as UTF-8) into the segment at `offset`; returns the byte count.
   *
   * @throws {RangeError} if it does not fit.
   * @throws {ShmError} `ERR_SHM_READ_ONLY`, `ERR_SHM_DETACHED`.
   */
  write(data: string | ArrayBufferView | ArrayBufferLike, offset = 0): number {
    this.#live()
    if (this.readOnly) throw new ShmError(`segment ${this.id} is attached read-only (SHM_RDONLY)`, 'ERR_SHM_READ_ONLY')
    const src = check.bytesOf(check.bytes('data', data))
    const start = check.integer('offset', offset, 0, this.size)
    // The length by the built-in getter: what `set` copies (a view's own `byteLength` may lie).
    const n = check.lengthOf(src)
    if (n > this.size - start) {
      throw check.rangeError(`The "data" argument (${n} bytes) does not fit at "offset" ${start} in a segment of ${this.size} bytes`)
    }
    const buf = this.#view()
    // The native copy is a memmove within this mapping: a source in another attachment of the
    // same segment is the same memory at another address, so such a source is copied out first.
    if (buf === null) return native.mappingWrite(this.#copyHandle(), check.unaliased(src), start)
    // `set` copies as memmove does: `data` may be a view of this very segment. (0 bytes: nothing
    // to touch; the view may be of a detached ArrayBuffer.)
    if (n > 0) buf.set(src, start)
    return n
  }

  /** `shmctl(id, IPC_STAT)`: owner, mode, pids, attach count, times, removed/locked. */
  stat(): SegmentInfo {
    this.#live()
    return info(native.shmStat(this.id))
  }

  /**
   * `shmctl(id, IPC_SET)`: changes owner and permission bits. Needs ownership, not read permission:
   * an owner can restore a mode that shuts it out (`0o000`).
   * @throws {ShmError} `EPERM` unless owner or creator.
   */
  set(options: SetOptions): void {
    this.#live()
    const o = check.options<SetOptions>(options, SET_KEYS, 'options', true)
    native.shmSet(this.id, {
      uid: o.uid === undefined ? undefined : check.integer('uid', o.uid, 0, 0xffff_fffe),
      gid: o.gid === undefined ? undefined : check.integer('gid', o.gid, 0, 0xffff_fffe),
      mode: o.mode === undefined ? undefined : check.mode(o.mode),
    })
  }

  /** `shmctl(id, SHM_LOCK)`: keeps the segment in memory. @throws {ShmError} `EPERM`, `ENOMEM`. */
  lock(): void {
    this.#live()
    native.shmLock(this.id, true)
  }

  /** `shmctl(id, SHM_UNLOCK)`. */
  unlock(): void {
    this.#live()
    native.shmLock(this.id, false)
  }

  /**
   * `shmctl(id, IPC_RMID)`: removes the segment. While any process is attached it is only marked:
   * its key becomes 0, `open(key)` fails with `ENOENT`, attached processes go on reading and
   * writing, and the kernel frees it at the last detach.
   */
  remove(): void {
    this.#live()
    native.shmRemove(this.id)
  }

  /**
   * Sleeps until the wait cell at `byteOffset` is notified from any process (`FUTEX_WAIT` on a
   * shared futex), as `Atomics.wait` does between threads: returns `'not-equal'` at once if the
   * cell's Int32 value is not `expected`, `'ok'` when woken, `'timed-out'` after `timeoutMs`.
   * Blocks the calling thread (use {@link SharedMemory.waitAsync} on the event loop).
   *
   * A wait cell is 8 bytes at a multiple of 8: the Int32 value (index `byteOffset / 4` of an
   * `Int32Array` over `buffer`), then the Uint32 count of its waiters, which `wait` maintains and
   * `notify` reads so that it makes no system call when nobody waits. Leave those 4 bytes alone.
   * Like any futex, `'ok'` can rarely be spurious: re-check the value in a loop.
   *
   * @throws {RangeError} if `byteOffset` is not a multiple of 8 or the cell is out of bounds.
   * @throws {ShmError} `ERR_SHM_READ_ONLY` (the waiter count must be written), `ERR_SHM_DETACHED`.
   */
  wait(byteOffset: number, expected: number, timeoutMs?: number): WaitResult {
    // A live zero-copy view means the handle is attached; else ask (one native call less per wait).
    if (this.#i32 === null) this.#live()
    const off = futex.cellOffset(byteOffset, this.size)
    const value = futex.int32('expected', expected)
    const ms = futex.timeout(timeoutMs)
    this.#writable('wait on')
    return native.mappingWait(this.#copyHandle(), off, value, ms) as WaitResult
  }

  /**
   * Wakes up to `count` (default: all) waiters of the wait cell at `byteOffset`, in any process,
   * and returns how many it woke. Change the value first with `Atomics.store` (or another
   * `Atomics` write): the order of that write and this read of the waiter count is what makes the
   * protocol safe. When the cell's waiter count is 0 it returns 0 without a system call.
   */
  notify(byteOffset: number, count?: number): number {
    const i32 = this.#view() === null ? null : this.#i32
    if (i32 !== null) {
      // Fast path: a live zero-copy view means the handle is attached.
      const off = futex.cellOffset(byteOffset, this.size)
      const n = futex.count(count)
      if (n === 0 || Atomics.load(i32, (off >> 2) + 1) === 0) return 0
      return native.mappingNotify(this.#copyHandle(), off, n)
    }
    this.#live()
    return native.mappingNotify(this.#copyHandle(), futex.cellOffset(byteOffset, this.size), futex.count(count))
  }

  /**
   * Waits like {@link SharedMemory.wait} without blocking: the promise resolves to `'ok'`,
   * `'not-equal'` or `'timed-out'`. No libuv pool thread is held: on Linux 5.16 or later one waiter
   * thread per process sleeps in `futex_waitv(2)` on up to 127 cells at once; on older kernels (and
   * under qemu-user) each pending wait gets a pooled thread of its own, asleep in `FUTEX_WAIT`. It
   * resolves `'ok'` when the cell is woken, or when the waiter finds the value changed (so change the
   * value before notifying). `options.signal` cancels the wait at once (the promise rejects with an
   * `AbortError` whose `cause` is the signal's reason); every error is a rejection, never a throw;
   * {@link SharedMemory.detach} rejects pending waits with `ERR_SHM_DETACHED`.
   */
  async waitAsync(byteOffset: number, expected: number, timeoutMs?: number, options?: WaitAsyncOptions): Promise<WaitResult> {
    this.#live()
    const off = futex.cellOffset(byteOffset, this.size)
    const value = futex.int32('expected', expected)
    const ms = futex.timeout(timeoutMs)
    const signal = futex.signalOf(options)
    this.#writable('wait on')
    return run(signal, (token) => native.mappingWaitAsync(this.#copyHandle(), off, value, ms, token))
  }


  /**
   * Detaches now (`shmdt`); the `buffer` and its views become length 0. Idempotent. Once
   * {@link SharedMemory.sharedBuffer} was read, the handle is detached at once but the `shmdt`
   * waits until every `SharedArrayBuffer` of it is garbage-collected (see there).
   */
  detach(): void {
    const ab = (this.#buffer?.buffer as ArrayBuffer | undefined) ?? null
    // Native first: if it refuses (ERR_SHM_BUFFER_LIVE), the handle stays as it was.
    this.#native.detach(ab)
    this.#buffer = null
    this.#sharedBuffer = null
    this.#i32 = null
    this.#attached = false
  }

  /** `using shm = SharedMemory.open(key)` detaches at the end of the scope. */
  [Symbol.dispose](): void {
    this.detach()
  }

  #copyHandle(): ExternalObject<'CopyHandle'> {
    return (this.#copy ??= this.#native.copyHandle())
  }

  #writable(what: string): void {
    if (this.readOnly) {
      throw new ShmError(
        `segment ${this.id} is attached read-only (SHM_RDONLY): cannot ${what} a wait cell, whose waiter count must be written`,
        'ERR_SHM_READ_ONLY',
      )
    }
  }

  #live(): void {
    if (!this.#attached) {
      throw new ShmError(`segment ${this.id} has been detached from this handle`, 'ERR_SHM_DETACHED')
    }
  }

  /** Makes the zero-copy view at its first use (the handle is attached: only detach() ends it). */
  #makeView(): Buffer | null {
    this.#buffer = null
    const ab = this.#native.createBuffer()
    if (typeof ab === 'string') {
      this.#noZeroCopy = ab
      return null
    }
    check.segmentBuffer(ab)
    this.#i32 = new Int32Array(ab, 0, Math.floor(this.size / 4))
    this.#zeroCopy = true
    return (this.#buffer = Buffer.from(ab, 0, this.size))
  }

  /**
   * The zero-copy view for the JavaScript paths, or null: none, or its ArrayBuffer was detached
   * by the user (`ArrayBuffer#transfer()`, or a transfer list). Then the views are dropped and
   * every call goes native, which still has the mapping. (Not `markAsUntransferable`: from Node
   * 24 it gives the buffer a detach key, and `napi_detach_arraybuffer` of `detach()` then aborts
   * the process.) One built-in getter call: a segment is never 0 bytes.
   */
  #view(): Buffer | null {
    const buf = this.#buffer === undefined ? this.#makeView() : this.#buffer
    if (buf === null || check.lengthOf(buf) !== 0) return buf
    this.#buffer = null
    this.#i32 = null
    this.#noZeroCopy = 'its ArrayBuffer was detached (ArrayBuffer#transfer())'
    return null
  }
}

/** The runtime and its version, for messages: `Node.js v20.19.0`, `Bun 1.4.4`, `Deno 2.9.6`. */
function runtime(): string {
  const v = process.versions as Record<string, string | undefined>
  if (v.bun) return `Bun ${v.bun}`
  if (v.deno) return `Deno ${v.deno}`
  return `Node.js ${process.version}`
}

/** Every segment of this IPC namespace, as `ipcs -m` lists them. */
export function listSegments(): SegmentInfo[] {
  return native.shmList().map(info)
}

/**
 * `shmctl(slot, SHM_STAT_ANY)` of the segment with this id: its info without read permission, as
 * `ipcs -m` shows it; `null` if it is gone (or the kernel is older than 4.17).
 * @internal
 */
export function statAnySegment(id: number): SegmentInfo | null {
  const s = native.shmStatAny(check.id(id))
  return s ? info(s) : null
}

/** The kernel's shared memory limits and current usage (`ipcs -l`, `ipcs -u`). */
export function limits(): Limits {
  return { ...native.shmLimits() }
}

/**
 * `ftok(3)`: a key from an existing file and a project id (1 to 255). The same path and id give
 * the same key in every process and language, as long as the file is not replaced.
 *
 * @throws {ShmError} `ENOENT`, `EACCES` (from `stat` of the path), syscall `'ftok'`.
 */
export function ftok(path: string | URL, projId: number): number {
  const p = check.path('path', path instanceof URL ? check.fileUrl('path', path, fileURLToPath) : path)
  return native.ftok(p, check.integer('projId', projId, 1, 255))
}

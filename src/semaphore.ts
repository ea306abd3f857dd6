/**
 * `Semaphore`: a System V semaphore set (`semget`, `semop`/`semtimedop`, `semctl`).
 * @module
 */
/// <reference types="node" preserve="true" />
import type { NativeSemOp, NativeSemStat } from '../binding'

import { native } from './binding'
import { date, perm, type IpcInfo } from './ipc'
import { abortSignal, run, timeout } from './async'
import * as check from './validate'

/** Options of {@link Semaphore.create}. */
export interface SemaphoreCreateOptions {
  /** How many semaphores the set has: 1 to `SEMMSL` (`kernel.sem`, first field; 32000 by default). Default 1. */
  count?: number
  /** The initial value of every semaphore, 0 to 32767. Default 0. */
  initial?: number
  /** Permission bits. Default `0o600`. */
  mode?: number
  /** `IPC_EXCL`: fail with `EEXIST` if the key exists. Default `true`; `false` opens an existing set (values untouched). */
  exclusive?: boolean
}

/** Options of the operations. */
export interface SemaphoreOpOptions {
  /** Which semaphore of the set. Default 0. */
  index?: number
  /**
   * `SEM_UNDO`: the kernel reverts the operation if this process exits, so a holder that crashes
   * gives its units back. Default `true`. Pair undo acquires with undo releases; use `false` for
   * a semaphore that one process only releases and another only acquires (signalling).
   */
  undo?: boolean
}

/** Options of the waiting operations. */
export interface SemaphoreWaitOptions extends SemaphoreOpOptions {
  /** Give up after this many milliseconds (`semtimedop`). Default: wait forever. */
  timeoutMs?: number
}

/** Options of {@link Semaphore.acquireAsync}. */
export interface SemaphoreAsyncOptions extends SemaphoreWaitOptions {
  /** Cancels the wait at once; the promise rejects with an `AbortError` whose `cause` is `signal.reason`. */
  signal?: AbortSignal
}

/** A semaphore set as `semctl(IPC_STAT)` and `ipcs -s` describe it. */
export interface SemaphoreInfo extends IpcInfo {
  /** How many semaphores the set has. */
  count: number
  /** Last `semop`; `null` if none yet (then the creator may not have initialised the values). */
  opTime: Date | null
  /** Last change. */
  changeTime: Date | null
}

/** Who waits on one semaphore. */
export interface SemaphoreWaiters {
  /** Processes waiting for the value to increase (`GETNCNT`). */
  forIncrease: number
  /** Processes waiting for the value to become zero (`GETZCNT`). */
  forZero: number
  /** The pid of the last process that operated on it (`GETPID`). */
  lastPid: number
}

const CREATE_KEYS = ['count', 'initial', 'mode', 'exclusive'] as const
const OP_KEYS = ['index', 'undo'] as const
const WAIT_KEYS = ['index', 'undo', 'timeoutMs'] as const
const ASYNC_KEYS = ['index', 'undo', 'timeoutMs', 'signal'] as const
const MAX_VALUE = 32767
/** Values pass to the addon as 32-bit unsigned integers; the core checks them against `SEMVMX`. */
const U32 = 0xffff_ffff

function info(s: NativeSemStat): SemaphoreInfo {
  return {
    ...perm(s.id, s.perm),
    count: s.count,
    opTime: date(s.opTime),
    changeTime: date(s.changeTime),
  }
}

/**
 * A System V semaphore set: `count` counters in the kernel, shared by every process that opens
 * the key, the classic guard of SysV shared memory in C (and Python's `sysv_ipc`). Operations
 * default to semaphore 0 and to `SEM_UNDO`.
 *
 * ```ts
 * const lock = Semaphore.create(key, { initial: 1, exclusive: false })
 * lock.acquire()
 * try { ... } finally { lock.release() }
 * ```
 */
export class Semaphore {
  /** The semid, as `ipcs -s` prints it. */
  readonly id: number
  /** Whether this handle's `create` made the set. */
  readonly created: boolean

  private constructor(id: number, created: boolean) {
    this.id = id
    this.created = created
  }

  /**
   * Creates a set: `semget(key, count, IPC_CREAT | IPC_EXCL | mode)`, sets every value to
   * `initial` (`SETALL`) and runs a no-op `semop` so that `stat().opTime` shows it initialised.
   *
   * @throws {ShmError} `EEXIST` (unless `exclusive: false`), `EINVAL` (more than an existing set
   * has), `ENOSPC`, `EACCES`.
   * @throws {RangeError} `count` outside 1 to `SEMMSL` (the kernel's `kernel.sem`, read at the call)
   * or `initial` above 32767, before any `semget`.
   */
  static create(key: number, options?: SemaphoreCreateOptions): Semaphore {
    const k = check.key(key)
    const o = check.options<SemaphoreCreateOptions>(options, CREATE_KEYS)
    const count = o.count === undefined ? 1 : check.integer('count', o.count, 0, Number.MAX_SAFE_INTEGER)
    const initial = o.initial === undefined ? 0 : check.integer('initial', o.initial, 0, U32)
    const mode = o.mode === undefined ? 0o600 : check.mode(o.mode)
    const exclusive = check.boolean('exclusive', o.exclusive) ?? true
    const { id, created } = native.semCreate(k, count, initial, mode, exclusive)
    return new Semaphore(id, created)
  }

  /** Opens the set of `key`: `semget(key, 0, 0)`. @throws {ShmError} `ENOENT`, `EACCES`. */
  static open(key: number): Semaphore {
    const k = check.key(key)
    if (k === 0) throw check.rangeError('IPC_PRIVATE (0) names no semaphore set: open it with openById(id)')
    return new Semaphore(native.semOpen(k), false)
  }

  /** Names the set with this semid; checks that it exists (`IPC_STAT`). */
  static openById(id: number): Semaphore {
    const i = check.id(id)
    native.semStat(i)
    return new Semaphore(i, false)
  }

  /** `semctl(id, 0, IPC_STAT)` of any set. */
  static statById(id: number): SemaphoreInfo {
    return info(native.semStat(check.id(id)))
  }

  /** `semctl(id, 0, IPC_RMID)` of any set (`ipcrm -s ID`). */
  static removeById(id: number): void {
    native.semRemove(check.id(id))
  }

  /**
   * Takes `n` units (default 1), waiting while the value is below `n`: `true` when taken, `false`
   * if `timeoutMs` elapsed first. Blocks the thread (see {@link Semaphore.acquireAsync}).
   *
   * @throws {ShmError} `EIDRM` if the set is removed (also while waiting), `EINVAL`, `EACCES`.
   */
  acquire(n = 1, options?: SemaphoreWaitOptions): boolean {
    const o = check.options<SemaphoreWaitOptions>(options, WAIT_KEYS)
    return native.semOp(this.id, [this.#op(-units(n), o, false)], timeout(o.timeoutMs)) === 'ok'
  }

  /** Takes `n` units if the value allows now (`IPC_NOWAIT`); `false` otherwise. */
  tryAcquire(n = 1, options?: SemaphoreOpOptions): boolean {
    const o = check.options<SemaphoreOpOptions>(options, OP_KEYS)
    return native.semOp(this.id, [this.#op(-units(n), o, true)], undefined) === 'ok'
  }

  /**
   * Takes `n` units without blocking the event loop: the wait runs on a pooled thread (not the
   * libuv pool). Resolves `true`, or `false` on timeout; `options.signal` cancels it at once
   * (an `AbortError`; nothing is taken). Every error is a rejection, never a throw.
   */
  async acquireAsync(n = 1, options?: SemaphoreAsyncOptions): Promise<boolean> {
    const o = check.options<SemaphoreAsyncOptions>(options, ASYNC_KEYS)
    const op = this.#op(-units(n), o, false)
    const ms = timeout(o.timeoutMs)
    const signal = abortSignal(o.signal)
    return (await run(signal, (token) => native.semOpAsync(this.id, [op], ms, token))) === 'ok'
  }


  /** Gives back `n` units (default 1), waking waiters. @throws {ShmError} `ERANGE` above 32767, `EIDRM`. */
  release(n = 1, options?: SemaphoreOpOptions): void {
    const o = check.options<SemaphoreOpOptions>(options, OP_KEYS)
    native.semOp(this.id, [this.#op(units(n), o, false)], undefined)
  }

  /**
   * Waits until the value is zero (a `semop` of 0): `true`, or `false` if `timeoutMs` elapsed.
   * `undo` does not apply.
   */
  waitForZero(options?: Omit<SemaphoreWaitOptions, 'undo'>): boolean {
    const o = check.options<SemaphoreWaitOptions>(options, ['index', 'timeoutMs'])
    return native.semOp(this.id, [this.#op(0, { index: o.index, undo: false }, false)], timeout(o.timeoutMs)) === 'ok'
  }

  /** The value of semaphore 0 (`GETVAL`). */
  get value(): number {
    return native.semGetValue(this.id, 0)
  }

  /** The value of semaphore `index` (`GETVAL`). */
  getValue(index = 0): number {
    return native.semGetValue(this.id, this.#index(index))
  }

  /** Sets semaphore `index` (`SETVAL`): clears every process's undo record for it and wakes waiters. */
  setValue(value: number, index = 0): void {
    native.semSetValue(this.id, this.#index(index), check.integer('value', value, 0, U32))
  }

  /** Every value (`GETALL`). */
  values(): number[] {
    return native.semGetAll(this.id)
  }

  /** Sets every value (`SETALL`); one per semaphore. */
  setValues(values: readonly number[]): void {
    if (!Array.isArray(values)) throw check.rangeError('The "values" argument must be an array of integers')
    native.semSetAll(
      this.id,
      values.map((v, i) => check.integer(`values[${i}]`, v, 0, U32)),
    )
  }

  /** Who waits on semaphore `index`, and who operated on it last. */
  waiters(index = 0): SemaphoreWaiters {
    const [forIncrease, forZero, lastPid] = native.semCounts(this.id, this.#index(index))
    return { forIncrease, forZero, lastPid }
  }

  /** `semctl(id, 0, IPC_STAT)`. */
  stat(): SemaphoreInfo {
    return info(native.semStat(this.id))
  }

  /**
   * `semctl(id, 0, IPC_SET)`: owner and permission bits. Needs ownership, not read permission: an
   * owner can restore a mode that shuts it out (`0o000`). @throws {ShmError} `EPERM`.
   */
  set(options: { uid?: number; gid?: number; mode?: number }): void {
    const o = check.options<{ uid?: number; gid?: number; mode?: number }>(options, ['uid', 'gid', 'mode'])
    native.semSet(this.id, {
      uid: o.uid === undefined ? undefined : check.integer('uid', o.uid, 0, 0xffff_fffe),
      gid: o.gid === undefined ? undefined : check.integer('gid', o.gid, 0, 0xffff_fffe),
      mode: o.mode === undefined ? undefined : check.mode(o.mode),
    })
  }

  /** `semctl(id, 0, IPC_RMID)`: removes the set at once; processes waiting on it get `EIDRM`. */
  remove(): void {
    native.semRemove(this.id)
  }

  #index(index: unknown): number {
    return check.integer('index', index, 0, 0xffff)
  }

  #op(delta: number, o: SemaphoreOpOptions, nowait: boolean): NativeSemOp {
    return {
      index: o.index === undefined ? 0 : this.#index(o.index),
      delta,
      undo: check.boolean('undo', o.undo) ?? true,
      nowait,
    }
  }
}

function units(n: unknown): number {
  return check.integer('n', n, 1, MAX_VALUE)
}

/**
 * Every semaphore set of this IPC namespace, like `ipcs -s`: `semctl(SEM_INFO)`, then
 * `semctl(index, 0, SEM_STAT_ANY)` for each slot, which lists sets this user may not read too
 * (Linux 4.17; older kernels skip those).
 */
export function listSemaphores(): SemaphoreInfo[] {
  return native.semList().map(info)
}

/**
 * `semctl(slot, 0, SEM_STAT_ANY)` of the set with this id: its info without read permission, as
 * `ipcs -s` shows it; `null` if it is gone (or the kernel is older than 4.17).
 * @internal
 */
export function statAnySemaphore(id: number): SemaphoreInfo | null {
  const s = native.semStatAny(check.id(id))
  return s ? info(s) : null
}

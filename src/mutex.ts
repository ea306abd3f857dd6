/**
 * `Mutex`: a robust cross-process lock in a segment (README, section "Mutex").
 * @module
 */
/// <reference types="node" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
import { native } from './binding'
import { ShmError } from './errors'
import * as futex from './futex'
import { SharedMemory } from './shared-memory'
import * as check from './validate'
import { PID_MAX_LIMIT, identity, wordsOf, type Words } from './words'

/** `"MTX1"` read as a little-endian u32. */
const MAGIC = 0x3158544d
const VERSION = 1
/** Bytes of one mutex in a segment. */
export const MUTEX_SIZE = 32
// Word indexes from the mutex's byteOffset (README, "Mutex", layout table).
const W_MAGIC = 0
const W_VERSION = 1
const W_LOCK = 2
const W_WAITERS = 3
const W_OWNER_TID = 4
const W_OWNER_START = 5
const W_HANDOFF = 6
const W_RESERVED = 7
const TID_MASK = 0x3fff_ffff
const OWNER_DIED = 0x4000_0000
const NOT_RECOVERABLE = TID_MASK
/** The longest sleep between two liveness checks of the holder (the backoff starts at 2 ms and doubles). */
const MAX_CHECK_MS = 64
/** A waiter that has waited this long asks the others to leave a free lock to it (the handoff word). */
const STARVE_MS = 5
/** A locker defers to the same handoff request at most this long, then clears it (its waiter may be gone). */
const HANDOFF_MAX_MS = 250

/** Options of {@link Mutex.lockAsync}. */
export interface MutexLockAsyncOptions {
  /** Cancels the wait: the promise rejects as `SharedMemory.waitAsync` does when aborted; the lock is not taken. */
  signal?: AbortSignal
  /** Gives up after this many milliseconds: the promise resolves `false`. Default: wait forever. */
  timeoutMs?: number
}

/**
 * What one attempt found: `'acquired'`, `'died'` (acquired from a dead holder), or the lock word
 * that keeps it (a valid holder TID, possibly with {@link OWNER_DIED}, or 0 while a handoff is pending).
 */
type Attempt = 'acquired' | number

/**
 * Disposable ownership of a {@link Mutex}, returned by {@link Mutex.acquire} and
 * {@link Mutex.acquireAsync}: `using guard = m.acquire()` unlocks at the end of the scope.
 */
export class MutexGuard implements Disposable {
  /** Whether the previous holder died while holding the lock (see {@link Mutex.ownerDied}). */
  readonly ownerDied: boolean
  #mutex: Mutex | null

  /** @internal */
  constructor(mutex: Mutex, ownerDied: boolean) {
    this.#mutex = mutex
    this.ownerDied = ownerDied
  }

  /** Unlocks (once; later calls do nothing). @throws {ShmError} as {@link Mutex.unlock}. */
  release(): void {
    const m = this.#mutex
    this.#mutex = null
    m?.unlock()
  }

  [Symbol.dispose](): void {
    this.release()
  }
}

/**
 * A robust lock shared by processes (and by threads of one process), 32 bytes in a segment at
 * a `byteOffset` that is a multiple of 8. Other processes, also C programs following the layout
 * in the README, lock the same bytes.
 *
 * - Uncontended `lock`/`tryLock`/`unlock` are a few `Atomics` operations on the zero-copy view:
 *   no system call, no native call. Contended lockers sleep on the lock word as a wait cell
 *   (`FUTEX_WAIT`), and `unlock` wakes one only when its waiter count says someone sleeps.
 * - The holder is a thread: its TID (`gettid()`) is the lock word. Worker threads exclude each
 *   other like processes do; asynchronous `lockAsync` calls of one thread are one owner (the
 *   thread), so unlock from another thread is `EPERM`, from the same thread it is allowed.
 * - Robust, like `PTHREAD_MUTEX_ROBUST`: a holder that dies (kill -9, or a worker that ends) is
 *   found dead by the next locker, which takes the lock and sees {@link Mutex.ownerDied} `true`.
 *   It repairs the protected data and calls {@link Mutex.consistent}; if it unlocks without that,
 *   the lock is not recoverable: every later lock throws `ENOTRECOVERABLE`.
 * - Dead or alive: the holder publishes its TID and its start time (field 22 of
 *   `/proc/TID/stat`), and a waiter reads `/proc/TID/stat` of the holder: a missing file, a zombie,
 *   or another start time (the TID was reused) means dead. A waiter checks at once when it finds
 *   the lock held, then each time its futex sleep ends, 2 ms later, then doubling to 64 ms: a dead
 *   holder is found within about 64 ms, and a live one costs a waiter one `/proc` read per
 *   sleep. Why not a pidfd: a pidfd is an fd of the process that opened it; a waiter of another
 *   process could only open one from the pid it reads in the segment, with the same reuse race.
 *   Needs `/proc`, and one pid namespace for all processes sharing the lock (a holder in another
 *   pid namespace has no `/proc/TID` here and would be taken for dead).
 * - Starvation: a waiter that has waited 5 ms writes its TID in the handoff word, and other
 *   lockers leave a free lock to it (for at most 250 ms each), so it gets the lock even against
 *   processes that lock and unlock in a tight loop. `tryLock` ignores the handoff word.
 *
 * Every word read from the segment is checked: a lock word that is no valid state throws
 * `ERR_MUTEX_CORRUPT`; a holder TID that is not alive is a dead holder.
 */
export class Mutex {
  /** The segment. */
  readonly shm: SharedMemory
  /** Where the mutex starts in the segment, a multiple of 8. */
  readonly byteOffset: number
  /** The view of the mutex's 8 words, or null where the segment has no zero-copy view. */
  #u32: Uint32Array | null
  #w: Words
  /** The byte offset of the wait cell (the lock word and its waiter count). */
  #cell: number

  private constructor(shm: SharedMemory, byteOffset: number) {
    this.shm = shm
    this.byteOffset = byteOffset
    this.#cell = byteOffset + 4 * W_LOCK
    const { words, view } = wordsOf(shm, byteOffset, MUTEX_SIZE / 4)
    this.#u32 = view
    this.#w = words
  }

  /**
   * Initialises a mutex (unlocked) at `byteOffset` of `shm` and returns it: like
   * `pthread_mutex_init`, do it once, before other processes use those bytes.
   *
   * @throws {RangeError} if `byteOffset` is not a multiple of 8 or 32 bytes do not fit there.
   * @throws {ShmError} `ERR_SHM_READ_ONLY`, `ERR_SHM_DETACHED`.
   */
  static create(shm: SharedMemory, byteOffset = 0): Mutex {
    const m = new Mutex(...Mutex.#place(shm, byteOffset))
    const w = m.#w
    for (const i of [W_LOCK, W_WAITERS, W_OWNER_TID, W_OWNER_START, W_HANDOFF, W_RESERVED]) w.store(i, 0)
    w.store(W_VERSION, VERSION)
    w.store(W_MAGIC, MAGIC)
    return m
  }

  /**
   * The mutex that {@link Mutex.create} initialised at `byteOffset` of `shm` (in any process).
   *
   * @throws {ShmError} `ERR_MUTEX_CORRUPT` if the bytes there are no mutex of this version (the
   * message has the magic and version found).
   */
  static at(shm: SharedMemory, byteOffset = 0): Mutex {
    const m = new Mutex(...Mutex.#place(shm, byteOffset))
    const magic = m.#w.load(W_MAGIC)
    const version = m.#w.load(W_VERSION)
    if (magic !== MAGIC || version !== VERSION) {
      throw m.#corrupt(
        `no mutex of version ${VERSION} there (magic 0x${hex(magic)}, version ${version}; ` +
          `want magic 0x${hex(MAGIC)}): initialise it with Mutex.create`,
      )
    }
    m.#word() // a lock word out of the rules is an error now rather than at the first lock
    return m
  }

  /** Same as {@link Mutex.at}. */
  static open(shm: SharedMemory, byteOffset = 0): Mutex {
    return Mutex.at(shm, byteOffset)
  }

  static #place(shm: SharedMemory, byteOffset: unknown): [SharedMemory, number] {
    if (!(shm instanceof SharedMemory)) {
      throw Object.assign(new TypeError('The "shm" argument must be a SharedMemory'), { code: 'ERR_INVALID_ARG_TYPE' })
    }
    const off = check.integer('byteOffset', byteOffset, 0, Number.MAX_SAFE_INTEGER)
    if (off % 8 !== 0) throw check.rangeError(`The "byteOffset" argument must be a multiple of 8. Received ${off}`)
    if (off + MUTEX_SIZE > shm.size) {
      throw check.rangeError(`A mutex at byteOffset ${off} (${MUTEX_SIZE} bytes) does not fit in a segment of ${shm.size} bytes`)
    }
    if (!shm.attached) throw new ShmError(`segment ${shm.id} has been detached from this handle`, 'ERR_SHM_DETACHED')
    if (shm.readOnly) {
      throw new ShmError(`segment ${shm.id} is attached read-only (SHM_RDONLY): a mutex must be written`, 'ERR_SHM_READ_ONLY')
    }
    return [shm, off]
  }

  /**
   * Takes the lock if it is free now; `false` if a thread holds it (this one too: an
   * asynchronous caller may probe). A holder found dead is taken over (check
   * {@link Mutex.ownerDied}), which costs one read of `/proc`.
   *
   * @throws {ShmError} `ENOTRECOVERABLE`, `ERR_MUTEX_CORRUPT`, `ERR_SHM_DETACHED`.
   */
  tryLock(): boolean {
    const u = this.#u32
    if (u !== null && this.shm.attached && Atomics.compareExchange(u, W_LOCK, 0, identity().tid) === 0) {
      this.#publish()
      return true
    }
    const r = this.#attempt(false)
    if (r === 'acquired') return true
    return this.#takeOverIfDead(r)
  }

  /**
   * Takes the lock, sleeping while another thread holds it; `false` after `timeoutMs` (absent or
   * `Infinity`: no timeout). Blocks the thread: on the event loop, use {@link Mutex.lockAsync}.
   *
   * @returns `true` once this thread holds the lock (check {@link Mutex.ownerDied}), `false` on timeout.
   * @throws {ShmError} `ENOTRECOVERABLE` (a holder died and its successor unlocked without
   * `consistent()`), `EDEADLK` (this thread holds it already: it would wait forever),
   * `ERR_MUTEX_CORRUPT`, `ERR_SHM_DETACHED`.
   */
  lock(timeoutMs?: number): boolean {
    const ms = futex.timeout(timeoutMs)
    const u = this.#u32
    if (u !== null && this.shm.attached && Atomics.load(u, W_HANDOFF) === 0) {
      if (Atomics.compareExchange(u, W_LOCK, 0, identity().tid) === 0) {
        this.#publish()
        return true
      }
    }
    const wait = new Waiter(this.#waiterOps(), ms)
    try {
      for (;;) {
        const r = wait.step()
        if (r === true) return true
        if (r === false) return false
        this.shm.wait(this.#cell, r.word, r.sleepMs)
      }
    } finally {
      wait.done()
    }
  }

  /**
   * Takes the lock without blocking the event loop: sleeps in {@link SharedMemory.waitAsync}
   * while another thread holds it. Resolves `true` once this thread holds it, `false` after
   * `timeoutMs`. Calls of one thread are one owner: a second `lockAsync` of the thread that
   * holds the lock waits for its `unlock`.
   *
   * @throws {ShmError} as {@link Mutex.lock} (but no `EDEADLK`). When `signal` aborts (also
   * before the call), rejects as {@link SharedMemory.waitAsync} does, and does not take the lock.
   */
  lockAsync(options?: MutexLockAsyncOptions): Promise<boolean> {
    const o = check.options<MutexLockAsyncOptions>(options, ['signal', 'timeoutMs'])
    const signal = futex.signalOf({ signal: o.signal })
    const ms = futex.timeout(o.timeoutMs)
    // Rejected as SharedMemory.waitAsync rejects an aborted wait: by that call (which does not wait).
    if (signal?.aborted) return this.shm.waitAsync(this.#cell, 0, 0, { signal }).then(() => Promise.reject(signal.reason))
    return this.#lockAsync(ms, signal)
  }

  async #lockAsync(ms: number | undefined, signal: AbortSignal | undefined): Promise<boolean> {
    const wait = new Waiter(this.#waiterOps(), ms, true)
    try {
      for (;;) {
        const r = wait.step()
        if (r === true) return true
        if (r === false) return false
        await this.shm.waitAsync(this.#cell, r.word, r.sleepMs, { signal })
      }
    } finally {
      wait.done()
    }
  }

  /**
   * {@link Mutex.lock} that returns a guard for `using`:
   * `{ using guard = m.acquire(); … }` unlocks at the end of the block.
   * @throws {ShmError} `ETIMEDOUT` if `timeoutMs` passes; as {@link Mutex.lock}.
   */
  acquire(timeoutMs?: number): MutexGuard {
    if (!this.lock(timeoutMs)) throw this.#timedOut(timeoutMs)
    return new MutexGuard(this, this.ownerDied)
  }

  /** {@link Mutex.lockAsync} that resolves to a guard: `using guard = await m.acquireAsync()`. */
  async acquireAsync(options?: MutexLockAsyncOptions): Promise<MutexGuard> {
    if (!(await this.lockAsync(options))) throw this.#timedOut(options?.timeoutMs)
    return new MutexGuard(this, this.ownerDied)
  }

  /**
   * Releases the lock and wakes one sleeping waiter if there is one (no system call otherwise).
   * Released while {@link Mutex.ownerDied} is `true` (no {@link Mutex.consistent}), the lock
   * becomes not recoverable: every later lock throws `ENOTRECOVERABLE`.
   *
   * @throws {ShmError} `EPERM` if this thread does not hold the lock; `ERR_MUTEX_CORRUPT` if the
   * lock word changed under the holder (another process broke the protocol); `ERR_SHM_DETACHED`.
   */
  unlock(): void {
    const u = this.#u32
    const me = identity().tid
    if (u !== null && this.shm.attached) {
      if (Atomics.load(u, W_LOCK) === me) {
        Atomics.store(u, W_OWNER_TID, 0)
        if (Atomics.compareExchange(u, W_LOCK, me, 0) === me) {
          if (Atomics.load(u, W_WAITERS) !== 0 || Atomics.load(u, W_HANDOFF) !== 0) this.#wake(false)
          return
        }
      }
    }
    const w = this.#word()
    if (w === 0 || w === NOT_RECOVERABLE || (w & TID_MASK) !== me) {
      const held = w === 0 ? 'it is free' : w === NOT_RECOVERABLE ? 'it is not recoverable' : `thread ${w & TID_MASK} holds it`
      throw new ShmError(`unlock of mutex ${this.#where()} by thread ${me}, which does not hold it: ${held}`, 'EPERM')
    }
    this.#w.store(W_OWNER_TID, 0)
    const next = w & OWNER_DIED ? NOT_RECOVERABLE : 0
    const found = this.#w.cas(W_LOCK, w, next)
    if (found !== w) throw this.#corrupt(`the lock word changed from 0x${hex(w)} to 0x${hex(found)} while thread ${me} held it`)
    this.#wake(next === NOT_RECOVERABLE)
  }

  /**
   * Marks the data protected by the lock repaired after {@link Mutex.ownerDied}: the lock goes on
   * working (`pthread_mutex_consistent`).
   * @throws {ShmError} `EINVAL` unless this thread holds the lock and its owner died.
   */
  consistent(): void {
    const me = identity().tid
    const w = this.#word()
    if (w !== (me | OWNER_DIED) || this.#w.cas(W_LOCK, w, me) !== w) {
      throw new ShmError(`consistent() on mutex ${this.#where()}: this thread does not hold it after an owner death`, 'EINVAL')
    }
  }

  /**
   * Whether this thread holds the lock and took it from a holder that died: the data it protects
   * may be half-updated. Call {@link Mutex.consistent} once it is repaired.
   */
  get ownerDied(): boolean {
    const w = this.#word()
    return w !== NOT_RECOVERABLE && (w & OWNER_DIED) !== 0 && (w & TID_MASK) === identity().tid
  }

  /** Whether this thread holds the lock. */
  get held(): boolean {
    const w = this.#word()
    return w !== 0 && w !== NOT_RECOVERABLE && (w & TID_MASK) === identity().tid
  }

  /**
   * One attempt: `'acquired'` (check `ownerDied` for a takeover), or the lock word that keeps the
   * lock (0 when the lock is free but left to a starving waiter). Throws on a word out of the rules.
   */
  #attempt(respectHandoff: boolean): Attempt {
    const me = identity().tid
    this.#live()
    for (;;) {
      const h = respectHandoff ? this.#w.load(W_HANDOFF) : 0
      const deferring = h !== 0 && h !== me
      // Else one compare-exchange both tries and reads the word (one native call without a view).
      const found = deferring ? this.#w.load(W_LOCK) : this.#w.cas(W_LOCK, 0, me)
      if (found === 0 && !deferring) {
        this.#publish()
        return 'acquired'
      }
      const w = this.#checked(found)
      if (w === NOT_RECOVERABLE) {
        throw new ShmError(
          `mutex ${this.#where()} is not recoverable: a holder died and the next one unlocked it without consistent()`,
          'ENOTRECOVERABLE',
        )
      }
      if (w !== 0 || deferring) return w
    }
  }

  /**
   * Whether the holder of lock word `w` is dead: then takes the lock over (`w` to this thread's
   * TID with `OWNER_DIED`) and returns true. The compare-exchange from `w` makes one taker of
   * many (and none if the holder unlocked in between).
   */
  #takeOverIfDead(w: number): boolean {
    const tid = w & TID_MASK
    if (w === 0 || w === NOT_RECOVERABLE || tid === identity().tid) return false
    const start = this.#w.load(W_OWNER_TID) === tid ? this.#w.load(W_OWNER_START) : -1
    if (native.mutexHolderAlive(tid, start)) return false
    if (this.#w.cas(W_LOCK, w, identity().tid | OWNER_DIED) !== w) return false
    this.#publish()
    return true
  }

  /** The lock word, checked: 0, `NOT_RECOVERABLE`, or a TID 1..PID_MAX_LIMIT with or without OWNER_DIED. */
  #word(): number {
    this.#live()
    return this.#checked(this.#w.load(W_LOCK))
  }

  #live(): void {
    if (!this.shm.attached) throw new ShmError(`segment ${this.shm.id} has been detached from this handle`, 'ERR_SHM_DETACHED')
  }

  /** `w` if it is a state of the layout, else `ERR_MUTEX_CORRUPT`. */
  #checked(w: number): number {
    if (w === 0 || w === NOT_RECOVERABLE) return w
    const tid = w & TID_MASK
    if (w > (OWNER_DIED | TID_MASK) || tid === 0 || tid > PID_MAX_LIMIT) {
      throw this.#corrupt(`the lock word 0x${hex(w)} is no state of the layout (0, a TID up to ${PID_MAX_LIMIT}, with bit 30 after an owner death, or 0x${hex(NOT_RECOVERABLE)})`)
    }
    return w
  }

  /** Writes this thread's start time, then its TID: a waiter trusts the start time once the TID matches the lock word. */
  #publish(): void {
    const me = identity()
    this.#w.store(W_OWNER_START, me.start)
    this.#w.store(W_OWNER_TID, me.tid)
  }

  /** After a release: wakes all (not recoverable, or a starving waiter must get its turn) or one. */
  #wake(all: boolean): void {
    // The waiter count read after the (sequentially consistent) release: nobody sleeps, no call.
    if (this.#w.load(W_WAITERS) === 0) return
    const everyone = all || this.#w.load(W_HANDOFF) !== 0
    this.shm.notify(this.#cell, everyone ? Infinity : 1)
  }

  /** What a {@link Waiter} of this mutex may do. */
  #waiterOps(): WaiterOps {
    return {
      words: this.#w,
      attempt: () => this.#attempt(true),
      takeOverIfDead: (w) => this.#takeOverIfDead(w),
      deadlock: () => this.#deadlock(),
      held: () => this.held,
      wakeOne: () => void this.shm.notify(this.#cell, 1),
    }
  }

  #deadlock(): ShmError {
    return new ShmError(
      `mutex ${this.#where()} is held by this thread (${identity().tid}): locking it again would wait forever`,
      'EDEADLK',
    )
  }

  #timedOut(timeoutMs: number | undefined): ShmError {
    return new ShmError(`mutex ${this.#where()} was not acquired within ${timeoutMs} ms`, 'ETIMEDOUT')
  }

  #corrupt(detail: string): ShmError {
    return new ShmError(`mutex ${this.#where()} is corrupt: ${detail}`, 'ERR_MUTEX_CORRUPT')
  }

  #where(): string {
    return `at byteOffset ${this.byteOffset} of segment ${this.shm.id}`
  }
}

function hex(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0')
}

/** The private operations of a {@link Mutex} that its {@link Waiter} uses. */
interface WaiterOps {
  words: Words
  attempt(): Attempt
  takeOverIfDead(w: number): boolean
  deadlock(): ShmError
  held(): boolean
  wakeOne(): void
}

/**
 * The waiting of one `lock`/`lockAsync` call: what to do next (`true` acquired, `false` timed
 * out, or the word to sleep on and for how long), the liveness backoff, the handoff request.
 */
class Waiter {
  readonly #m: WaiterOps
  readonly #deadline: number
  readonly #async: boolean
  readonly #since = performance.now()
  #nextCheck = this.#since
  #interval = 2
  #handoff = false
  #deferredTo = 0
  #deferredSince = 0

  constructor(m: WaiterOps, timeoutMs: number | undefined, async = false) {
    this.#m = m
    this.#deadline = timeoutMs === undefined ? Infinity : this.#since + timeoutMs
    this.#async = async
  }

  step(): boolean | { word: number; sleepMs: number } {
    const m = this.#m
    const me = identity().tid
    const r = m.attempt()
    if (r === 'acquired') return true
    const now = performance.now()
    let sleepUntil = this.#deadline
    if (r !== 0) {
      this.#deferredTo = 0
      if ((r & TID_MASK) === me) {
        // This thread holds it: a synchronous wait would never end; an asynchronous one waits for
        // its unlock (which notifies: this wait counts as a waiter), with no liveness check.
        if (!this.#async) throw m.deadlock()
        sleepUntil = Math.min(sleepUntil, now + MAX_CHECK_MS)
      } else {
        if (now >= this.#nextCheck) {
          if (m.takeOverIfDead(r)) return true
          this.#nextCheck = now + this.#interval
          this.#interval = Math.min(this.#interval * 2, MAX_CHECK_MS)
        }
        sleepUntil = Math.min(sleepUntil, this.#nextCheck)
      }
    } else {
      // Free, but left to a starving waiter: defer to it for a while.
      const h = m.words.load(W_HANDOFF)
      if (h !== this.#deferredTo) {
        this.#deferredTo = h
        this.#deferredSince = now
      } else if (now - this.#deferredSince >= HANDOFF_MAX_MS) {
        m.words.cas(W_HANDOFF, h, 0)
      }
      sleepUntil = Math.min(sleepUntil, now + 1)
    }
    if (now >= this.#deadline) return false
    if (!this.#handoff && now - this.#since >= STARVE_MS) {
      this.#handoff = m.words.cas(W_HANDOFF, 0, me) === 0
    }
    return { word: r, sleepMs: Math.max(0, sleepUntil - now) }
  }

  /** Withdraws the handoff request; a waiter that did not get the lock passes a wake-up it may have taken on. */
  done(): void {
    const m = this.#m
    try {
      if (this.#handoff) m.words.cas(W_HANDOFF, identity().tid, 0)
      if (!m.held() && m.words.load(W_LOCK) === 0) m.wakeOne()
    } catch {
      // Detached or corrupt meanwhile: the error the caller sees is the one that ended the wait.
    }
  }
}

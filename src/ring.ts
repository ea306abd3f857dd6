/**
 * The JavaScript send and receive paths of a `Channel`: one record in or out of the ring per
 * call, with `Atomics` on a zero-copy view of the segment and no native call, except a futex
 * wake when the other side sleeps.
 *
 * Layout version 1 (README "Channel layout", `crates/sysv-shm/src/channel.rs`), little-endian:
 * `closed` (u32 at 20), `head` (u64 at 128), `tail` (u64 at 256), the waiting words of the
 * receiver (u32 at 384) and the sender (u32 at 448), the ring of `C` bytes at 512; a record is a
 * u32 length, a u32 0, the payload, padding to 8. The peer's u64 index is read as two u32 halves
 * with `Atomics`, high, low, high again (a change of the high half in between: the native call
 * reads it whole); this side's own index with plain reads (only this side writes it). An index is
 * written as the low half alone when the high half does not change (a 64-bit reader sees the
 * whole value either way), else as one 64-bit `Atomics.store`. Each `Atomics` operation is
 * sequentially consistent: the store of `head` (or `tail`) publishes the record (or frees its
 * bytes), and the load of the waiting word after it is the fence of the layout's wake protocol.
 *
 * Every word read from the segment is checked as the core checks it: `head` and `tail` multiples
 * of 8, `tail <= head <= tail + C` in wrapping u64 arithmetic, a record's `8 + align8(len)`
 * within `head - tail`; `C` is the handle's, read once at open. Whatever is out of the ordinary (a
 * word that breaks those rules, a closed channel, a message too large for the ring, a target too
 * small) makes the call return {@link NATIVE} before it reads or writes anything with that word:
 * the caller then makes the native call, which looks again and reports what it finds
 * (`ERR_CHANNEL_CORRUPT` naming the word and its values, `ERR_CHANNEL_CLOSED`, …). So the errors
 * have one implementation, and nothing is read or written with a word that failed a check.
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import { bufferOf, bytesOf, countOf, lengthOf } from './validate'

/** `trySend`: sent. */
export const SENT = 1
/** `trySend`: the ring is too full now. */
export const FULL = 0
/** `receive`: nothing there now. */
export const EMPTY = -1
/** Make the native call instead (it decides, and reports any error). */
export const NATIVE = -4

// u32 indices of the header words.
const CLOSED = 20 / 4
const HEAD = 128 / 4
const TAIL = 256 / 4
const RX_WAITING = 384 / 4
const TX_WAITING = 448 / 4
const HEADER = 512
const TWO32 = 2 ** 32
/** Below this high half, `hi * 2^32 + lo` is an exact Number. */
const EXACT_HI = 2 ** 21
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

/** `a - b` of two u64 (as high and low halves), wrapping: exact up to 2^53, else larger than any ring. */
function diff(ah: number, al: number, bh: number, bl: number): number {
  let lo = al - bl
  let hi = ah - bh
  if (lo < 0) {
    lo += TWO32
    hi -= 1
  }
  if (hi < 0) hi += TWO32
  return hi * TWO32 + lo
}

/** The bytes `8 + align8(len)` a record of `len` bytes takes. */
function recordSize(len: number): number {
  return 8 + Math.ceil(len / 8) * 8
}

/** One end's JavaScript view of a channel segment; see the module. */
export class Ring {
  readonly #segment: ArrayBuffer
  readonly #words: Uint32Array
  readonly #words64: BigUint64Array
  readonly #data: Buffer
  readonly #records: Uint32Array
  readonly #cap: number
  readonly #wake: (receiver: boolean) => void
  /** A lower bound of the peer's index, as the core keeps one: the tail (sender), the head (receiver). */
  #tailHi = 0
  #tailLo = 0
  #headHi = 0
  #headLo = 0
  /** The halves of the last u64 `#load` read. */
  #hi = 0
  #lo = 0
  /** The Buffer `receive(null)` made. */
  received: Buffer | null = null

  /**
   * `segment`: the whole segment (header and ring), `capacity`: the ring's `C` as the handle read
   * it at open; `wake(receiver)`: the native futex wake of that side's waiting word. `null` where
   * there can be no JavaScript path (a big-endian machine, a segment shorter than its capacity).
   */
  static over(segment: ArrayBuffer, capacity: number, wake: (receiver: boolean) => void): Ring | null {
    if (!LITTLE_ENDIAN || segment.byteLength !== HEADER + capacity || capacity % 8 !== 0) return null
    return new Ring(segment, capacity, wake)
  }

  private constructor(segment: ArrayBuffer, capacity: number, wake: (receiver: boolean) => void) {
    this.#segment = segment
    this.#words = new Uint32Array(segment, 0, HEADER / 4)
    this.#words64 = new BigUint64Array(segment, 0, HEADER / 8)
    this.#data = Buffer.from(segment, HEADER, capacity)
    this.#records = new Uint32Array(segment, HEADER, capacity / 4)
    this.#cap = capacity
    this.#wake = wake
    // As the core starts: the receiver's head is the tail (empty), the sender's tail is head - C
    // (full); the first call of each side loads the real word.
    const w = this.#words
    this.#headHi = w[TAIL + 1]
    this.#headLo = w[TAIL]
    let lo = w[HEAD] - (capacity % TWO32)
    let hi = w[HEAD + 1] - Math.floor(capacity / TWO32)
    if (lo < 0) {
      lo += TWO32
      hi -= 1
    }
    this.#tailLo = lo
    this.#tailHi = hi < 0 ? hi + TWO32 : hi
  }

  /** Reads the u64 at u32 index `i` into `#hi`/`#lo`; false if its high half changed meanwhile. */
  #load(i: number): boolean {
    const w = this.#words
    const hi = Atomics.load(w, i + 1)
    const lo = Atomics.load(w, i)
    if (Atomics.load(w, i + 1) !== hi) return false
    this.#hi = hi
    this.#lo = lo
    return true
  }

  /**
   * Reads this side's own index (only this side writes it; a peer that does anyway writes a value
   * the checks see): no ordering needed, no `Atomics`.
   */
  #own(i: number): void {
    this.#hi = this.#words[i + 1]
    this.#lo = this.#words[i]
  }

  /** Stores `hi:lo + n` at u32 index `i` (this side's own index, which it just loaded). */
  #advance(i: number, hi: number, lo: number, n: number): void {
    const next = lo + n
    if (next < TWO32) {
      Atomics.store(this.#words, i, next)
    } else {
      const v = ((BigInt(hi) << 32n) + BigInt(lo) + BigInt(n)) & 0xffff_ffff_ffff_ffffn
      Atomics.store(this.#words64, i / 2, v)
    }
  }

  /** `hi:lo % C`. */
  #offset(hi: number, lo: number): number {
    const c = this.#cap
    if (hi === 0) return lo % c
    if (hi < EXACT_HI) return (hi * TWO32 + lo) % c
    return Number(((BigInt(hi) << 32n) | BigInt(lo)) % BigInt(c))
  }

  /** Sets `#hi`/`#lo` to `hi:lo + n`, wrapping. */
  #plus(hi: number, lo: number, n: number): void {
    const sum = lo + n
    this.#lo = sum % TWO32
    this.#hi = (hi + Math.floor(sum / TWO32)) % TWO32
  }

  /**
   * Whether a record of `need` bytes fits at head `hh:hl` (a multiple of 8, checked): against the
   * cached tail, else a fresh, checked one. {@link SENT}, {@link FULL} or {@link NATIVE}.
   */
  #room(hh: number, hl: number, need: number): number {
    const cap = this.#cap
    if (diff(hh, hl, this.#tailHi, this.#tailLo) <= cap - need) return SENT
    if (!this.#load(TAIL) || this.#lo % 8 !== 0) return NATIVE
    const used = diff(hh, hl, this.#hi, this.#lo)
    if (used > cap) return NATIVE
    this.#tailHi = this.#hi
    this.#tailLo = this.#lo
    return used > cap - need ? FULL : SENT
  }

  /**
   * Whether the segment's ArrayBuffer was detached by the user (`ArrayBuffer#transfer()` of a
   * view's `buffer` in a `sendWith`/`recvWith` callback): then every call goes native, which
   * still has the mapping. One built-in getter call.
   */
  #gone(): boolean {
    return lengthOf(this.#data) === 0
  }

  /** Writes the record of `src` at head `hh:hl` (room checked). */
  #put(hh: number, hl: number, src: Uint8Array, len: number): void {
    const cap = this.#cap
    const at = this.#offset(hh, hl)
    this.#records[at / 4] = len
    this.#records[at / 4 + 1] = 0
    const start = at + 8 === cap ? 0 : at + 8
    const first = Math.min(len, cap - start)
    const data = this.#data
    if (first === len) {
      // (0 bytes: nothing to touch; `src` may be a view of a detached ArrayBuffer.)
      if (len > 0) data.set(src, start)
    } else {
      data.set(src.subarray(0, first), start)
      data.set(src.subarray(first), 0)
    }
  }

  /** Copies the `len` bytes of the payload of the record at ring offset `at` to `out[to]`. */
  #take(at: number, len: number, out: Uint8Array, to: number): void {
    const cap = this.#cap
    const start = at + 8 === cap ? 0 : at + 8
    const first = Math.min(len, cap - start)
    // `set` from a fresh view: the fastest copy out for small records (no `subarray`).
    if (first > 0) out.set(new Uint8Array(this.#segment, HEADER + start, first), to)
    if (first < len) out.set(new Uint8Array(this.#segment, HEADER, len - first), to + first)
  }

  /** Whether a message of `len` bytes can go through this path (else the native call reports it). */
  #sendable(len: number): boolean {
    return recordSize(len) <= this.#cap && len <= 0xffff_ffff
  }

  /** Sends `src` as one record if there is room now: {@link SENT}, {@link FULL} or {@link NATIVE}. */
  trySend(src: Uint8Array): number {
    if (this.#gone()) return NATIVE
    // By the built-in getter: the length `set` copies (a subclass's `byteLength` may lie).
    const len = lengthOf(src)
    if (!this.#sendable(len) || Atomics.load(this.#words, CLOSED) !== 0) return NATIVE
    this.#own(HEAD)
    const hh = this.#hi
    const hl = this.#lo
    if (hl % 8 !== 0) return NATIVE
    const need = recordSize(len)
    const room = this.#room(hh, hl, need)
    if (room !== SENT) return room
    this.#put(hh, hl, src, len)
    this.#advance(HEAD, hh, hl, need)
    if (Atomics.load(this.#words, RX_WAITING) !== 0) this.#wake(true)
    return SENT
  }

  /**
   * Sends `items` in order while there is room, publishing them with one store of `head` (and one
   * look at the receiver's waiting word): how many were sent. `stopped` tells whether it stopped at
   * an item the native call must decide (not a view, too large, a word out of the ordinary): the
   * caller sends the rest natively.
   */
  trySendMany(items: readonly unknown[]): number {
    this.stopped = true
    if (this.#gone()) return 0
    if (Atomics.load(this.#words, CLOSED) !== 0) return 0
    this.#own(HEAD)
    const hh = this.#hi
    const hl = this.#lo
    if (hl % 8 !== 0) return 0
    let n = 0
    let total = 0
    for (; n < items.length; n++) {
      const item = items[n]
      if (!ArrayBuffer.isView(item)) break
      const src = bytesOf(item)
      const len = lengthOf(src)
      if (!this.#sendable(len)) break
      this.#plus(hh, hl, total)
      const ch = this.#hi
      const cl = this.#lo
      const room = this.#room(ch, cl, recordSize(len))
      if (room === FULL) this.stopped = false
      if (room !== SENT) break
      this.#put(ch, cl, src, len)
      total += recordSize(len)
    }
    if (n === items.length) this.stopped = false
    if (n > 0) {
      this.#advance(HEAD, hh, hl, total)
      if (Atomics.load(this.#words, RX_WAITING) !== 0) this.#wake(true)
    }
    return n
  }

  /** Whether the last `trySendMany` stopped at an item for the native call. */
  stopped = false

  /**
   * Receives the next record if there is one now: into `dst` (a message longer than it:
   * {@link NATIVE}, which reports it and leaves it), or into a new Buffer, `received`, if `dst` is
   * null. Returns its length, {@link EMPTY} or {@link NATIVE}.
   */
  receive(dst: Uint8Array | null): number {
    if (this.#gone()) return NATIVE
    const cap = this.#cap
    this.#own(TAIL)
    const th = this.#hi
    const tl = this.#lo
    if (tl % 8 !== 0) return NATIVE
    let published = diff(this.#headHi, this.#headLo, th, tl)
    if (published === 0 || published > cap) {
      published = this.#published(th, tl)
      if (published <= 0) return published
    }
    const at = this.#offset(th, tl)
    // Read once: a peer that rewrites it meanwhile changes nothing of what is checked and copied.
    const len = this.#records[at / 4]
    const size = recordSize(len)
    if (size > published) return NATIVE
    let out = dst
    if (out === null) {
      out = Buffer.allocUnsafeSlow(len)
      this.received = out as Buffer
    } else if (len > lengthOf(out)) {
      return NATIVE
    }
    this.#take(at, len, out, 0)
    this.#advance(TAIL, th, tl, size)
    if (Atomics.load(this.#words, TX_WAITING) !== 0) this.#wake(false)
    return len
  }

  /**
   * The bytes published after tail `th:tl`, from a fresh, checked head (cached): {@link EMPTY}
   * for none, {@link NATIVE} for a head out of the ordinary.
   */
  #published(th: number, tl: number): number {
    if (!this.#load(HEAD) || this.#lo % 8 !== 0) return NATIVE
    const published = diff(this.#hi, this.#lo, th, tl)
    if (published > this.#cap) return NATIVE
    this.#headHi = this.#hi
    this.#headLo = this.#lo
    return published === 0 ? EMPTY : published
  }

  /**
   * Receives as many waiting records as fit, packed back to back into `target`, their lengths
   * into `lengths`, consuming them with one store of `tail` (and one look at the sender's waiting
   * word): how many, {@link EMPTY}, or {@link NATIVE} (the first does not fit, or a word out of the
   * ordinary before any record: the native call reports it; after some, they are handed over and
   * the next call finds it).
   */
  receiveMany(target: Uint8Array, lengths: Uint32Array): number {
    if (this.#gone()) return NATIVE
    if (bufferOf(lengths) === bufferOf(target)) return NATIVE
    const room = lengthOf(target)
    const slots = countOf(lengths)
    this.#own(TAIL)
    const th = this.#hi
    const tl = this.#lo
    if (tl % 8 !== 0) return NATIVE
    const published = this.#published(th, tl)
    if (published <= 0) return published
    let n = 0
    let used = 0
    let taken = 0
    while (n < slots && taken < published) {
      this.#plus(th, tl, taken)
      const at = this.#offset(this.#hi, this.#lo)
      const len = this.#records[at / 4]
      const size = recordSize(len)
      if (size > published - taken || len > room - used) break
      this.#take(at, len, target, used)
      lengths[n++] = len
      used += len
      taken += size
    }
    if (n === 0) return NATIVE
    this.#advance(TAIL, th, tl, taken)
    if (Atomics.load(this.#words, TX_WAITING) !== 0) this.#wake(false)
    return n
  }
}

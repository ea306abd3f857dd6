/**
 * `Publisher` and `Subscriber`: one writer, any number of readers, over one segment found by
 * name (README, "Publish/subscribe"; the layout is `crates/sysv-shm/src/pubsub.rs`).
 * @module
 */
/// <reference types="node" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
import { abortError, abortSignal, timeout } from './async'
import { native } from './binding'
import { ShmError } from './errors'
import { SharedMemory } from './shared-memory'
import * as check from './validate'
import { PID_MAX_LIMIT, alive, identity, wordsOf, type Words } from './words'

/** The layout's offsets and limits, from the core crate (one home). */
const L = native.pubsubLayout()
// Word indexes of the header.
const W_MAGIC = 0
const W_VERSION = 1
const W_SLOTS = L.slots / 4
const W_SLOT_SIZE = L.slotSize / 4
const W_MAX_MESSAGE = L.maxMessage / 4
const W_SUBSCRIBERS = L.subscribers / 4
const W_POLICY = L.policy / 4
const W_FLAGS = L.flags / 4
const W_HEAD = L.head / 4
const W_SPACE = L.space / 4
const W_PUB_TID = L.publisherTid / 4
const W_PUB_START = L.publisherStart / 4
const W_NAME_LEN = L.nameLen / 4
/** Bytes of the largest message: its slot size must fit a u32. */
const MAX_MESSAGE = 0xffff_fff0 - L.slotHeader
const SIGN = 2 ** 31
/**
 * The longest sleep of a waiting subscriber before it looks at the closed flag again: a close
 * that lands between its look and its sleep wakes nobody (the closed flag is not the head cell).
 */
const CLOSE_CHECK_MS = 100
/** The longest sleep of a waiting publisher between two liveness checks of the subscribers it waits for. */
const MAX_CHECK_MS = 64
/** How long an open waits for the header of a topic that is being created (all zeros) before it calls it no topic. */
const CREATE_WAIT_MS = 200
/** A private word to sleep 1 ms on with `Atomics.wait`. */
const NAP = new Int32Array(new SharedArrayBuffer(4))
/** How often `latest()` retries while a one-slot topic rewrites its only slot, before it finds no whole message (null). */
const MAX_RETRIES = 10_000

/** How a publisher treats subscribers that fall behind. */
export type PubsubPolicy = 'overwrite' | 'block'

/** Options of {@link Publisher.create}. */
export interface PublisherOptions {
  /** Messages kept: rounded up to a power of two, 1 to 65536. */
  capacity: number
  /** The largest message, in bytes (1 to 4294967280). */
  maxMessage: number
  /** Entries of the subscriber table (registered subscribers at once), 1 to 4096. Default 64. */
  maxSubscribers?: number
  /** `'overwrite'` (default): never wait, a slow subscriber skips; `'block'`: wait for the slowest live subscriber. */
  policy?: PubsubPolicy
  /** Permission bits of the segment. Default `0o600`. */
  mode?: number
  /** As {@link SharedMemory}'s option: `false` runs the protocol through native calls only. */
  zeroCopy?: boolean
}

/** Options of {@link Publisher.publish} and {@link Publisher.loan}. */
export interface PublishOptions {
  /** Block policy: give up after this many milliseconds (`false` is returned). Default: wait forever. */
  timeoutMs?: number
}

/** Options of {@link Publisher.publishAsync}. */
export interface PublishAsyncOptions extends PublishOptions {
  /** Cancels the wait: rejects with Node's `AbortError`; nothing is published. */
  signal?: AbortSignal
}

/** Options of {@link Subscriber.open} and {@link Subscriber.openById}. */
export interface SubscriberOptions {
  /** As {@link SharedMemory}'s option. Default `true`. */
  zeroCopy?: boolean
  /**
   * Take an entry of the subscriber table (default `true`): the publisher then sees this
   * subscriber's cursor (the block policy waits for it) and reclaims the entry if its thread dies.
   * `false`: read without being seen (a block publisher does not wait for it).
   */
  register?: boolean
}

/** Options of {@link Subscriber.receiveAsync}. */
export interface SubscriberReceiveAsyncOptions {
  /** Cancels the wait: rejects with Node's `AbortError`; no message is consumed. */
  signal?: AbortSignal
  /** Resolves `null` after this many milliseconds without a message. Default: wait forever. */
  timeoutMs?: number
}

const CREATE_KEYS = ['capacity', 'maxMessage', 'maxSubscribers', 'policy', 'mode', 'zeroCopy'] as const
const OPEN_KEYS = ['zeroCopy', 'register'] as const

/**
 * The key of a topic name: FNV-1a 32-bit of `"sysv-shm/topic:" + name` (UTF-8), as a signed
 * `key_t`; never `0` (`IPC_PRIVATE`) or `-1` (those become `1`). Every language computes the
 * same key from the same name (`ipcs -m` shows it).
 *
 * @throws {TypeError} unless `name` is a string. @throws {RangeError} unless it is 1 to 128
 * UTF-8 bytes without NUL.
 */
export function topicKey(name: string): number {
  nameBytes(name)
  return native.topicKey(name)
}

/** The UTF-8 bytes of a topic name, checked. */
function nameBytes(name: unknown): Buffer {
  if (typeof name !== 'string') {
    throw Object.assign(new TypeError(`The "name" argument must be of type string. Received ${typeof name}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    })
  }
  const bytes = Buffer.from(name, 'utf8')
  if (bytes.length < 1 || bytes.length > L.maxName) {
    throw check.rangeError(`A topic name must be 1 to ${L.maxName} UTF-8 bytes. Received ${bytes.length} bytes`)
  }
  if (bytes.includes(0)) throw check.rangeError('A topic name must not contain NUL characters')
  return bytes
}

/** A topic argument: a name (its key) or a numeric key. */
function topicOf(topic: unknown, opening: boolean): { key: number; name: Buffer | null } {
  if (typeof topic === 'string') {
    const name = nameBytes(topic)
    return { key: native.topicKey(topic), name }
  }
  if (typeof topic === 'number') {
    const key = check.key(topic, 'topic')
    if (opening && key === 0) throw check.rangeError('IPC_PRIVATE (0) names no segment: open the topic with openById(id)')
    return { key, name: null }
  }
  throw Object.assign(new TypeError(`The "topic" argument must be a string (a name) or a number (a key). Received ${typeof topic}`), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
}

function hex(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`
}

function slotSizeFor(maxMessage: number): number {
  return L.slotHeader + Math.ceil(maxMessage / 8) * 8
}

function segmentSizeFor(slots: number, slotSize: number, subscribers: number): number {
  return L.headerSize + L.entrySize * subscribers + slots * slotSize
}

/**
 * One attachment of a topic segment with its geometry, read once and checked: the words and
 * checks that the publisher and the subscribers share.
 */
class Topic {
  readonly shm: SharedMemory
  readonly w: Words
  /** The zero-copy view of the segment, or null (copy path). */
  readonly buf: Buffer | null
  readonly slots: number
  readonly slotSize: number
  readonly maxMessage: number
  readonly subscribers: number
  readonly block: boolean
  /** The stored name; null for a topic made by numeric key or IPC_PRIVATE. */
  readonly name: string | null
  /** Where the slots start. */
  readonly slotsAt: number

  /**
   * Reads and checks the header of `shm`: no topic there (magic, version, too small) or another
   * name than `name` is `ERR_PUBSUB_NAME`; a geometry out of the rules, or larger than the
   * segment, is `ERR_PUBSUB_CORRUPT`.
   */
  constructor(shm: SharedMemory, name: Buffer | null) {
    this.shm = shm
    const what = name === null ? `segment ${shm.id}` : `segment ${shm.id} at the key of topic ${JSON.stringify(name.toString())}`
    if (shm.size < L.headerSize) {
      throw new ShmError(`${what} holds no topic: it is ${shm.size} bytes, less than a topic header`, 'ERR_PUBSUB_NAME')
    }
    const { words, view } = wordsOf(shm, 0, Math.floor(shm.size / 4))
    this.w = words
    this.buf = view === null ? null : shm.buffer
    let magic = words.load(W_MAGIC)
    // A new segment is zeros until its creator has written the header (the magic last): a topic
    // being created, not a foreign segment. Wait for it a little (its creator takes microseconds).
    for (let ms = 0; magic === 0 && words.load(W_VERSION) === 0 && ms < CREATE_WAIT_MS; ms++) {
      Atomics.wait(NAP, 0, 0, 1)
      magic = words.load(W_MAGIC)
    }
    const version = words.load(W_VERSION)
    if (magic !== L.magic || version !== L.version) {
      throw new ShmError(
        magic === 0 && version === 0
          ? `${what} holds no topic: its header is still zeros after ${CREATE_WAIT_MS} ms (a creator that did not finish, or a segment of another program)`
          : `${what} holds no topic (magic ${hex(magic)}, version ${version}; a topic has magic ${hex(L.magic)}, version ${L.version})`,
        'ERR_PUBSUB_NAME',
      )
    }
    const nameLen = words.load(W_NAME_LEN)
    if (nameLen > L.maxName) throw this.corrupt(`the name length ${nameLen} is above ${L.maxName}`)
    const stored = shm.read(L.name, nameLen)
    if (name !== null && !stored.equals(name)) {
      throw new ShmError(
        `${what} holds ${nameLen === 0 ? 'a topic without a name (made by numeric key)' : `the topic ${JSON.stringify(stored.toString())}`}: ` +
          'two names with one key; use another name (the segment was not changed)',
        'ERR_PUBSUB_NAME',
      )
    }
    this.name = nameLen === 0 ? null : stored.toString()
    const slots = words.load(W_SLOTS)
    const slotSize = words.load(W_SLOT_SIZE)
    const maxMessage = words.load(W_MAX_MESSAGE)
    const subscribers = words.load(W_SUBSCRIBERS)
    const policy = words.load(W_POLICY)
    if (slots < 1 || slots > L.maxSlots || (slots & (slots - 1)) !== 0) throw this.corrupt(`slots ${slots} is no power of two up to ${L.maxSlots}`)
    if (maxMessage < 1 || maxMessage > MAX_MESSAGE || slotSize !== slotSizeFor(maxMessage)) {
      throw this.corrupt(`slotSize ${slotSize} and maxMessage ${maxMessage} break the rule slotSize = 8 + maxMessage rounded up to 8`)
    }
    if (subscribers < 1 || subscribers > L.maxSubscribers) throw this.corrupt(`subscribers ${subscribers} is not 1 to ${L.maxSubscribers}`)
    if (policy !== L.policyOverwrite && policy !== L.policyBlock) throw this.corrupt(`policy ${policy} is neither 0 nor 1`)
    const need = segmentSizeFor(slots, slotSize, subscribers)
    if (need > shm.size) throw this.corrupt(`its geometry needs ${need} bytes, the segment has ${shm.size}`)
    this.slots = slots
    this.slotSize = slotSize
    this.maxMessage = maxMessage
    this.subscribers = subscribers
    this.block = policy === L.policyBlock
    this.slotsAt = L.headerSize + L.entrySize * subscribers
  }

  get policy(): PubsubPolicy {
    return this.block ? 'block' : 'overwrite'
  }

  /** The head word: the sequence of the next message. */
  head(): number {
    return this.w.load(W_HEAD)
  }

  /** Whether the closed flag is set; a flags word with another bit is corrupt. */
  closed(): boolean {
    const f = this.w.load(W_FLAGS)
    if ((f & ~L.flagClosed) !== 0) throw this.corrupt(`the flags word ${hex(f)} has bits other than closed (1)`)
    return f === L.flagClosed
  }

  /** The word index of slot `seq`'s stamp (its length is the next word). */
  slotWord(seq: number): number {
    return (this.slotsAt + (seq & (this.slots - 1)) * this.slotSize) / 4
  }

  /** The word index of entry `i`'s owner TID (start time, cursor follow). */
  entryWord(i: number): number {
    return (L.headerSize + L.entrySize * i) / 4
  }

  /** The owner TID of entry `i` (0: free), checked. */
  owner(i: number): { tid: number; start: number } {
    const e = this.entryWord(i)
    // The start time first: it is zeroed before an entry is freed, and written after a claim.
    const start = this.w.load(e + 1)
    const tid = this.w.load(e)
    if (tid > PID_MAX_LIMIT) throw this.corrupt(`subscriber entry ${i} has owner TID ${tid}, above ${PID_MAX_LIMIT}`)
    return { tid, start }
  }

  /**
   * Frees entry `i` if its owner (`tid`, `start` as read by {@link owner}) is dead: start time to
   * 0 first, then the TID, each by compare-exchange from what was read (one reclaimer of many,
   * and none if the entry changed hands meanwhile). Returns whether it freed it.
   */
  reclaimIfDead(i: number, tid: number, start: number): boolean {
    if (tid === 0 || alive(tid, start)) return false
    const e = this.entryWord(i)
    if (this.w.cas(e + 1, start, 0) !== start) return false
    if (this.w.cas(e, tid, 0) === tid) return true
    // The entry changed hands between the two reads (a new owner whose start time equals the
    // dead one's, in clock ticks): give it its start time back.
    this.w.cas(e + 1, 0, start)
    return false
  }

  /**
   * Gives up the owner pair at word `tidWord` (the TID; the start time is the next word: the
   * publisher's pair and every subscriber entry) if this thread holds it: the start time to 0
   * first, then the TID (the layout's "leave" order). Returns whether it held it.
   */
  leave(tidWord: number): boolean {
    const me = identity().tid
    if (this.w.load(tidWord) !== me) return false
    this.w.store(tidWord + 1, 0)
    this.w.cas(tidWord, me, 0)
    return true
  }

  /** Copies `len` bytes of the data of the slot whose stamp is word `sw` into `out`. */
  copyOut(sw: number, out: Uint8Array, len: number): void {
    const at = sw * 4 + L.slotHeader
    if (len === 0) return
    if (this.buf !== null) this.buf.copy(out, 0, at, at + len)
    else this.shm.readInto(out.subarray(0, len), at)
  }

  /**
   * After a copy out of the slot whose stamp is word `sw`: whether it still holds message `seq`
   * of `len` bytes, so that the copy is whole. The fence first: the copy's loads are done before
   * the length and stamp are read again (on arm64 an acquire load does not order earlier loads).
   */
  recheck(sw: number, seq: number, len: number): boolean {
    this.w.fence()
    // The length before the stamp: the writer stores the stamp before the length, so a length
    // that is its final store implies its stamp is seen (the other order misses an overwrite by
    // a message of the same length that lands between the two loads).
    return this.w.load(sw + 1) === len && this.w.load(sw) === seq
  }

  corrupt(detail: string): ShmError {
    return new ShmError(`topic ${this.where()} is corrupt: ${detail}`, 'ERR_PUBSUB_CORRUPT')
  }

  where(): string {
    return `${this.name === null ? '' : `${JSON.stringify(this.name)} `}(segment ${this.shm.id})`
  }
}

/** What a publisher waiting for room does next: publish, give up, or sleep on the space cell. */
type Room = true | false | { value: number; sleepMs: number }

/**
 * The one publisher of a topic: writes messages into a ring of `capacity` slots that any number
 * of {@link Subscriber}s read, each at its own cursor, in this and other processes (and C or
 * Python programs following the layout in the README).
 *
 * - Found by name: `Publisher.create('camera/frames', …)` makes the segment at
 *   {@link topicKey}`(name)` and stores the name in its header, so a segment of another name at
 *   that key is `ERR_PUBSUB_NAME`, never used. A numeric key (or `IPC_PRIVATE`, 0) works too.
 * - Policies: `'overwrite'` never waits (a subscriber that fell behind skips, and is told how
 *   many in `lagged`); `'block'` waits until every live registered subscriber has room, with
 *   `timeoutMs` and `signal`; a registered subscriber whose thread died is found (TID and start
 *   time, as the Mutex finds a dead holder) and its entry reclaimed.
 * - A publish writes the slot, then the head, and wakes sleeping subscribers with one
 *   `FUTEX_WAKE`, only when one sleeps. No system call otherwise.
 * - One live publisher per topic: `create` of a topic whose publisher is alive is `EBUSY`; of one
 *   whose publisher died, it takes it over (same geometry) and subscribers go on receiving.
 *
 * Every word read from the segment is checked before use: a head, cursor, TID or flag out of the
 * layout's rules throws `ERR_PUBSUB_CORRUPT`, naming the word and its value.
 */
export class Publisher implements Disposable {
  /** The shmid of the topic's segment. */
  readonly id: number
  /** The segment's key (unsigned); 0 for `IPC_PRIVATE`. */
  readonly key: number
  /** The topic's name; null for a topic made by numeric key or `IPC_PRIVATE`. */
  readonly name: string | null
  /** Slots (messages kept): a power of two. */
  readonly capacity: number
  /** The largest message, in bytes. */
  readonly maxMessage: number
  /** The policy stored in the topic. */
  readonly policy: PubsubPolicy
  #t: Topic | null
  #seq: number
  /** The lowest cursor of a counted subscriber at the last scan: below `capacity` behind, no scan is needed. */
  #low: number
  /** Inside the fill of a loan (a publish there would write the same slot). */
  #writing = false

  private constructor(t: Topic) {
    this.#t = t
    this.id = t.shm.id
    this.key = t.shm.key
    this.name = t.name
    this.capacity = t.slots
    this.maxMessage = t.maxMessage
    this.policy = t.policy
    this.#seq = t.head()
    this.#low = (this.#seq - t.slots) >>> 0
  }

  /**
   * Creates the topic `topic` (a name, or a numeric key: `IPC_PRIVATE` (0) makes a new one each
   * time) and returns its publisher. An existing topic of that name (or key) whose publisher died
   * is taken over: same geometry, else `EEXIST`; publishing goes on from its head.
   *
   * @throws {TypeError|RangeError} for bad arguments, before any system call.
   * @throws {ShmError} `EBUSY` (a live publisher holds the topic), `EEXIST` (the topic exists with
   * another geometry), `ERR_PUBSUB_NAME` (the segment at the key holds another name or no topic:
   * it is left as it is), `ERR_PUBSUB_CORRUPT`, and the errors of `shmget`/`shmat`.
   */
  static create(topic: string | number, options: PublisherOptions): Publisher {
    const { key, name } = topicOf(topic, false)
    const o = check.options<PublisherOptions>(options, CREATE_KEYS, 'options', true)
    const capacity = check.integer('capacity', o.capacity, 1, L.maxSlots)
    const slots = 2 ** Math.ceil(Math.log2(capacity))
    const maxMessage = check.integer('maxMessage', o.maxMessage, 1, MAX_MESSAGE)
    const subscribers = o.maxSubscribers === undefined ? 64 : check.integer('maxSubscribers', o.maxSubscribers, 1, L.maxSubscribers)
    const policy: unknown = o.policy ?? 'overwrite'
    if (policy !== 'overwrite' && policy !== 'block') {
      throw check.rangeError(`The "policy" option must be 'overwrite' or 'block'. Received ${String(policy)}`)
    }
    const mode = o.mode === undefined ? 0o600 : check.mode(o.mode)
    const zeroCopy = check.boolean('zeroCopy', o.zeroCopy) ?? true
    const slotSize = slotSizeFor(maxMessage)
    const size = segmentSizeFor(slots, slotSize, subscribers)
    const geometry = { slots, slotSize, maxMessage, subscribers, policy: policy === 'block' ? L.policyBlock : L.policyOverwrite }
    for (let attempt = 0; ; attempt++) {
      let shm: SharedMemory
      try {
        shm = SharedMemory.create(key, size, { mode, exclusive: true, zeroCopy })
      } catch (e) {
        if ((e as ShmError).code !== 'EEXIST' || key === 0) throw e
        try {
          shm = SharedMemory.open(key, { zeroCopy })
        } catch (e2) {
          // Removed between the two calls (its publisher closed): create it anew.
          if ((e2 as ShmError).code === 'ENOENT' && attempt < 3) continue
          throw e2
        }
        return owned(shm, () => Publisher.#takeOver(shm, name, geometry))
      }
      return owned(shm, () => Publisher.#init(shm, name, geometry), true)
    }
  }

  /** Writes the header of a new segment; the magic last, so that no opener sees half a header. */
  static #init(shm: SharedMemory, name: Buffer | null, g: Geometry): Publisher {
    const { words: w } = wordsOf(shm, 0, Math.floor(shm.size / 4))
    w.store(W_SLOTS, g.slots)
    w.store(W_SLOT_SIZE, g.slotSize)
    w.store(W_MAX_MESSAGE, g.maxMessage)
    w.store(W_SUBSCRIBERS, g.subscribers)
    w.store(W_POLICY, g.policy)
    if (name !== null) {
      shm.write(name, L.name)
      w.store(W_NAME_LEN, name.length)
    }
    const slotsAt = L.headerSize + L.entrySize * g.subscribers
    for (let i = 0; i < g.slots; i++) w.store((slotsAt + i * g.slotSize) / 4 + 1, L.writing)
    const me = identity()
    w.store(W_PUB_START, me.start)
    w.store(W_PUB_TID, me.tid)
    w.store(W_VERSION, L.version)
    w.store(W_MAGIC, L.magic)
    return new Publisher(new Topic(shm, name))
  }

  /** Takes over an existing topic whose publisher is dead (or gone: TID 0). */
  static #takeOver(shm: SharedMemory, name: Buffer | null, g: Geometry): Publisher {
    const t = new Topic(shm, name)
    const w = t.w
    const found = { slots: t.slots, slotSize: t.slotSize, maxMessage: t.maxMessage, subscribers: t.subscribers, policy: t.block ? L.policyBlock : L.policyOverwrite }
    if (Object.entries(g).some(([k, v]) => found[k as keyof Geometry] !== v)) {
      throw new ShmError(
        `topic ${t.where()} exists with another geometry (${JSON.stringify({ ...found, policy: t.policy })}); ` +
          'create it with the same capacity, maxMessage, maxSubscribers and policy, or remove it',
        'EEXIST',
      )
    }
    const me = identity()
    for (;;) {
      // The start time first: a claimer zeroes it before it takes the TID word, and writes it after.
      const start = w.load(W_PUB_START)
      const tid = w.load(W_PUB_TID)
      if (tid > PID_MAX_LIMIT) throw t.corrupt(`the publisher TID ${tid} is above ${PID_MAX_LIMIT}`)
      if (tid !== 0 && (tid === me.tid || alive(tid, start))) {
        throw new ShmError(`topic ${t.where()} has a live publisher (thread ${tid})`, 'EBUSY')
      }
      if (w.cas(W_PUB_START, start, 0) !== start) continue
      if (w.cas(W_PUB_TID, tid, me.tid) !== tid) continue
      w.store(W_PUB_START, me.start)
      break
    }
    for (let f = w.load(W_FLAGS); (f & L.flagClosed) !== 0; ) {
      const found = w.cas(W_FLAGS, f, f & ~L.flagClosed)
      if (found === f) break
      f = found
    }
    return new Publisher(t)
  }

  /** The sequence the next message gets: messages published so far, mod 2³². */
  get sequence(): number {
    return this.#seq
  }

  /** Whether {@link Publisher.close} was called. */
  get closed(): boolean {
    return this.#t === null
  }

  /**
   * Registered subscribers whose thread is alive and whose `open` has written its entry (the
   * ones a block publisher waits for); the entries of dead ones are reclaimed on the way (one
   * `/proc` read per entry in use).
   */
  get subscriberCount(): number {
    const t = this.#live()
    let n = 0
    for (let i = 0; i < t.subscribers; i++) {
      const { tid, start } = t.owner(i)
      // Joining (start time not written yet): not counted, as the block policy does not count it.
      if (tid !== 0 && !t.reclaimIfDead(i, tid, start) && start !== 0) n++
    }
    return n
  }

  /**
   * Publishes a message (a string as UTF-8). Under the block policy it first waits until every
   * live registered subscriber has room (blocking the thread); `false` if `timeoutMs` passed first.
   *
   * @throws {RangeError} if the message is longer than {@link Publisher.maxMessage}.
   * @throws {ShmError} `ERR_PUBSUB_CLOSED` after {@link Publisher.close}, `ERR_PUBSUB_CORRUPT`.
   */
  publish(data: string | ArrayBufferView | ArrayBufferLike, options?: PublishOptions): boolean {
    const src = check.bytesOf(check.bytes('data', data))
    const ms = timeout(check.options<PublishOptions>(options, ['timeoutMs']).timeoutMs)
    const t = this.#live()
    const n = this.#length(check.lengthOf(src))
    if (t.block && !this.#roomSync(t, ms)) return false
    this.#write(t, n, (at) => void t.shm.write(src, at))
    return true
  }

  /**
   * {@link Publisher.publish} that waits without blocking the event loop (block policy): resolves
   * `true` once published, `false` after `timeoutMs`; an aborted `signal` rejects with Node's
   * `AbortError` and publishes nothing. Every error is a rejection.
   */
  async publishAsync(data: string | ArrayBufferView | ArrayBufferLike, options?: PublishAsyncOptions): Promise<boolean> {
    const src = check.bytesOf(check.bytes('data', data))
    const o = check.options<PublishAsyncOptions>(options, ['timeoutMs', 'signal'])
    const ms = timeout(o.timeoutMs)
    const signal = abortSignal(o.signal)
    const n = this.#length(check.lengthOf(src))
    return this.#whenRoom(ms, signal, (t) => this.#write(t, n, (at) => void t.shm.write(src, at)))
  }

  /**
   * Publishes a message of `length` bytes that `fill` writes in place: on the zero-copy view
   * `fill` gets a Buffer over the slot itself (it holds older bytes: write all of them, and do
   * not keep it after `fill` returns); without one it gets a zeroed Buffer that is then copied
   * in. Waits as {@link Publisher.publish} does; `false` on timeout (then `fill` is not called).
   * If `fill` throws, nothing is published and the error propagates. A publish or loan of this
   * publisher inside `fill` throws an `Error` with code `ERR_INVALID_STATE`.
   */
  loan(length: number, fill: (buf: Buffer) => void, options?: PublishOptions): boolean {
    const n = this.#length(check.integer('length', length, 0, Number.MAX_SAFE_INTEGER))
    if (typeof fill !== 'function') {
      throw Object.assign(new TypeError('The "fill" argument must be a function'), { code: 'ERR_INVALID_ARG_TYPE' })
    }
    const ms = timeout(check.options<PublishOptions>(options, ['timeoutMs']).timeoutMs)
    const t = this.#live()
    if (t.block && !this.#roomSync(t, ms)) return false
    this.#write(t, n, (at) => {
      if (t.buf !== null) return fill(t.buf.subarray(at, at + n))
      const b = Buffer.alloc(n)
      fill(b)
      t.shm.write(b, at)
    })
    return true
  }

  /**
   * Closes the topic: sets its closed flag (subscribers receive what is left, then
   * `ERR_PUBSUB_CLOSED`, and `for await` ends), wakes sleeping subscribers, removes the segment
   * (`IPC_RMID`: the kernel frees it when the last subscriber detaches; the name is free for a
   * new topic at once) and detaches. Idempotent.
   */
  close(): void {
    const t = this.#t
    if (t === null) return
    if (this.#writing) {
      throw Object.assign(new Error('close() inside the fill callback of a loan() of the same publisher'), { code: 'ERR_INVALID_STATE' })
    }
    this.#t = null
    try {
      const w = t.w
      for (let f = w.load(W_FLAGS); ; ) {
        const found = w.cas(W_FLAGS, f, (f | L.flagClosed) >>> 0)
        if (found === f) break
        f = found
      }
      t.shm.notify(L.head, Infinity)
      t.leave(W_PUB_TID)
      t.shm.remove()
    } finally {
      t.shm.detach()
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }

  #live(): Topic {
    const t = this.#t
    if (t === null) throw new ShmError(`the publisher of segment ${this.id} was closed`, 'ERR_PUBSUB_CLOSED')
    return t
  }

  #length(n: number): number {
    if (n > this.maxMessage) {
      throw check.rangeError(`A message of ${n} bytes is longer than the topic's maxMessage (${this.maxMessage})`)
    }
    return n
  }

  /** Writes message #seq: length WRITING, data, stamp, length; then the head, and wakes sleepers. */
  #write(t: Topic, n: number, fill: (at: number) => void): void {
    if (this.#writing) {
      throw Object.assign(new Error('publish or loan inside the fill callback of a loan() of the same publisher'), { code: 'ERR_INVALID_STATE' })
    }
    const s = this.#seq
    const h = t.head()
    if (h !== s) throw t.corrupt(`the head word is ${h}, not the publisher's sequence ${s}: another process wrote it`)
    const sw = t.slotWord(s)
    t.w.store(sw + 1, L.writing)
    // The mark is visible before any byte of the data (Words.fence: a store-store order).
    t.w.fence()
    this.#writing = true
    try {
      fill(sw * 4 + L.slotHeader)
    } finally {
      this.#writing = false
    }
    t.w.store(sw, s)
    t.w.store(sw + 1, n)
    this.#seq = (s + 1) >>> 0
    t.w.store(W_HEAD, this.#seq)
    // No system call when the head cell's waiter count is 0.
    t.shm.notify(L.head, Infinity)
  }

  #roomSync(t: Topic, ms: number | undefined): boolean {
    const wait = new RoomWait(ms)
    for (;;) {
      const r = this.#room(t, wait)
      if (typeof r === 'boolean') return r
      t.shm.wait(L.space, r.value | 0, r.sleepMs)
    }
  }

  /**
   * Waits (block policy) for room without blocking the event loop, then runs `write` in the same
   * synchronous step as the last room check: another publish that ran while this one awaited
   * cannot take the room it found. A close meanwhile is `ERR_PUBSUB_CLOSED`.
   */
  async #whenRoom(ms: number | undefined, signal: AbortSignal | undefined, write: (t: Topic) => void): Promise<boolean> {
    const wait = new RoomWait(ms)
    for (;;) {
      // Aborted before the call or while it waited: nothing is published.
      if (signal?.aborted) throw abortError(signal)
      const t = this.#live()
      const r = t.block ? this.#room(t, wait) : true
      if (r === true) {
        write(t)
        return true
      }
      if (r === false) return false
      try {
        await t.shm.waitAsync(L.space, r.value | 0, r.sleepMs, { signal })
      } catch (e) {
        this.#live()
        throw e
      }
    }
  }

  /**
   * Block policy: whether message #seq can be written now (every counted subscriber is less than
   * `capacity` behind), else what to sleep on. The space value is read before the cursors, so a
   * subscriber that advances after the scan changes it and the sleep ends at once. Subscribers
   * that hold the publisher back are checked for liveness (at once, then 2 ms later, doubling to
   * 64 ms) and reclaimed if dead.
   */
  #room(t: Topic, wait: RoomWait): Room {
    const s = this.#seq
    const n = t.slots
    if ((s - this.#low) >>> 0 < n) return true
    for (;;) {
      const value = t.w.load(W_SPACE)
      let far = 0
      const behind: { i: number; tid: number; start: number }[] = []
      for (let i = 0; i < t.subscribers; i++) {
        const { tid, start } = t.owner(i)
        // Free, or joining (its cursor is written before its start time): not counted yet.
        if (tid === 0 || start === 0) continue
        const c = t.w.load(t.entryWord(i) + 2)
        const d = (s - c) >>> 0
        if (d >= SIGN) throw t.corrupt(`subscriber entry ${i} has cursor ${c}, ahead of the head ${s}`)
        if (d > far) far = d
        if (d >= n) behind.push({ i, tid, start })
      }
      this.#low = (s - far) >>> 0
      if (behind.length === 0) return true
      const now = performance.now()
      if (now >= wait.nextCheck) {
        let freed = false
        for (const b of behind) freed = t.reclaimIfDead(b.i, b.tid, b.start) || freed
        wait.checked(now)
        if (freed) continue
      }
      if (now >= wait.deadline) return false
      return { value, sleepMs: Math.max(0, Math.min(wait.deadline, wait.nextCheck) - now) }
    }
  }
}

interface Geometry {
  slots: number
  slotSize: number
  maxMessage: number
  subscribers: number
  policy: number
}

/** The deadline and liveness-check schedule of one wait for room. */
class RoomWait {
  readonly deadline: number
  nextCheck = performance.now()
  #interval = 2

  constructor(timeoutMs: number | undefined) {
    this.deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs
  }

  checked(now: number): void {
    this.nextCheck = now + this.#interval
    this.#interval = Math.min(this.#interval * 2, MAX_CHECK_MS)
  }
}

/** Runs `make` on a fresh attachment; on an error, detaches it (and removes it if this call made it). */
function owned<T>(shm: SharedMemory, make: () => T, made = false): T {
  try {
    return make()
  } catch (e) {
    try {
      if (made) shm.remove()
    } finally {
      shm.detach()
    }
    throw e
  }
}

/** `#step`'s answer when there is nothing new: the head value to sleep on is in `#waitOn`. */
const EMPTY = Symbol('empty')

/**
 * A reader of a topic: receives every message the {@link Publisher} publishes after `open`, in
 * order, at its own cursor (block policy, registered: none is lost while it lives; overwrite
 * policy: a subscriber that fell more than `capacity` behind skips to the oldest message kept,
 * and {@link Subscriber.lagged} says how many it skipped).
 *
 * - `receive(timeoutMs)` blocks the thread; `receiveAsync({ signal, timeoutMs })` and
 *   `for await (const msg of sub)` wait off the event loop; `tryReceive()` never waits;
 *   `receiveInto(target)` copies into your buffer; `latest()` reads the newest message without
 *   moving the cursor (the "current state").
 * - A message is copied out and then checked: one that the publisher overwrote during the copy is
 *   never returned (it counts as skipped).
 * - After the publisher closed and everything was read: `ERR_PUBSUB_CLOSED` (sync), a rejection
 *   (async), the end of `for await`.
 */
export class Subscriber implements Disposable, AsyncIterable<Buffer> {
  /** The shmid of the topic's segment. */
  readonly id: number
  /** The segment's key (unsigned) when it was opened; 0 for `IPC_PRIVATE` (and once removed). */
  readonly key: number
  /** The topic's name; null for a topic made by numeric key or `IPC_PRIVATE`. */
  readonly name: string | null
  /** Slots (messages kept). */
  readonly capacity: number
  /** The largest message, in bytes. */
  readonly maxMessage: number
  /** The topic's policy. */
  readonly policy: PubsubPolicy
  #t: Topic | null
  #cursor: number
  /** The word index of this subscriber's entry, or -1 (not registered). */
  #entry = -1
  #pendingLag = 0
  #lagged = 0
  #missed = 0
  #sequence: number | null = null
  #waitOn = 0

  private constructor(shm: SharedMemory, name: Buffer | null, register: boolean) {
    const t = new Topic(shm, name)
    this.#t = t
    this.id = shm.id
    this.key = shm.key
    this.name = t.name
    this.capacity = t.slots
    this.maxMessage = t.maxMessage
    this.policy = t.policy
    this.#cursor = register ? this.#register(t) : t.head()
  }

  /**
   * Opens the topic `topic` (a name, or a numeric key) and, unless `register: false`, takes an
   * entry of its subscriber table. Receives the messages published from now on.
   *
   * @throws {TypeError|RangeError} for bad arguments, before any system call.
   * @throws {ShmError} `ENOENT` (no such topic), `ERR_PUBSUB_NAME` (the segment at the key holds
   * another name or no topic), `EAGAIN` (no free entry, none of a dead subscriber either),
   * `ERR_PUBSUB_CORRUPT`, and the errors of `shmget`/`shmat`.
   */
  static open(topic: string | number, options?: SubscriberOptions): Subscriber {
    const { key, name } = topicOf(topic, true)
    const o = Subscriber.#options(options)
    const shm = SharedMemory.open(key, { zeroCopy: o.zeroCopy })
    return owned(shm, () => new Subscriber(shm, name, o.register))
  }

  /** Opens the topic in the segment with this shmid (also `IPC_PRIVATE` topics and removed ones). */
  static openById(id: number, options?: SubscriberOptions): Subscriber {
    const shmid = check.id(id)
    const o = Subscriber.#options(options)
    const shm = SharedMemory.openById(shmid, { zeroCopy: o.zeroCopy })
    return owned(shm, () => new Subscriber(shm, null, o.register))
  }

  static #options(options: unknown): { zeroCopy: boolean; register: boolean } {
    const o = check.options<SubscriberOptions>(options, OPEN_KEYS)
    return { zeroCopy: check.boolean('zeroCopy', o.zeroCopy) ?? true, register: check.boolean('register', o.register) ?? true }
  }

  /** Claims a free entry (or one of a dead subscriber); its cursor, then its start time, are written after the claim. */
  #register(t: Topic): number {
    const me = identity()
    for (const reclaim of [false, true]) {
      for (let i = 0; i < t.subscribers; i++) {
        const { tid, start } = t.owner(i)
        if (tid !== 0 && !(reclaim && t.reclaimIfDead(i, tid, start))) continue
        const e = t.entryWord(i)
        if (t.w.cas(e, 0, me.tid) !== 0) continue
        const first = t.head()
        t.w.store(e + 2, first)
        t.w.store(e + 1, me.start)
        // Counted from the start time on. Messages published before that were not waited for:
        // if `capacity` or more came since the cursor was written, some may be overwritten, so
        // start at the head as it is now (nothing counts as lagged) and tell a waiting publisher
        // the cursor moved. Otherwise keep the first cursor: none of them can be overwritten
        // now, and a publisher that waited for subscriberCount loses nothing.
        const h = t.head()
        let c = first
        if ((h - first) >>> 0 >= t.slots) {
          c = h
          t.w.store(e + 2, c)
          if (t.block) this.#advanced(t)
        }
        this.#entry = e
        return c
      }
    }
    throw new ShmError(`topic ${t.where()} has no free subscriber entry (all ${t.subscribers} are taken by live subscribers)`, 'EAGAIN')
  }

  /** Messages skipped right before the last message returned (0 unless it fell behind under the overwrite policy). */
  get lagged(): number {
    return this.#lagged
  }

  /** Messages skipped since open. */
  get missed(): number {
    return this.#missed
  }

  /** The sequence of the last message returned; null before the first. */
  get sequence(): number | null {
    return this.#sequence
  }

  /** Whether this subscriber holds an entry of the subscriber table. */
  get registered(): boolean {
    return this.#entry >= 0
  }

  /**
   * The next message, waiting for one (blocking the thread); null after `timeoutMs`.
   * @throws {ShmError} `ERR_PUBSUB_CLOSED` (the publisher closed and all was read, or this subscriber was closed), `ERR_PUBSUB_CORRUPT`.
   */
  receive(timeoutMs?: number): Buffer | null {
    const r = this.#receive(null, timeoutMs)
    return r as Buffer | null
  }

  /**
   * Copies the next message into `target` and returns its length; null after `timeoutMs`.
   * @throws {RangeError} if `target` is shorter than the message (which is not consumed).
   */
  receiveInto(target: ArrayBufferView, timeoutMs?: number): number | null {
    const bytes = check.bytesOf(check.view('target', target))
    return this.#receive(bytes, timeoutMs) as number | null
  }

  /** The next message if there is one now, else null. Never waits. */
  tryReceive(): Buffer | null {
    const r = this.#step(null)
    return r === EMPTY ? null : (r as Buffer)
  }

  /**
   * {@link Subscriber.receive} without blocking the event loop: resolves the next message, or
   * null after `timeoutMs`. An aborted `signal` rejects with Node's `AbortError` (no message is
   * consumed). Every error is a rejection.
   */
  async receiveAsync(options?: SubscriberReceiveAsyncOptions): Promise<Buffer | null> {
    const o = check.options<SubscriberReceiveAsyncOptions>(options, ['signal', 'timeoutMs'])
    const ms = timeout(o.timeoutMs)
    const signal = abortSignal(o.signal)
    const deadline = ms === undefined ? Infinity : performance.now() + ms
    for (;;) {
      if (signal?.aborted) throw abortError(signal)
      const r = this.#step(null)
      if (r !== EMPTY) return r as Buffer
      const left = deadline - performance.now()
      if (left <= 0) return null
      await this.#live().shm.waitAsync(L.head, this.#waitOn | 0, Math.min(left, CLOSE_CHECK_MS), { signal })
    }
  }

  /** The messages as they come; ends when the publisher closed and all was read, or this subscriber is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      let m: Buffer | null
      try {
        m = await this.receiveAsync()
      } catch (e) {
        if (this.#t === null || (e as ShmError).code === 'ERR_PUBSUB_CLOSED') return
        throw e
      }
      if (m !== null) yield m
    }
  }

  /**
   * The newest message published, without moving the cursor (the "current state"); null if none
   * was published yet.
   */
  latest(): Buffer | null {
    const t = this.#live()
    for (let tries = 0; ; tries++) {
      const h = t.head()
      const c = (h - 1) >>> 0
      const sw = t.slotWord(c)
      const stamp = t.w.load(sw)
      const len = t.w.load(sw + 1)
      if (stamp !== c || len === L.writing) {
        if (t.head() !== h) continue
        if (h === 0 && len === L.writing) return null
        // One slot: the publisher rewrites it before it moves the head; if that takes long (a
        // loan whose fill threw, a publisher that died while writing), there is no whole message.
        if (t.slots === 1 && len === L.writing) {
          if (tries < MAX_RETRIES) continue
          return null
        }
        throw t.corrupt(`slot ${c & (t.slots - 1)} has stamp ${stamp} and length ${hex(len)}, not message ${c} below the head ${h}`)
      }
      if (len > t.maxMessage) throw t.corrupt(`slot ${c & (t.slots - 1)} has length ${len}, above maxMessage ${t.maxMessage}`)
      const out = Buffer.allocUnsafe(len)
      t.copyOut(sw, out, len)
      if (t.recheck(sw, c, len)) return out
    }
  }

  /**
   * Frees this subscriber's entry (a block publisher stops waiting for it) and detaches.
   * Idempotent; pending `receiveAsync` calls reject with `ERR_SHM_DETACHED`.
   */
  close(): void {
    const t = this.#t
    if (t === null) return
    this.#t = null
    try {
      const e = this.#entry
      if (e >= 0) {
        this.#entry = -1
        if (t.leave(e) && t.block) this.#advanced(t)
      }
    } finally {
      t.shm.detach()
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }

  #live(): Topic {
    const t = this.#t
    if (t === null) throw new ShmError(`this subscriber of segment ${this.id} was closed`, 'ERR_PUBSUB_CLOSED')
    return t
  }

  #receive(target: Uint8Array | null, timeoutMs: number | undefined): Buffer | number | null {
    const ms = timeout(timeoutMs)
    const deadline = ms === undefined ? Infinity : performance.now() + ms
    for (;;) {
      const r = this.#step(target)
      if (r !== EMPTY) return r
      const left = deadline - performance.now()
      if (left <= 0) return null
      this.#live().shm.wait(L.head, this.#waitOn | 0, Math.min(left, CLOSE_CHECK_MS))
    }
  }

  /**
   * One attempt to read the message at the cursor (README, "Publish/subscribe", receive):
   * the message (a new Buffer, or its length copied into `target`), or {@link EMPTY}.
   */
  #step(target: Uint8Array | null): Buffer | number | typeof EMPTY {
    const t = this.#live()
    const n = t.slots
    let c = this.#cursor
    let lag = 0
    let h = t.head()
    for (;;) {
      if (c === h) {
        this.#moveTo(t, c, lag)
        if (t.closed()) throw new ShmError(`the publisher of topic ${t.where()} closed it, and every message was read`, 'ERR_PUBSUB_CLOSED')
        this.#waitOn = h
        return EMPTY
      }
      const d = (h - c) >>> 0
      if (d >= SIGN) throw t.corrupt(`the head word is ${h}, behind this subscriber's cursor ${c}`)
      if (d > n) {
        lag += d - n
        c = (h - n) >>> 0
      }
      const sw = t.slotWord(c)
      const stamp = t.w.load(sw)
      const len = t.w.load(sw + 1)
      if (stamp !== c || len === L.writing) {
        // Overwritten, or being overwritten: then the head is at least `capacity` past c.
        const h2 = t.head()
        const d2 = (h2 - c) >>> 0
        if (d2 < n) {
          throw t.corrupt(`slot ${c & (n - 1)} has stamp ${stamp} and length ${hex(len)}, not message ${c} below the head ${h2}`)
        }
        lag++
        c = (c + 1) >>> 0
        h = h2
        continue
      }
      if (len > t.maxMessage) throw t.corrupt(`slot ${c & (n - 1)} has length ${len}, above maxMessage ${t.maxMessage}`)
      let out: Buffer | Uint8Array
      if (target === null) out = Buffer.allocUnsafe(len)
      else {
        if (check.lengthOf(target) < len) {
          this.#moveTo(t, c, lag)
          throw check.rangeError(`The "target" argument (${check.lengthOf(target)} bytes) is shorter than the message (${len} bytes); it was not consumed`)
        }
        out = target
      }
      t.copyOut(sw, out, len)
      if (!t.recheck(sw, c, len)) {
        lag++
        c = (c + 1) >>> 0
        h = t.head()
        continue
      }
      this.#moveTo(t, (c + 1) >>> 0, lag)
      this.#lagged = this.#pendingLag
      this.#pendingLag = 0
      this.#sequence = c
      return target === null ? (out as Buffer) : len
    }
  }

  /** Moves the cursor to `c` after skipping `lag` messages: in the entry, then (block) bumps the space cell. */
  #moveTo(t: Topic, c: number, lag: number): void {
    this.#pendingLag += lag
    this.#missed += lag
    if (c === this.#cursor) return
    this.#cursor = c
    const e = this.#entry
    if (e < 0) return
    const owner = t.w.load(e)
    const me = identity().tid
    if (owner !== me) {
      throw t.corrupt(`subscriber entry ${(e * 4 - L.headerSize) / L.entrySize} has owner TID ${owner}, not this thread (${me})`)
    }
    t.w.store(e + 2, c)
    if (t.block) this.#advanced(t)
  }

  /**
   * After a cursor moved or an entry was freed (block policy): bumps the space value, always, then
   * wakes the publisher if it sleeps. (Always: a publisher that read the old cursor and is about
   * to sleep finds the value changed and looks again.)
   */
  #advanced(t: Topic): void {
    t.w.add(W_SPACE, 1)
    t.shm.notify(L.space, 1)
  }
}

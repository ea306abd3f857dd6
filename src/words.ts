/**
 * The 32-bit words of the layouts built in a segment (`Mutex`, publish/subscribe) and the thread
 * identity they store: one mechanism for both.
 *
 * - {@link Words}: sequentially consistent load, store, compare-exchange and add, through
 *   `Atomics` on the zero-copy view, or through the native `mappingWord` call where there is none
 *   (`zeroCopy: false`, Electron).
 * - {@link identity} and {@link alive}: a thread as TID plus start time (field 22 of
 *   `/proc/TID/stat`), and whether the thread a word names is alive (README, "Mutex").
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import { native } from './binding'
import { SharedMemory, copyHandleOf } from './shared-memory'

/** Linux's `PID_MAX_LIMIT`: no TID is above it. */
export const PID_MAX_LIMIT = 1 << 22

/** The shared words, through `Atomics` on the zero-copy view or, without one, through native calls. */
export interface Words {
  load(i: number): number
  store(i: number, v: number): void
  /** Compare-exchange; returns the word found. */
  cas(i: number, expected: number, value: number): number
  /** Adds `v` (mod 2³²); returns the word found before. */
  add(i: number, v: number): number
}

function atomicWords(u32: Uint32Array): Words {
  return {
    load: (i) => Atomics.load(u32, i),
    store: (i, v) => void Atomics.store(u32, i, v),
    cas: (i, e, v) => Atomics.compareExchange(u32, i, e, v),
    add: (i, v) => Atomics.add(u32, i, v),
  }
}

function nativeWords(shm: SharedMemory, base: number): Words {
  const handle = copyHandleOf(shm)
  const cas = (i: number, e: number, v: number): number => native.mappingWord(handle, base + 4 * i, 2, e, v)
  return {
    load: (i) => native.mappingWord(handle, base + 4 * i, 0, 0, 0),
    store: (i, v) => void native.mappingWord(handle, base + 4 * i, 1, v, 0),
    cas,
    add: (i, v) => {
      for (let w = native.mappingWord(handle, base + 4 * i, 0, 0, 0); ; ) {
        const found = cas(i, w, (w + v) >>> 0)
        if (found === w) return w
        w = found
      }
    },
  }
}

/**
 * The `count` words from `byteOffset` (a multiple of 4) of `shm`, indexed from 0: `Atomics` on
 * the zero-copy view if the segment has one, else native calls. The caller checks the range.
 */
export function wordsOf(shm: SharedMemory, byteOffset: number, count: number): { words: Words; view: Uint32Array | null } {
  if (shm.zeroCopy) {
    const b = shm.buffer
    const view = new Uint32Array(b.buffer, b.byteOffset + byteOffset, count)
    return { words: atomicWords(view), view }
  }
  return { words: nativeWords(shm, byteOffset), view: null }
}

/** The calling thread: its TID and the low 32 bits of its start time, read once per thread (worker). */
let self: { tid: number; start: number } | null = null
export function identity(): { tid: number; start: number } {
  if (self === null) {
    const [tid, start] = native.mutexThreadIdentity()
    self = { tid, start }
  }
  return self
}

/**
 * Whether the thread `tid` is alive; `start` is its published start time, or 0 (or -1) when it
 * has not published it: then only whether the TID exists (and is no zombie) is asked.
 */
export function alive(tid: number, start: number): boolean {
  return native.mutexHolderAlive(tid, start === 0 ? -1 : start)
}

/**
 * Shared pieces of `wait`/`notify`/`waitAsync` (on `SharedMemory`) and of the
 * channel's asynchronous receive.
 *
 * The wait cell protocol (8 bytes at an 8-byte aligned offset: an `Int32` value and
 * the `Uint32` count of waiters after it) is described in the README under
 * "Wait and notify across processes".
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import { abortSignal } from './async'
import * as check from './validate'

/** What a wait ended with, as `Atomics.wait` names it. */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** Options of {@link SharedMemory.waitAsync}. */
export interface WaitAsyncOptions {
  /** Cancels the wait at once: the promise rejects with an `AbortError` whose `cause` is `signal.reason`. */
  signal?: AbortSignal
}

/** The size of a wait cell: the Int32 value and the Uint32 waiter count after it. */
export const CELL_SIZE = 8

/** A wait cell offset: a multiple of 8 whose 8 bytes fit in `size`. */
export function cellOffset(value: unknown, size: number): number {
  const off = check.integer('byteOffset', value, 0, Number.MAX_SAFE_INTEGER)
  if (off % CELL_SIZE !== 0) {
    throw check.rangeError(
      `The "byteOffset" argument must be a multiple of ${CELL_SIZE}: a wait cell is an Int32 value ` +
        `followed by the Uint32 count of its waiters. Received ${off}`,
    )
  }
  if (off + CELL_SIZE > size) {
    throw check.rangeError(`A wait cell at byteOffset ${off} (8 bytes) does not fit in a segment of ${size} bytes`)
  }
  return off
}

/** A 32-bit value to compare with, as `Atomics.wait` takes it (signed or unsigned); returned as Int32. */
export function int32(name: string, value: unknown): number {
  return check.integer(name, value, -0x8000_0000, 0xffff_ffff) | 0
}

export { timeout } from './async'

/** A notify count: `Infinity` (all) or an integer >= 0. */
export function count(value: unknown): number {
  if (value === undefined || value === Infinity) return 0x7fff_ffff
  return Math.min(check.integer('count', value, 0, Number.MAX_SAFE_INTEGER), 0x7fff_ffff)
}

/** Checks `options.signal`. */
export function signalOf(options: unknown): AbortSignal | undefined {
  return abortSignal(check.options<WaitAsyncOptions>(options, ['signal']).signal)
}

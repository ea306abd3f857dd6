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
import { native } from './binding'
import { ShmError } from './errors'
import * as check from './validate'

/** What a wait ended with, as `Atomics.wait` names it. */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out'

/** Options of {@link SharedMemory.waitAsync}. */
export interface WaitAsyncOptions {
  /** Cancels the wait: the promise rejects with `signal.reason` (an `AbortError` by default). */
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

/** A timeout in milliseconds: absent or `Infinity` for none. */
export function timeout(value: unknown, name = 'timeoutMs'): number | undefined {
  if (value === undefined || value === Infinity) return undefined
  if (typeof value !== 'number') {
    throw Object.assign(new TypeError(`The "${name}" argument must be of type number. Received ${typeof value}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    })
  }
  if (!(value >= 0)) throw check.rangeError(`The "${name}" argument must be >= 0 or Infinity. Received ${value}`)
  return value
}

/** A notify count: `Infinity` (all) or an integer >= 0. */
export function count(value: unknown): number {
  if (value === undefined || value === Infinity) return 0x7fff_ffff
  return Math.min(check.integer('count', value, 0, Number.MAX_SAFE_INTEGER), 0x7fff_ffff)
}

/** Checks `options.signal`. */
export function signalOf(options: unknown): AbortSignal | undefined {
  const o = check.options<WaitAsyncOptions>(options, ['signal'])
  if (o.signal === undefined) return undefined
  if (!(o.signal instanceof AbortSignal)) {
    throw Object.assign(new TypeError('The "signal" option must be an AbortSignal'), { code: 'ERR_INVALID_ARG_TYPE' })
  }
  return o.signal
}

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' })
}

/**
 * Turns a native pending wait into the promise the user sees: settles with the wait result,
 * rejects with the signal's reason when cancelled, with `ERR_SHM_DETACHED` when the handle was
 * detached, with a `ShmError` when the kernel refused the wait.
 */
export function settle(
  pending: { promise: Promise<string>; id: number },
  signal: AbortSignal | undefined,
  id: number,
): Promise<WaitResult> {
  const onAbort = (): void => {
    native.cancelWait(pending.id)
  }
  if (signal && pending.id !== 0) signal.addEventListener('abort', onAbort, { once: true })
  return pending.promise.then((r) => {
    signal?.removeEventListener('abort', onAbort)
    switch (r) {
      case 'ok':
      case 'not-equal':
      case 'timed-out':
        return r
      case 'cancelled':
        throw abortReason(signal)
      case 'detached':
        throw new ShmError(`segment ${id} was detached while a wait was pending`, 'ERR_SHM_DETACHED')
      default: {
        const code = r.startsWith('error:') ? r.slice(6) : r
        const syscall = native.futexAsyncBackend()
        throw new ShmError(`${syscall} failed: ${code}`, code, { syscall })
      }
    }
  })
}

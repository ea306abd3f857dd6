/**
 * The one way every `*Async` method of sysv-shm takes `timeoutMs` and `signal` and settles:
 * - `timeoutMs`: a number of milliseconds `>= 0`, or `Infinity` (or absent) for no timeout.
 * - `signal`: an `AbortSignal`; an abort, before or during the wait, rejects with Node's
 *   `AbortError` (`name` `'AbortError'`, `code` `'ABORT_ERR'`, `cause` the signal's reason), as
 *   `timers/promises` and `events.once` do, and the wait's thread is woken at once.
 * - Everything else, argument errors included, is a rejection of the returned promise with the
 *   same error object the synchronous call would throw; nothing is thrown synchronously.
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import { native } from './binding'
import * as check from './validate'

/** A timeout in milliseconds: absent or `Infinity` for none, else a number `>= 0`. */
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

/** An optional `signal` option: an `AbortSignal` or absent. */
export function abortSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined
  if (!(value instanceof AbortSignal)) {
    throw Object.assign(new TypeError('The "signal" option must be an AbortSignal'), { code: 'ERR_INVALID_ARG_TYPE' })
  }
  return value
}

/** Node's AbortError: `name` `'AbortError'`, `code` `'ABORT_ERR'`, `cause` the signal's reason. */
export function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  })
}

/** The native token that cancels one asynchronous call. */
export type WaitToken = InstanceType<typeof native.WaitToken>

/**
 * Runs a native asynchronous call with a token that `signal` cancels: rejects with
 * {@link abortError} if `signal` is aborted before or while it waits (the native call rejects
 * with `ABORT_ERR` then), with the native call's error otherwise.
 */
export async function run<T>(signal: AbortSignal | undefined, start: (token: WaitToken) => Promise<T>): Promise<T> {
  if (signal?.aborted) throw abortError(signal)
  const token = new native.WaitToken()
  const onAbort = (): void => token.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    return await start(token)
  } catch (e) {
    if (signal?.aborted && (e as { code?: unknown } | null)?.code === 'ABORT_ERR') throw abortError(signal)
    throw e
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

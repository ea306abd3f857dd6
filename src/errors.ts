/**
 * Errors of sysv-shm.
 * @module
 */

/**
 * The error of a failed System V call, or of a handle used in a state that
 * forbids the call.
 *
 * One shape for every class and for sync and async calls alike: an `*Async` method rejects
 * with the very error object its synchronous form would throw (both are built from the core's
 * one error type by the binding's one mapping, `crates/sysv-shm-node/src/errors.rs`).
 *
 * `code` is the errno name for a failed system call (`'EEXIST'`, `'ENOENT'`,
 * `'EACCES'`, `'EINVAL'`, `'ENOMEM'`, `'ENOSPC'`, `'EIDRM'`, `'EPERM'`, `'ENOMSG'`,
 * `'EAGAIN'`, …), with `errno` (the positive C value, as in `os.constants.errno`) and
 * `syscall` (`'shmget'`, `'shmat'`, `'shmdt'`, `'shmctl'`, `'ftok'`, `'msgrcv'`, `'msgsnd'`,
 * `'semop'`, `'semtimedop'`, `'futex'`, `'futex_waitv'`, …). A thread that could not be
 * started for an asynchronous call is `code` `'EAGAIN'` (its errno) with `syscall`
 * `'pthread_create'`.
 *
 * Everything else has a code of its own and no errno:
 * - `'ERR_SHM_DETACHED'`: the handle was detached.
 * - `'ERR_SHM_READ_ONLY'`: a write, or a writable view, on a `SHM_RDONLY` attachment.
 * - `'ERR_SHM_NO_ZERO_COPY'`: `buffer` where zero-copy views are unavailable
 *   (Electron's V8 memory cage, a segment above `buffer.constants.MAX_LENGTH`)
 *   or were turned off with `{ zeroCopy: false }`.
 * - `'ERR_SHM_NO_SHARED_ARRAY_BUFFER'`: `sharedBuffer` where the runtime has no
 *   `node_api_create_external_sharedarraybuffer` (Node.js 18 and 20, Deno: it needs
 *   Node.js 22.23.5, 24.19 or 26.12 or newer, or Bun 1.4.4), refuses external buffers
 *   (Electron), or the segment is above `buffer.constants.MAX_LENGTH`; the message says which.
 * - `'ERR_CHANNEL_CORRUPT'`: a `Channel`'s head, tail or a record header breaks the layout's
 *   rules (another process wrote them, by a bug or on purpose); the message names the word and
 *   its values. Nothing was read or written with them.
 * - `'ERR_CHANNEL_CLOSED'`: a send on a closed `Channel`.
 * - `'ERR_SHM_NOT_A_CHANNEL'`: `Channel.open` of a segment that does not hold a channel.
 * - `'ERR_SHM_TOO_MANY_ATTACHMENTS'`: this process already holds half of
 *   `vm.max_map_count` attachments; detach some (handles dropped without
 *   `detach()` are detached by GC once the event loop turns).
 * - `Mutex` states, named as `pthread_mutex_*` names them (no `errno`, no `syscall`: no system
 *   call failed): `'EPERM'` (unlock by a thread that does not hold it), `'EDEADLK'` (a sync lock
 *   by the holding thread), `'ENOTRECOVERABLE'` (a holder died and its successor unlocked without
 *   `consistent()`), `'EINVAL'` (`consistent()` without an owner death), `'ETIMEDOUT'`
 *   (`acquire` with `timeoutMs` ran out), and `'ERR_MUTEX_CORRUPT'` (the mutex's words break its
 *   layout, or the bytes are no mutex of this version).
 * - Publish/subscribe (`Publisher`, `Subscriber`): `'ERR_PUBSUB_CORRUPT'` (a word of the topic,
 *   its geometry, head, a slot's stamp or length, a cursor, a TID or the flags, breaks the
 *   layout's rules; the message names the word and its value; nothing was read or written with
 *   it), `'ERR_PUBSUB_NAME'` (the segment at a topic's key holds another name or no topic: a
 *   collision; it is neither used nor changed), `'ERR_PUBSUB_CLOSED'` (a receive after the
 *   publisher closed and every message was read, or a call on a closed handle), and, named as
 *   the errno names them but with no `errno` or `syscall`: `'EBUSY'` (a live publisher holds the
 *   topic), `'EEXIST'` (the topic exists with another geometry), `'EAGAIN'` (no free subscriber
 *   entry).
 * - `'ABORT_ERR'` is not a `ShmError`: an aborted `signal` rejects with Node's `AbortError`.
 */
export class ShmError extends Error {
  /** The errno name, or an `ERR_SHM_*` code. */
  code: string
  /** The C errno value (positive) when a system call failed. */
  errno?: number
  /** The system call that failed. */
  syscall?: string

  constructor(message: string, code: string, details: { errno?: number; syscall?: string } = {}) {
    super(message)
    this.name = 'ShmError'
    this.code = code
    if (details.errno !== undefined) this.errno = details.errno
    if (details.syscall !== undefined) this.syscall = details.syscall
  }
}



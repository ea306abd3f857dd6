/**
 * What the info of every IPC object (segment, message queue, semaphore set) shares, from the
 * addon's stat: the id, the `ipc_perm` fields (key, mode, owner, creator) and times as `Date`s.
 * @internal
 * @module
 */
import type { NativePerm } from '../binding'

/** A time from the addon (ms since the epoch, `null` for never) as a `Date`. */
export const date = (ms: number | null | undefined): Date | null => (ms == null ? null : new Date(ms))

/** The fields of `struct ipc_perm` every info has, flat, after the id. */
export function perm(id: number, p: NativePerm) {
  return { id, key: p.key, mode: p.mode, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid }
}

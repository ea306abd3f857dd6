/**
 * What the info of every IPC object (segment, message queue, semaphore set) shares, from the
 * addon's stat: the id, the `ipc_perm` fields (key, mode, owner, creator) and times as `Date`s.
 * @internal
 * @module
 */
import type { NativePerm } from '../binding'

/** What every IPC object's info has: its id and the fields of `struct ipc_perm`. */
export interface IpcInfo {
  /** The id: shmid, msqid or semid, as `ipcs` prints it. */
  id: number
  /** The key, unsigned 32-bit as `ipcs` prints it; `0` for `IPC_PRIVATE` (and a segment marked removed). */
  key: number
  /** Permission bits (`0o600`, …). */
  mode: number
  /** Owner user and group. */
  uid: number
  gid: number
  /** Creator user and group. */
  cuid: number
  cgid: number
}

/** A time from the addon (ms since the epoch, `null` for never) as a `Date`. */
export const date = (ms: number | null | undefined): Date | null => (ms == null ? null : new Date(ms))

/** The fields of `struct ipc_perm` every info has, flat, after the id. */
export function perm(id: number, p: NativePerm): IpcInfo {
  return { id, key: p.key, mode: p.mode, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid }
}

/**
 * Which processes have a segment attached: what `ipcs` cannot tell. Read
 * from `/proc/PID/maps`, where an attachment shows as a mapping of
 * `/SYSV<key in hex>` whose inode is the shmid (see proc(5)). And whether a
 * pid still runs.
 * @internal
 * @module
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

/** A process with the segment attached, as `stat` shows it. */
export interface Attacher {
  pid: number
  /** How many times it has the segment attached (mappings). */
  mappings: number
  /** Its command line, or `null` if it cannot be read. */
  command: string | null
}

/** `/proc/PID/ns/ipc` (`ipc:[INODE]`), or `null` where it cannot be read. */
function ipcNamespace(pid: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/ipc`)
  } catch {
    return null
  }
}

/**
 * The processes that have segment `id` attached, in pid order. Only processes
 * whose maps this user may read are seen (all of them for root), and only
 * those in this process's IPC namespace: shmids are per namespace, so a
 * process in another one (a container) may map a different segment of the
 * same id.
 */
export function attachers(id: number): Attacher[] {
  const out: Attacher[] = []
  const inode = String(id)
  let pids: string[]
  try {
    pids = readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name))
  } catch {
    return out
  }
  const ours = ipcNamespace('self')
  for (const pid of pids) {
    let maps: string
    try {
      maps = readFileSync(`/proc/${pid}/maps`, 'latin1')
    } catch {
      continue // gone, or not ours to read
    }
    let mappings = 0
    for (const line of maps.split('\n')) {
      if (!line.includes('/SYSV')) continue
      const fields = line.split(/\s+/)
      if (fields[4] === inode && fields[5]?.startsWith('/SYSV')) mappings++
    }
    if (mappings === 0) continue
    // Where the namespace cannot be read (it can whenever the maps can), keep the process.
    const ns = ours === null ? null : ipcNamespace(pid)
    if (ns !== null && ns !== ours) continue
    let command: string | null = null
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ') || null
    } catch {
      // exited meanwhile
    }
    out.push({ pid: Number(pid), mappings, command })
  }
  return out.sort((a, b) => a.pid - b.pid)
}

/** ` (running)` or ` (not running)` after a pid, as `stat` shows it; empty for pid 0 or when unknown. */
export function pidState(pid: number): string {
  if (pid <= 0) return ''
  try {
    process.kill(pid, 0)
    return ' (running)'
  } catch (e) {
    const code = (e as { code?: string }).code
    return code === 'EPERM' ? ' (running)' : code === 'ESRCH' ? ' (not running)' : ''
  }
}

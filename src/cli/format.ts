/**
 * Formatting for the command line: user and group names, permissions,
 * sizes, times and tables.
 * @internal
 * @module
 */
import { readFileSync } from 'node:fs'

import type { SegmentInfo } from '../shared-memory'

function readIds(file: string): Map<number, string> {
  const names = new Map<number, string>()
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return names
  }
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':')
    if (!name || id === undefined || name.startsWith('#')) continue
    const n = Number(id)
    // The first entry of an id wins, as getpwuid(3) returns it.
    if (Number.isInteger(n) && !names.has(n)) names.set(n, name)
  }
  return names
}

let users: Map<number, string> | undefined
let groups: Map<number, string> | undefined

/** The user name of a uid from /etc/passwd (as `ipcs` shows it), or `null`. */
export function userName(uid: number): string | null {
  users ??= readIds('/etc/passwd')
  return users.get(uid) ?? null
}

/** The group name of a gid from /etc/group, or `null`. */
export function groupName(gid: number): string | null {
  groups ??= readIds('/etc/group')
  return groups.get(gid) ?? null
}

/** The name of a uid, or the number when it has none. */
export const user = (uid: number): string => userName(uid) ?? String(uid)
/** The name of a gid, or the number when it has none. */
export const group = (gid: number): string => groupName(gid) ?? String(gid)

/** `0x1234abcd`: a key as `ipcs` prints it. */
export const hexKey = (key: number): string => '0x' + (key >>> 0).toString(16).padStart(8, '0')

/** `0640`. */
export const octal = (mode: number): string => '0' + (mode & 0o777).toString(8).padStart(3, '0')

/** `rw-r-----`. */
export function rwx(mode: number): string {
  let s = ''
  for (const shift of [6, 3, 0]) {
    const bits = (mode >> shift) & 7
    s += (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (bits & 1 ? 'x' : '-')
  }
  return s
}

/** `dest`, `locked`, `dest locked` or the empty string, as `ipcs -m` prints the status. */
export function status(s: Pick<SegmentInfo, 'removed' | 'locked'>): string {
  return [s.removed ? 'dest' : '', s.locked ? 'locked' : ''].filter(Boolean).join(' ')
}

/** `4.9 KiB`, `16.0 EiB`, `512 B`. */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`
}

const pad2 = (n: number): string => String(n).padStart(2, '0')

/** `2026-11-27 04:24:25` in local time, or `-` for none. */
export function time(d: Date | null): string {
  if (!d) return '-'
  return (
    `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  )
}

/** `3m ago`, `2h ago`, `5d ago`. */
export function ago(d: Date, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86400)}d ago`
}

/** A column of a table: its heading and whether it is right-aligned. */
export interface Column {
  title: string
  right?: boolean
}

/** Lines of a table with columns padded to their widest cell, without trailing spaces. */
export function table(columns: Column[], rows: string[][]): string[] {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => (columns[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.title)), ...rows.map(line)]
}

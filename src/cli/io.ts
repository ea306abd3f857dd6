/**
 * Output of the command line: stdout with back-pressure, error lines on
 * stderr with the errno name.
 * @internal
 * @module
 */
import { once } from 'node:events'
import { constants } from 'node:os'

import { ShmError } from '../errors'
import { hexKey } from './format'

/** Writes to stdout, waiting for the pipe to drain when it is full. */
export async function out(text: string): Promise<void> {
  if (text.length === 0) return
  if (!process.stdout.write(text)) await once(process.stdout, 'drain')
}

/** Writes a line to stderr. */
export function err(line: string): void {
  process.stderr.write(line + '\n')
}

/**
 * The explanation the C library gives for an errno, from the message of a `ShmError`; with
 * `bare`, without the explanation the core appends in parentheses (`… (kernel.shmmni … reached)`).
 */
function strerror(e: ShmError, bare = false): string {
  const marker = `${e.code}: `
  const at = e.message.lastIndexOf(marker)
  const text = at >= 0 ? e.message.slice(at + marker.length) : e.message
  const paren = text.indexOf(' (')
  return bare && paren >= 0 ? text.slice(0, paren) : text
}

/** Explanations of errno names for one kind of operation, shown instead of the bare C text. */
export type Hints = Partial<Record<string, string>>

/**
 * `shmid 5: EINVAL: no segment has this id (shmctl: Invalid argument)`: what
 * failed, the errno name, and why.
 */
export function describe(subject: string, e: unknown, hints: Hints = {}): string {
  if (e instanceof ShmError) {
    const hint = hints[e.code]
    const c = strerror(e, hint !== undefined)
    const why = hint ? (e.syscall ? `${hint} (${e.syscall}: ${c})` : hint) : e.syscall ? `${c} (${e.syscall})` : c
    return `${subject}: ${e.code}: ${why}`
  }
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    return `${subject}: ${typeof code === 'string' ? code + ': ' : ''}${e.message}`
  }
  return `${subject}: ${String(e)}`
}

/** The ShmError-like record of a failure in JSON output. */
export interface FailureJson {
  code: string
  errno: number | null
  syscall: string | null
  message: string
}

export function failureJson(e: unknown): FailureJson {
  if (e instanceof ShmError) {
    return { code: e.code, errno: e.errno ?? null, syscall: e.syscall ?? null, message: e.message }
  }
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined
  return {
    code: typeof code === 'string' ? code : 'ERR_UNKNOWN',
    errno: null,
    syscall: null,
    message: e instanceof Error ? e.message : String(e),
  }
}

/** The object of OBJECTS (a listing) whose key is `key`, else a `ShmError` ENOENT naming the `kind`. */
export function byKey<T extends { key: number }>(objects: T[], key: number, kind: string): T {
  const found = objects.find((o) => o.key >>> 0 === key)
  if (!found) throw new ShmError(`no ${kind} has key ${hexKey(key)}`, 'ENOENT', { errno: constants.errno.ENOENT })
  return found
}

/**
 * Parsing of command-line values: numbers in decimal or `0x` hex (as `ipcs`
 * prints keys), keys, durations.
 * @internal
 * @module
 */

/** A mistake in the command line: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

const DEC = /^[0-9]+$/
const HEX = /^0x[0-9a-f]+$/i

/**
 * A non-negative integer in decimal (`4096`) or hex (`0x1000`), at most `max`.
 * `what` names the value in the error message.
 */
export function parseUint(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const s = text.trim().replace(/_/g, '')
  let n: number
  if (DEC.test(s)) n = Number(s)
  else if (HEX.test(s)) n = Number.parseInt(s.slice(2), 16)
  else throw new UsageError(`${what} must be a number in decimal or 0x hex, not ${JSON.stringify(text)}`)
  if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`${what} must be at most ${max}, not ${text}`)
  return n
}

/** A shmid as `ipcs` prints it. */
export function parseId(text: string): number {
  return parseUint(text, 'an id', 0x7fff_ffff)
}

/**
 * A System V key: `0x1234abcd` as `ipcs` prints it, or decimal, also negative
 * (`key_t` is a signed 32-bit int in C). Returns it unsigned, as `ipcs` shows it.
 */
export function parseKey(text: string): number {
  const s = text.trim()
  if (/^-[0-9]+$/.test(s)) {
    const n = Number(s)
    if (n < -0x8000_0000) throw new UsageError(`a key must be a 32-bit value, not ${text}`)
    return n >>> 0
  }
  return parseUint(s, 'a key', 0xffff_ffff)
}

/** A key given to name one object: 0 (IPC_PRIVATE) names none, `kind` says of what. */
export function noPrivateKey(key: number, kind: string): number {
  if (key === 0) throw new UsageError(`key 0 is IPC_PRIVATE, which names no ${kind}: give the id`)
  return key
}

/**
 * An ftok project id: 1 to 255 in decimal or hex, or one non-digit character
 * (`A` is 65), as C programs write `ftok(path, 'A')`.
 */
export function parseProjId(text: string): number {
  let n: number
  if (text.length === 1 && !/[0-9]/.test(text)) n = text.charCodeAt(0)
  else n = parseUint(text, 'a project id', Number.MAX_SAFE_INTEGER)
  if (n < 1 || n > 255) throw new UsageError(`a project id must be 1 to 255 (or one character), not ${text}`)
  return n
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/**
 * A duration in milliseconds: `90s`, `10m`, `2h`, `1d`, `1w`, `1h30m`, or a
 * plain number of seconds.
 */
export function parseDuration(text: string): number {
  const s = text.trim()
  if (/^[0-9]+(\.[0-9]+)?$/.test(s)) return Number(s) * 1000
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)/gy
  let total = 0
  let end = 0
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (UNITS[m[2]!] ?? 0)
    end = re.lastIndex
  }
  if (s.length === 0 || end !== s.length) {
    throw new UsageError(`a duration is a number with a unit (ms, s, m, h, d, w), like 10m, 2h or 1d; not ${JSON.stringify(text)}`)
  }
  return total
}

/**
 * `hexdump -C` output: the canonical hex+ASCII display.
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />

const hex2 = (b: number): string => (b < 16 ? '0' : '') + b.toString(16)
const offsetText = (n: number): string => n.toString(16).padStart(8, '0')

/**
 * Formats lines of `hexdump -C` for bytes that come in chunks (so a large
 * segment need not be copied at once), with `*` for runs of lines equal to
 * the one before unless `squeeze` is off (`hexdump -v`).
 */
export class HexDump {
  #offset: number
  #pending = Buffer.alloc(0)
  #previous: Buffer | null = null
  #starred = false
  readonly #squeeze: boolean

  /** @param start the offset the first byte is shown at. */
  constructor(start: number, squeeze = true) {
    this.#offset = start
    this.#squeeze = squeeze
  }

  /** The lines for `chunk`, holding back a last partial line until {@link HexDump.end}. */
  push(chunk: Buffer): string {
    const data = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk
    let out = ''
    let i = 0
    for (; i + 16 <= data.length; i += 16) out += this.#line(data.subarray(i, i + 16))
    this.#pending = Buffer.from(data.subarray(i))
    return out
  }

  /** The last partial line, if any, and the final offset line. */
  end(): string {
    let out = ''
    if (this.#pending.length) out += this.#line(this.#pending)
    this.#pending = Buffer.alloc(0)
    return out + offsetText(this.#offset) + '\n'
  }

  #line(bytes: Buffer): string {
    const at = this.#offset
    this.#offset += bytes.length
    if (this.#squeeze && bytes.length === 16 && this.#previous?.equals(bytes)) {
      if (this.#starred) return ''
      this.#starred = true
      return '*\n'
    }
    this.#starred = false
    this.#previous = Buffer.from(bytes)
    let hex = ''
    let ascii = ''
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!
      hex += hex2(b) + ' '
      if (i === 7) hex += ' '
      ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.'
    }
    return `${offsetText(at)}  ${hex.padEnd(49)} |${ascii}|\n`
  }
}

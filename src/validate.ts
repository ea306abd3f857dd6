/**
 * Argument checks: each throws a `TypeError` or `RangeError` with a clear
 * message and Node's `code`, before any system call.
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />

type Coded<E extends Error> = E & { code: string }

function typeError(message: string): Coded<TypeError> {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' })
}

export function rangeError(message: string): Coded<RangeError> {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' })
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return `type string (${JSON.stringify(value.length > 20 ? value.slice(0, 20) + '…' : value)})`
  if (typeof value === 'object' || typeof value === 'function') {
    const name = (value as object).constructor?.name
    return name ? `an instance of ${name}` : `type ${typeof value}`
  }
  return `type ${typeof value} (${String(value)})`
}

/** An integer within `[min, max]`. */
export function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw typeError(`The "${name}" argument must be of type number. Received ${describe(value)}`)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(`The value of "${name}" is out of range. It must be an integer >= ${min} and <= ${max}. Received ${value}`)
  }
  return value
}

/** A System V key: a 32-bit value, signed or unsigned; returns it as `key_t` (int32). */
export function key(value: unknown, name = 'key'): number {
  return integer(name, value, -0x8000_0000, 0xffff_ffff) | 0
}

/** A shmid as `ipcs` prints it. */
export function id(value: unknown): number {
  return integer('id', value, 0, 0x7fff_ffff)
}

/** A permission mode: the low 9 bits. */
export function mode(value: unknown, name = 'mode'): number {
  return integer(name, value, 0, 0o777)
}

export function boolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw typeError(`The "${name}" option must be of type boolean. Received ${describe(value)}`)
  return value
}

/** An options object (or undefined) whose keys are all among `allowed`. */
export function options<T extends object>(
  value: unknown,
  allowed: readonly (keyof T & string)[],
  name = 'options',
  required = false,
): Partial<T> {
  if (value === undefined && !required) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw typeError(`The "${name}" argument must be an object. Received ${describe(value)}`)
  }
  for (const k of Object.keys(value)) {
    if (!(allowed as readonly string[]).includes(k)) {
      throw typeError(`Unknown option "${k}" in "${name}". Allowed: ${allowed.join(', ')}`)
    }
  }
  return value as Partial<T>
}

/** Bytes to write: a string (UTF-8), a Buffer/TypedArray/DataView, or an ArrayBuffer. */
export function bytes(name: string, value: unknown): ArrayBufferView {
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (ArrayBuffer.isView(value)) return value
  if (value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) return new Uint8Array(value)
  throw typeError(`The "${name}" argument must be a string, Buffer, TypedArray, DataView or ArrayBuffer. Received ${describe(value)}`)
}

const NO_BYTES = new Uint8Array(0)

// The built-in getters of views. A view's own `byteLength` (or `length`, `buffer`, …) is a
// property a subclass or the object itself may redefine; these read the internal slots, which
// the copies (`TypedArray#set`, `Buffer#copy`) use: a length checked through them is the length
// copied.
type Getter = (this: unknown) => unknown
const getter = (proto: object, name: string | symbol): Getter => Object.getOwnPropertyDescriptor(proto, name)!.get as Getter
const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object
const taTag = getter(TYPED_ARRAY, Symbol.toStringTag)
const taBuffer = getter(TYPED_ARRAY, 'buffer')
const taOffset = getter(TYPED_ARRAY, 'byteOffset')
const taLength = getter(TYPED_ARRAY, 'byteLength')
const taCount = getter(TYPED_ARRAY, 'length')
const dvBuffer = getter(DataView.prototype, 'buffer')
const dvOffset = getter(DataView.prototype, 'byteOffset')
const dvLength = getter(DataView.prototype, 'byteLength')

/**
 * The bytes of a view, as a Uint8Array whose internal length is the view's: the view itself if it
 * is one (a Buffer too), else a new Uint8Array over the same memory, made from the built-in
 * getters. A view of a detached ArrayBuffer has none: no new view of that buffer can be made.
 */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  const tag = taTag.call(view)
  if (tag === 'Uint8Array') return view as Uint8Array
  const typed = tag !== undefined
  const length = (typed ? taLength : dvLength).call(view) as number
  if (length === 0) return NO_BYTES
  const buffer = (typed ? taBuffer : dvBuffer).call(view) as ArrayBufferLike
  return new Uint8Array(buffer, (typed ? taOffset : dvOffset).call(view) as number, length)
}

/** The byte length of a Uint8Array from {@link bytesOf}, by the built-in getter. */
export function lengthOf(bytes: Uint8Array): number {
  return taLength.call(bytes) as number
}

/**
 * The ArrayBuffers (and SharedArrayBuffers) over segments that this process handed out: a view
 * of one may be the same memory as another attachment of that segment at another address, which
 * no `memmove` can see, so the copy path copies such a source out first.
 */
const segmentBuffers = new WeakSet<object>()

/** Records an ArrayBuffer or SharedArrayBuffer over a segment (see {@link unaliased}). */
export function segmentBuffer<T extends object>(buffer: T): T {
  segmentBuffers.add(buffer)
  return buffer
}

/** `bytes`, or a copy of them if they are a view of a segment (see {@link segmentBuffer}). */
export function unaliased(bytes: Uint8Array): Uint8Array {
  return segmentBuffers.has(bufferOf(bytes)) ? Uint8Array.prototype.slice.call(bytes) : bytes
}

/** The element count of a typed array, by the built-in getter. */
export function countOf(array: ArrayBufferView): number {
  return taCount.call(array) as number
}

/** Whether `value` is a Uint32Array by its internal type (not by its prototype, which can be replaced). */
export function isUint32Array(value: unknown): value is Uint32Array {
  return ArrayBuffer.isView(value) && taTag.call(value) === 'Uint32Array'
}

/** The ArrayBuffer of a typed array, by the built-in getter. */
export function bufferOf(array: ArrayBufferView): ArrayBufferLike {
  return taBuffer.call(array) as ArrayBufferLike
}

/** A view to copy into. */
export function view(name: string, value: unknown): ArrayBufferView {
  if (ArrayBuffer.isView(value)) return value
  throw typeError(`The "${name}" argument must be a Buffer, TypedArray or DataView. Received ${describe(value)}`)
}

/** A filesystem path: a non-empty string without NUL bytes. */
export function path(name: string, value: unknown): string {
  if (typeof value !== 'string') throw typeError(`The "${name}" argument must be a string or file: URL. Received ${describe(value)}`)
  if (value.length === 0) throw rangeError(`The "${name}" argument must not be empty`)
  if (value.includes('\0')) throw rangeError(`The "${name}" argument must not contain NUL bytes`)
  return value
}

/** The `removeWhenUnused` option as a number of parties: 0 for no, 1 for `true`. */
export function removeWhenUnused(value: unknown): number {
  if (value === undefined || value === false) return 0
  if (value === true) return 1
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw typeError(`The "removeWhenUnused" option must be a boolean or { parties }. Received ${describe(value)}`)
  }
  const o = options<{ parties: number }>(value, ['parties'], 'removeWhenUnused', true)
  if (o.parties === undefined) throw typeError('The "removeWhenUnused" option must have a "parties" number')
  return integer('removeWhenUnused.parties', o.parties, 1, 0x7fff_ffff)
}

/** The path of a `file:` URL; anything else is a `TypeError` naming the parameter. */
export function fileUrl(name: string, url: URL, toPath: (url: URL) => string): string {
  if (url.protocol !== 'file:') {
    throw typeError(`The "${name}" argument must be a string or file: URL. Received a URL of scheme ${url.protocol}`)
  }
  try {
    return toPath(url)
  } catch (err) {
    throw typeError(`The "${name}" argument is not a usable file: URL: ${(err as Error).message}`)
  }
}

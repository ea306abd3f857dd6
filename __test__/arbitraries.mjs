// Bad-input generators for the property tests (fast-check), shared by every
// API of the package: describe each parameter with a spec (what is valid,
// which error a bad value gets, which name the message must give), and
// `bad(spec)` generates values outside it, `good(spec)` values inside.
//
// A spec is { valid(v) -> boolean, error(v) -> { type, name } }: `type` is
// the error class a bad value must get (TypeError or RangeError) and `name`
// the parameter name its message must quote. New APIs (semaphores, queues,
// channels) describe their parameters with the same builders and reuse
// `checkBadCall` in their own property files.
import fc from 'fast-check'

/** Whether the stress run was asked for (`npm run test:stress`). */
export const STRESS = process.env.SYSV_SHM_STRESS === '1'

/** Runs per property: `normal` in `npm test`, `stress` (10,000) in the stress run. */
export const runs = (normal, stress = 10_000) => (STRESS ? stress : normal)

/** Numbers at the edges of every integer domain the API uses. */
export const EDGE_NUMBERS = [
  -1, -0.5, 0.5, 1.5, 0.1 + 0.2, NaN, Infinity, -Infinity,
  2 ** 8, 2 ** 16, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 31 + 0.5,
  2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, -(2 ** 32), 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53),
  2 ** 63, 2 ** 64, 1e300, -1e300, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE,
  -Number.MIN_VALUE, Number.EPSILON, 0o777 + 1, 255.5, 256, 0xfffffffe + 1,
]

/** Any number: edges, integers of every size, and arbitrary doubles (NaN and ±Infinity included). */
export const anyNumber = fc.oneof(
  fc.constantFrom(...EDGE_NUMBERS),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.maxSafeInteger(),
  fc.double(),
  fc.double({ min: -1e6, max: 1e6 }),
)

/** Values that are not numbers: every other type, and look-alikes (numeric strings, boxed numbers, bigint). */
export const notANumber = fc.oneof(
  fc.bigInt(),
  fc.constantFrom(0n, 1n, -1n, 2n ** 64n),
  fc.string(),
  fc.constantFrom('1', '0', '0x10', ' 1 ', '', '1e3', 'NaN'),
  fc.constant(null),
  fc.boolean(),
  fc.object(),
  fc.array(fc.anything(), { maxLength: 3 }),
  fc.constantFrom(
    Symbol('bad'),
    () => 1,
    new Date(0),
    Object(1),
    Object(1n),
    [1],
    { valueOf: () => 1 },
    { toString: () => '1' },
    new Uint8Array(1),
    new ArrayBuffer(1),
    new Map(),
    Object.create(null),
    /1/,
  ),
)

/** Anything at all, `undefined` included. */
export const anything = fc.oneof(anyNumber, notANumber, fc.constant(undefined))

export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)

/** An integer parameter in [min, max]; `optional` accepts undefined. */
export function int(name, min, max, { optional = false, except = [] } = {}) {
  return {
    name,
    valid: (v) =>
      (optional && v === undefined) ||
      (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max && !except.some((x) => Object.is(x, v) || x === v)),
    error: (v) => ({ type: typeof v === 'number' ? RangeError : TypeError, name }),
    sample: fc.integer({ min: Math.max(min, -(2 ** 31)), max: Math.min(max, 2 ** 31 - 1) }).filter((v) => !except.includes(v)),
  }
}

/** A boolean option (undefined allowed). */
export function bool(name) {
  return {
    name,
    valid: (v) => v === undefined || typeof v === 'boolean',
    error: () => ({ type: TypeError, name }),
    sample: fc.option(fc.boolean(), { nil: undefined }),
  }
}

/** A spec from a predicate: every bad value is a `type` naming `name`. */
export function custom(name, valid, type = TypeError, sample = fc.constant(undefined)) {
  return { name, valid, error: () => ({ type, name }), sample }
}

/**
 * An options object: undefined (unless `required`) or a non-array object whose own keys are
 * all in `fields` and whose values pass their specs. A bad options value is either not such an
 * object (a TypeError naming `name`), has an unknown key (a TypeError naming `name`), or has
 * exactly one field with a bad value (that field's error).
 */
export function options(name, fields, { required = false } = {}) {
  const keys = Object.keys(fields)
  const valid = (v) => {
    if (v === undefined) return !required
    if (!isObject(v)) return false
    return Object.keys(v).every((k) => keys.includes(k) && fields[k].valid(v[k]))
  }
  return {
    name,
    fields,
    valid,
    error: (v) => {
      if (!isObject(v)) return { type: TypeError, name }
      const unknown = Object.keys(v).find((k) => !keys.includes(k))
      if (unknown !== undefined) return { type: TypeError, name }
      const badKey = keys.find((k) => k in v && !fields[k].valid(v[k]))
      return fields[badKey].error(v[badKey])
    },
    sample: fc.constant(undefined),
  }
}

/** Values outside a spec. For an options spec: one bad field, an unknown key, or not an object. */
export function bad(spec) {
  if (spec.fields) {
    const keys = Object.keys(spec.fields)
    return fc.oneof(
      anything.filter((v) => !spec.valid(v) && !isObject(v)),
      fc
        .tuple(fc.string({ minLength: 1, maxLength: 12 }), anything)
        .filter(([k]) => !keys.includes(k) && k !== '__proto__')
        .map(([k, v]) => ({ [k]: v })),
      fc
        .constantFrom(...keys)
        .chain((k) => bad(spec.fields[k]).map((v) => ({ [k]: v }))),
    )
  }
  const outside = anything.filter((v) => !spec.valid(v))
  return spec.badSample ? fc.oneof(outside, spec.badSample.filter((v) => !spec.valid(v))) : outside
}

/** A printable form of any value, for failure messages. */
export function show(v) {
  try {
    if (typeof v === 'symbol' || typeof v === 'bigint') return `${String(v)}${typeof v === 'bigint' ? 'n' : ''}`
    if (typeof v === 'function') return `[function ${v.name}]`
    if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v)
    return JSON.stringify(v) ?? String(v)
  } catch {
    return Object.prototype.toString.call(v)
  }
}

/**
 * Calls `call()` and checks it throws what `spec.error(value)` says: the right class, a Node-style
 * string `code`, and a message that quotes the parameter's name. Returns a description of what is
 * wrong, or null. Never lets an unexpected success or error pass.
 */
export function checkBadCall(call, spec, value) {
  const want = spec.error(value)
  let result
  try {
    result = call()
  } catch (err) {
    if (!(err instanceof want.type)) return `expected ${want.type.name}, got ${err?.constructor?.name}: ${err?.message}`
    if (err.constructor !== want.type) return `expected exactly ${want.type.name}, got ${err.constructor.name}`
    if (typeof err.code !== 'string' || !err.code) return `no code on ${err.message}`
    if (typeof err.message !== 'string' || !err.message.includes(`"${want.name}`)) {
      return `the message does not name "${want.name}": ${err.message}`
    }
    return null
  }
  // It did not throw: undo what it did before reporting.
  try {
    result?.detach?.()
  } catch {}
  return `no error for ${show(value)} (returned ${show(result)})`
}

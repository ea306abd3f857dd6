/**
 * Finds and loads the native addon: the local build in a development
 * checkout, else the per-platform package (`sysv-shm-linux-x64-gnu`, …).
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import { constants as bufferConstants } from 'node:buffer'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import type * as Native from '../binding'
import type { ExternalObject } from '../binding'

import { ShmError } from './errors'

/** The platforms that have a prebuilt package. */
export const SUPPORTED_PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu', 'linux-x64-musl', 'linux-arm64-musl'] as const

function isMusl(): boolean {
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    if (report?.header) return !report.header.glibcVersionRuntime
  } catch {
    // fall through to the file check
  }
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

/** The platform triple of this process, as the package names use it. */
export function platformTriple(): string {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : ''
  return `${process.platform}-${process.arch}${abi}`
}

function load(): typeof Native {
  const override = process.env.SYSV_SHM_BINDING_PATH
  if (override) return require(override)
  const triple = platformTriple()
  const local = join(__dirname, '..', '..', `sysv-shm.${triple}.node`)
  if (existsSync(local)) return require(local)
  if (!(SUPPORTED_PLATFORMS as readonly string[]).includes(triple)) {
    throw new Error(
      `sysv-shm: no prebuilt binary for ${triple} (System V shared memory is supported on ` +
        `${SUPPORTED_PLATFORMS.join(', ')}).`,
    )
  }
  const name = `sysv-shm-${triple}`
  const libc = triple.endsWith('-musl') ? 'musl' : 'glibc'
  let binding: typeof Native
  try {
    binding = require(name)
  } catch (cause) {
    if (isMissing(cause, name)) {
      const wanted = ownVersion() === undefined ? name : `${name}@${ownVersion()}`
      throw new Error(
        `sysv-shm: the package ${name} could not be loaded: it holds the prebuilt binary for ${triple} ` +
          `and is not installed. Either optional dependencies were left out (npm install --omit=optional, ` +
          `--no-optional, or an omit=optional setting): reinstall without that; or npm could not fetch it ` +
          `(offline, or a registry mirror that does not carry it; npm skips an optional dependency it cannot get, ` +
          `silently): install it by name, \`npm install ${wanted}\`. (A node_modules installed on another ` +
          `machine needs \`npm install --os=linux --cpu=${process.arch} --libc=${libc}\`.)`,
        { cause },
      )
    }
    throw new Error(
      `sysv-shm: the package ${name} is installed but its binary failed to load ` +
        `(it needs Linux with ${libc === 'musl' ? 'musl libc' : 'glibc 2.17 or newer'}): ${(cause as Error)?.message ?? cause}`,
      { cause },
    )
  }
  warnOnVersionMismatch(name)
  return binding
}

/** Whether `require(name)` failed because the package `name` itself is absent. */
function isMissing(error: unknown, name: string): boolean {
  const e = error as NodeJS.ErrnoException | undefined
  return e?.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${name}'`)
}

/** This package's version, from its manifest; `undefined` if that cannot be read. */
function ownVersion(): string | undefined {
  try {
    return (require('../../package.json') as { version: string }).version
  } catch {
    return undefined
  }
}

/** A platform package of another version than this one may not match its JS: say so. */
function warnOnVersionMismatch(name: string): void {
  try {
    const own = ownVersion()
    const theirs = (require(`${name}/package.json`) as { version: string }).version
    if (own !== theirs) {
      process.emitWarning(`sysv-shm ${own} loaded ${name} ${theirs}; reinstall so that both have the same version.`)
    }
  } catch {
    // a manifest that cannot be read is no reason to fail the load
  }
}

/**
 * The hot paths' plain functions over a mapping's or a channel's External, registered by the
 * addon as bare Node-API callbacks (`crates/sysv-shm-node/src/hot.rs`, without napi-rs's per-call
 * glue), so napi-rs does not declare them: their declarations, as the Rust functions take them.
 */
export interface HotFunctions {
  channelClosed(handle: ExternalObject<'ChannelCopy'>): boolean
  channelNextLength(handle: ExternalObject<'ChannelCopy'>): number
  channelRecv(handle: ExternalObject<'ChannelCopy'>, timeoutMs?: number | undefined | null): Buffer | null
  channelRecvInto(handle: ExternalObject<'ChannelCopy'>, target: ArrayBufferView, timeoutMs?: number | undefined | null): number
  channelRecvMany(handle: ExternalObject<'ChannelCopy'>, target: ArrayBufferView, lengths: Uint32Array, timeoutMs?: number | undefined | null): number
  channelSend(handle: ExternalObject<'ChannelCopy'>, data: ArrayBufferView, timeoutMs?: number | undefined | null): boolean
  channelTryRecv(handle: ExternalObject<'ChannelCopy'>): Buffer | null
  channelTryRecvInto(handle: ExternalObject<'ChannelCopy'>, target: ArrayBufferView): number
  channelTrySend(handle: ExternalObject<'ChannelCopy'>, data: ArrayBufferView): boolean
  channelTrySendMany(handle: ExternalObject<'ChannelCopy'>, items: ArrayBufferView[]): number
  channelWake(handle: ExternalObject<'ChannelCopy'>, receiver: boolean): void
  mappingNotify(handle: ExternalObject<'CopyHandle'>, offset: number, count: number): number
  mappingReadInto(handle: ExternalObject<'CopyHandle'>, target: ArrayBufferView, offset: number): number
  mappingWait(handle: ExternalObject<'CopyHandle'>, offset: number, expected: number, timeoutMs?: number | undefined | null): 'ok' | 'not-equal' | 'timed-out'
  mappingWord(handle: ExternalObject<'CopyHandle'>, offset: number, op: number, a: number, b: number): number
  mappingWrite(handle: ExternalObject<'CopyHandle'>, source: ArrayBufferView, offset: number): number
}

/** The loaded addon, with `ShmError` registered for this JS environment and Node's largest Buffer length. */
export const native: typeof Native & HotFunctions = load() as typeof Native & HotFunctions
native.setErrorClass(ShmError)
native.setMaxBufferLength(bufferConstants.MAX_LENGTH)

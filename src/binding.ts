/**
 * Finds and loads the native addon: the local build in a development
 * checkout, else the per-platform package (`sysv-shm-linux-x64-gnu`, …).
 * @internal
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import type * as Native from '../binding'

import { ShmError } from './errors'

/** The platforms that have a prebuilt package. */
export const SUPPORTED_PLATFORMS = ['linux-x64-gnu', 'linux-arm64-gnu'] as const

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
  try {
    return require(`sysv-shm-${triple}`)
  } catch (cause) {
    throw new Error(
      `sysv-shm: the package sysv-shm-${triple} could not be loaded; reinstall without ` +
        `--omit=optional (or --no-optional) so npm installs it.`,
      { cause },
    )
  }
}

/** The loaded addon, with `ShmError` registered for this JS environment. */
export const native: typeof Native = load()
native.setErrorClass(ShmError)

// The prebuilt platforms, derived from the `napi.targets` of package.json, and
// the paths the prebuilt scripts share (scripts/setup-cross.sh uses the same).
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
export const binaryName = pkg.napi.binaryName

/** What each Rust target triple is called in Node.js terms. */
const KNOWN = {
  'x86_64-unknown-linux-gnu': { arch: 'x64', libc: 'glibc', abi: 'gnu' },
  'aarch64-unknown-linux-gnu': { arch: 'arm64', libc: 'glibc', abi: 'gnu' },
  // Built by scripts/musl.sh (napi's cross toolchains are glibc only).
  'x86_64-unknown-linux-musl': { arch: 'x64', libc: 'musl', abi: 'musl' },
  'aarch64-unknown-linux-musl': { arch: 'arm64', libc: 'musl', abi: 'musl' },
}

/**
 * One entry per `napi.targets` triple: the platform name (`linux-x64-gnu`),
 * Node's arch, the npm package, its folder in npm/ and the `.node` file name.
 */
export const platforms = pkg.napi.targets.map((triple) => {
  const known = KNOWN[triple]
  if (!known) throw new Error(`scripts/lib/platforms.mjs: add ${triple} to KNOWN`)
  const platform = `linux-${known.arch}-${known.abi}`
  return {
    triple,
    ...known,
    platform,
    packageName: `${pkg.name}-${platform}`,
    dir: join(root, 'npm', platform),
    nodeFile: `${binaryName}.${platform}.node`,
  }
})

export const tools = process.env.SYSV_SHM_TOOLS || join(homedir(), '.cache', 'sysv-shm-tools')
export const nodeArm64 = join(tools, 'node-arm64', 'bin', 'node')
export const verdaccioBin = join(tools, 'registry', 'node_modules', 'verdaccio', 'bin', 'verdaccio')
export const artifactsDir = join(root, 'artifacts')

/** The glibc platforms (built with napi's cross toolchains) and the musl ones (scripts/musl.sh). */
export const gnuPlatforms = platforms.filter((p) => p.libc === 'glibc')
export const muslPlatforms = platforms.filter((p) => p.libc === 'musl')

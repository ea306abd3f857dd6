#!/usr/bin/env node
// Checks that the npm/<platform>/package.json manifests agree with the root
// package.json and with `napi.targets`: name, the root's exact version, its
// license, repository and engines, os/cpu/libc, and `main` naming the `.node`;
// and that no manifest has an install-time script. With --fix, rewrites the
// fields that follow the root (run by the `version` script on `npm version`).
import { readFileSync, writeFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { join } from 'node:path'

import { pkg, platforms } from './lib/platforms.mjs'

/** Scripts npm would run when a user installs the package. */
export const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall']

/** The manifest npm/<platform>/package.json must have, built from the root one. */
export function expectedManifest(p, current = {}) {
  return {
    ...current,
    name: p.packageName,
    version: pkg.version,
    license: pkg.license,
    repository: pkg.repository,
    engines: pkg.engines,
    os: ['linux'],
    cpu: [p.arch],
    libc: [p.libc],
    main: p.nodeFile,
    files: [p.nodeFile],
  }
}

/** Returns the list of problems (empty when all is well). */
export function checkPackages({ fix = false } = {}) {
  const problems = []
  for (const script of INSTALL_SCRIPTS) {
    if (pkg.scripts?.[script]) problems.push(`package.json has a "${script}" script: users must not run anything at install`)
  }
  if (pkg.gypfile) problems.push('package.json has "gypfile": npm would run node-gyp at install')
  for (const p of platforms) {
    const file = join(p.dir, 'package.json')
    const current = JSON.parse(readFileSync(file, 'utf8'))
    const want = expectedManifest(p, current)
    if (fix && !isDeepStrictEqual(current, want)) {
      writeFileSync(file, `${JSON.stringify(want, null, 2)}\n`)
      console.log(`check-packages: updated npm/${p.platform}/package.json`)
      continue
    }
    for (const [key, value] of Object.entries(want)) {
      if (!isDeepStrictEqual(current[key], value)) {
        problems.push(`npm/${p.platform}/package.json: "${key}" is ${JSON.stringify(current[key])}, expected ${JSON.stringify(value)}`)
      }
    }
    for (const script of INSTALL_SCRIPTS) {
      if (current.scripts?.[script]) problems.push(`npm/${p.platform}/package.json has a "${script}" script`)
    }
  }
  return problems
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = checkPackages({ fix: process.argv.includes('--fix') })
  for (const problem of problems) console.error(`check-packages: ${problem}`)
  if (problems.length) {
    console.error('check-packages: run `node scripts/check-packages.mjs --fix` to sync the platform manifests')
    process.exit(1)
  }
  console.log(`check-packages: ok (${platforms.map((p) => `${p.packageName}@${pkg.version}`).join(', ')})`)
}

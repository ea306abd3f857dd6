// Packs the root package as it is published: the files `npm pack` would take,
// staged in target/prebuilt/stage/<name> with the publish manifest
// (`optionalDependencies` on every platform package at exactly the root's
// version; no `scripts`, `devDependencies` or `ava` config). Used by
// scripts/pack-all.mjs and scripts/test-types.mjs.
//
// The optional dependencies are added here rather than in the checked-in
// package.json, as napi-rs's `prepublish` does, because `npm ci` refuses a
// package.json that lists packages that are not on the registry yet (each new
// version, before its release), and it would then break every clean checkout.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

import { INSTALL_SCRIPTS } from '../check-packages.mjs'
import { pkg, platforms, root } from './platforms.mjs'

/** `npm pack --json` of DIR into DEST; returns npm's report. */
export function npmPack(dir, dest, extra = []) {
  const out = execFileSync('npm', ['pack', dir, '--json', '--ignore-scripts', '--pack-destination', dest, ...extra], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out)[0]
}

/**
 * Rebuilds dist/ afresh (tsc never deletes the output of a source that is
 * gone) and packs the root package into DEST; returns npm's report. With
 * `platformPackages: false` the manifest names no platform package (for a
 * consumer that only type-checks, so that npm never looks them up).
 */
export function packRoot(dest, { platformPackages = true } = {}) {
  rmSync(join(root, 'dist'), { recursive: true, force: true })
  execFileSync('npm', ['run', 'build:ts', '--silent'], { cwd: root, stdio: 'inherit' })
  const dryRun = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }),
  )[0]
  const stage = join(root, 'target', 'prebuilt', 'stage', pkg.name)
  rmSync(stage, { recursive: true, force: true })
  for (const { path } of dryRun.files) {
    if (path === 'package.json') continue
    if (path.endsWith('.node')) throw new Error(`the root package would ship ${path}: binaries belong in the platform packages`)
    mkdirSync(dirname(join(stage, path)), { recursive: true })
    copyFileSync(join(root, path), join(stage, path))
  }
  const { scripts: _scripts, devDependencies: _dev, ava: _ava, ...manifest } = pkg
  if (platformPackages) {
    manifest.optionalDependencies = {
      ...pkg.optionalDependencies,
      ...Object.fromEntries(platforms.map((p) => [p.packageName, pkg.version])),
    }
  }
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  for (const script of INSTALL_SCRIPTS) {
    if (manifest.scripts?.[script]) throw new Error(`the root manifest has a ${script} script`)
  }
  const report = npmPack(stage, dest)
  for (const need of ['package.json', 'dist/index.js', 'dist/index.d.ts']) {
    if (!report.files.some((f) => f.path === need)) throw new Error(`${report.filename} lacks ${need}`)
  }
  return report
}

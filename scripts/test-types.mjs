#!/usr/bin/env node
// `npm run test:types`: the published typings compile for every user.
//
// 1. Packs the root package as it is published (scripts/lib/pack-root.mjs;
//    without the platform packages: type-checking needs no binary) and
//    installs the tarball into a throwaway consumer, `npm install <tgz>
//    --ignore-scripts`, which brings what the package depends on for its
//    types (@types/node) and nothing of the repository.
// 2. Lists every export of the installed `dist/index.d.ts` (TypeScript's
//    compiler API: values and types), and writes a file that imports and uses
//    each one, plus code that only compiles if the types are really loaded
//    (Buffer, `using`/Symbol.dispose, a @ts-expect-error). A new export
//    cannot be missed.
// 3. For each pinned TypeScript (TS_VERSIONS; installed once into
//    ~/.cache/sysv-shm-tools/typescript/<v>, SYSV_SHM_TOOLS moves it) and
//    each consumer kind (CommonJS + node16, ES module + nodenext, bundler),
//    runs `tsc --noEmit` with no option beyond `strict` and the module
//    settings, over that file and every .d.ts the tarball ships
//    (skipLibCheck off). Any error fails.
// Before that, each shipped .d.ts that uses a Node global or module, or
// Disposable, must say so itself (`/// <reference types="node" />`,
// `/// <reference lib="esnext.disposable" />`): a file that relies on another
// file's reference would compile here and break a program that loads it alone.
// Ends with "test-types: N passed, M failed".
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'

import { packRoot } from './lib/pack-root.mjs'
import { pkg, root, tools } from './lib/platforms.mjs'

/** The TypeScript releases the typings must compile under, one per major (exact versions). */
export const TS_VERSIONS = ['5.9.3', '6.0.3', '7.0.2']

/** The consumer kinds: the `type` of their package.json and their compiler options. */
const CONSUMERS = {
  'cjs-node16': { type: 'commonjs', file: 'use.cts', options: { module: 'node16' } },
  'esm-nodenext': { type: 'module', file: 'use.mts', options: { module: 'nodenext' } },
  bundler: { type: 'module', file: 'use.ts', options: { module: 'esnext', moduleResolution: 'bundler' } },
}

const started = Date.now()
const log = (msg) => console.log(`test-types: [${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`)
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/** The path of `tsc` of TypeScript VERSION, installed into the tools cache on first use. */
function typescript(version) {
  const dir = join(tools, 'typescript', version)
  const tsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc')
  const installed = join(dir, 'node_modules', 'typescript', 'package.json')
  if (existsSync(installed) && JSON.parse(readFileSync(installed, 'utf8')).version === version) return tsc
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), '{ "private": true }\n')
  log(`installing typescript@${version} into ${dir}`)
  run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `typescript@${version}`], dir)
  return tsc
}

/** Every export of the .d.ts ENTRY: `{ values, types }`, names sorted. */
function exportsOf(entry) {
  const ts = createRequire(join(root, 'package.json'))('typescript')
  const program = ts.createProgram([entry], { strict: true, noEmit: true, types: [] })
  const checker = program.getTypeChecker()
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry))
  const values = []
  const types = []
  for (const symbol of checker.getExportsOfModule(module)) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
    if (target.flags & ts.SymbolFlags.Value) values.push(symbol.name)
    else if (target.flags & ts.SymbolFlags.Type) {
      const generic = target.declarations?.some((d) => d.typeParameters?.some((p) => !p.default))
      if (generic) throw new Error(`export ${symbol.name} is generic: teach test-types.mjs its type arguments`)
      types.push(symbol.name)
    } else throw new Error(`export ${symbol.name} is neither a value nor a type`)
  }
  return { values: values.sort(), types: types.sort() }
}

/** What a shipped .d.ts needs a reference for: a Node global or module, Disposable. */
const NEEDS = [
  { uses: /\b(Buffer|AbortSignal|URL|NodeJS)\b|from 'node:/, reference: '/// <reference types="node"' },
  { uses: /\bDisposable\b|Symbol\.dispose\b/, reference: '/// <reference lib="esnext.disposable"' },
]

/** The problems of the .d.ts TEXT named FILE: a use without its reference. */
function missingReferences(file, text) {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '') // doc comments mention these names freely
  return NEEDS.filter(({ uses, reference }) => uses.test(code) && !text.includes(reference)).map(
    ({ reference }) => `${file} lacks ${reference} />`,
  )
}

/** The consumer's source: imports every export and uses it, and some of the API's types. */
function consumerSource({ values, types }) {
  return `// Generated by scripts/test-types.mjs: every export of ${pkg.name}, used.
import * as all from '${pkg.name}'
import { ${values.join(', ')} } from '${pkg.name}'
import type { ${types.join(', ')} } from '${pkg.name}'

export const values = [${values.join(', ')}] as const
export type Types = [${types.join(', ')}]
export const namespace: typeof all.SharedMemory = all.SharedMemory

// The Node globals the typings use come with them (@types/node), and so does Disposable.
export function use(shm: SharedMemory, channel: Channel, queue: MessageQueue): number {
  using scoped = SharedMemory.open(shm.stat().key)
  const bytes: Buffer = scoped.read(0, 4)
  const message: Buffer | null = channel.tryRecv()
  const received: QueueMessage | null = queue.tryReceive()
  const disposable: Disposable = shm
  disposable[Symbol.dispose]()
  // @ts-expect-error read() returns a Buffer, not a string: holds only if the types are loaded
  const wrong: string = shm.read(0, 4)
  return bytes.length + (message?.length ?? 0) + (received === null ? 0 : 1) + wrong.length
}
`
}

let passed = 0
let failed = 0

const work = mkdtempSync(join(tmpdir(), 'sysv-shm-test-types-'))
try {
  const report = packRoot(work, { platformPackages: false })
  const tarball = join(work, report.filename)
  const declarations = report.files.map((f) => f.path).filter((p) => p.endsWith('.d.ts'))
  log(`packed ${report.filename}: ${declarations.length} .d.ts files`)

  const consumer = join(work, 'consumer')
  mkdirSync(consumer)
  writeFileSync(join(consumer, 'package.json'), '{ "name": "consumer", "private": true }\n')
  run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', tarball], consumer)
  const installed = join(consumer, 'node_modules', pkg.name)
  const types = JSON.parse(readFileSync(join(consumer, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version
  const exported = exportsOf(join(installed, 'dist', 'index.d.ts'))
  log(`installed into ${consumer} (with @types/node ${types}); ${exported.values.length} value and ${exported.types.length} type exports`)
  const source = consumerSource(exported)
  const problems = declarations.flatMap((p) => missingReferences(p, readFileSync(join(installed, p), 'utf8')))
  if (problems.length) {
    failed++
    log(`FAIL references:\n${problems.join('\n')}`)
  } else {
    passed++
    log(`ok every .d.ts references what it uses`)
  }

  for (const [kind, { type, file, options }] of Object.entries(CONSUMERS)) {
    const dir = join(consumer, kind)
    mkdirSync(dir)
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ type, private: true })}\n`)
    writeFileSync(join(dir, file), source)
    const compilerOptions = { strict: true, noEmit: true, target: 'es2022', ...options }
    const files = [file, ...declarations.map((p) => join('..', 'node_modules', pkg.name, p))]
    writeFileSync(join(dir, 'tsconfig.json'), `${JSON.stringify({ compilerOptions, files }, null, 2)}\n`)
  }

  // Each compile loads all of @types/node: they run side by side, as many as there are cores.
  const jobs = TS_VERSIONS.flatMap((version) => Object.keys(CONSUMERS).map((kind) => ({ version, kind, tsc: typescript(version) })))
  const compile = ({ version, kind, tsc }) =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: join(consumer, kind) })
      let output = ''
      child.stdout.on('data', (d) => (output += d))
      child.stderr.on('data', (d) => (output += d))
      child.on('close', (status) => {
        if (status === 0) {
          passed++
          log(`ok typescript ${version}, ${kind}`)
        } else {
          failed++
          log(`FAIL typescript ${version}, ${kind} (exit ${status}):\n${output}`)
        }
        resolve()
      })
    })
  const next = async () => {
    for (let job = jobs.shift(); job; job = jobs.shift()) await compile(job)
  }
  await Promise.all(Array.from({ length: Math.max(1, availableParallelism()) }, next))
} finally {
  rmSync(work, { recursive: true, force: true })
}
log(`${passed} passed, ${failed} failed`)
process.exit(failed || passed === 0 ? 1 : 0)

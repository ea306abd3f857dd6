// The code blocks of README.md and docs/guide.md are complete programs that
// compile and run, unless the Markdown marks them otherwise on the line before
// the fence:
//
//   <!-- fragment -->       part of a program (names from the text around it): not run
//   <!-- pair: NAME -->     one of two processes: run at the same time as the other block of NAME
//   <!-- file: PATH -->     the file PATH of the repository (less its leading // comment), which a test runs
//
// A `ts` or `js` block with no marker is complete: the TS ones are type-checked
// together (strict, module nodenext, as ES modules `.mts`) against the built
// package, as a user's project imports it (node_modules/sysv-shm), and every
// one runs, in a private IPC namespace of its own, and must exit 0 and leave no
// segment, queue or semaphore set behind (ipcs in that namespace afterwards).
// `sh`/`console` blocks are commands: each `npm run X` must be a script of
// package.json, and each `sysv-shm CMD [SUB]` a command of the CLI. Blocks of
// other languages (C, Python) must be marked.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { NO_NAMESPACE, ipcNamespace } from './helpers.mjs'
import { ROOT, cli } from './interop/helpers.mjs'

const DOCS = ['README.md', 'docs/guide.md']
const CODE = new Set(['ts', 'js'])
const COMMANDS = new Set(['sh', 'console'])

/** Every fenced block of FILE: `{ file, line, lang, marker, code }`; `marker` is `{ kind, value }` or null. */
function blocks(file) {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  const found = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)```(\S*)/.exec(lines[i])
    if (!open) continue
    const indent = open[1].length
    let end = i + 1
    while (end < lines.length && !/^ *```\s*$/.test(lines[end])) end++
    let before = i - 1
    while (before >= 0 && lines[before].trim() === '') before--
    const m = before >= 0 ? /^\s*<!-- (fragment|pair|file)(?::\s*(\S+))? -->\s*$/.exec(lines[before]) : null
    found.push({
      file,
      line: i + 1,
      lang: open[2],
      marker: m ? { kind: m[1], value: m[2] } : null,
      code: lines.slice(i + 1, end).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join('\n') + '\n',
    })
    i = end
  }
  return found
}

const all = DOCS.flatMap(blocks)
const where = (b) => `${b.file}:${b.line}`

test('every block is complete or marked: code in ts/js, commands in sh/console, anything else marked', (t) => {
  t.true(all.length > 30, `found ${all.length} blocks`)
  for (const b of all) {
    if (CODE.has(b.lang) || COMMANDS.has(b.lang)) continue
    t.truthy(b.marker, `${where(b)}: a \`${b.lang}\` block must be marked <!-- fragment --> or <!-- file: PATH -->`)
  }
  const pairs = new Map()
  for (const b of all.filter((x) => x.marker?.kind === 'pair')) pairs.set(b.marker.value, [...(pairs.get(b.marker.value) ?? []), b])
  for (const [name, members] of pairs) t.is(members.length, 2, `pair ${name}: ${members.map(where).join(', ')}`)
})

test('<!-- file: PATH --> blocks are that file', (t) => {
  const files = all.filter((b) => b.marker?.kind === 'file')
  t.true(files.length > 0)
  for (const b of files) {
    const text = readFileSync(join(ROOT, b.marker.value), 'utf8')
    const body = text.replace(/^(\/\/[^\n]*\n)+\n?/, '')
    t.is(b.code, body, `${where(b)} is ${b.marker.value} below its header comment`)
  }
})

test('sh and console blocks name npm scripts and CLI commands that exist', async (t) => {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  const commands = (await cli(['--help'])).stdout
  let checked = 0
  for (const b of all.filter((x) => COMMANDS.has(x.lang) && x.marker?.kind !== 'fragment')) {
    for (const [, script] of b.code.matchAll(/npm run ([\w:-]+)/g)) {
      checked++
      t.truthy(scripts[script], `${where(b)}: npm run ${script} is not a script of package.json`)
    }
    for (const [, command, sub] of b.code.matchAll(/(?:^|\$ |npx )sysv-shm (\w+)(?: (\w+))?/gm)) {
      checked++
      t.regex(commands, new RegExp(`^  ${command} `, 'm'), `${where(b)}: sysv-shm ${command} is not a command`)
      if (['sem', 'queue'].includes(command) && sub) {
        const help = (await cli([command, '--help'])).stdout
        t.regex(help, new RegExp(`^  ${sub} `, 'm'), `${where(b)}: sysv-shm ${command} ${sub} is not a subcommand`)
      }
    }
  }
  t.true(checked > 10, `checked ${checked} commands`)
})

// ------------------------------------------------------------------ the complete programs

const programs = all.filter((b) => CODE.has(b.lang) && (!b.marker || b.marker.kind === 'pair'))
const name = (b) => `${b.file.replace(/\W/g, '_')}_${b.line}.${b.lang === 'ts' ? 'mts' : 'mjs'}`

/** A user's project: node_modules/sysv-shm is this checkout (built), the blocks are its files; TS compiled to out/. */
let project
function setUp() {
  if (project) return project
  const dir = mkdtempSync(join(tmpdir(), 'sysv-shm-docs-'))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(ROOT, join(dir, 'node_modules', 'sysv-shm'))
  writeFileSync(join(dir, 'package.json'), '{ "private": true, "type": "module" }\n')
  for (const b of programs) writeFileSync(join(dir, name(b)), b.code)
  const ts = programs.filter((b) => b.lang === 'ts').map(name)
  const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc')
  const compilerOptions = { strict: true, module: 'nodenext', target: 'es2022', outDir: 'out', rootDir: '.' }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ts }))
  const r = spawnSync(process.execPath, [tsc, '-p', '.', '--pretty', 'false'], { cwd: dir, encoding: 'utf8' })
  project = { dir, compiled: r, run: (b) => join(dir, b.lang === 'ts' ? join('out', name(b).replace(/\.mts$/, '.mjs')) : name(b)) }
  return project
}
test.after.always(() => project && rmSync(project.dir, { recursive: true, force: true }))

test('the complete TypeScript blocks type-check against the built package (strict, nodenext, ESM)', (t) => {
  const { compiled } = setUp()
  t.true(programs.some((b) => b.lang === 'ts'))
  t.is(compiled.status, 0, `${compiled.stdout}${compiled.stderr}`)
})

/**
 * Runs FILES at the same time in one new IPC namespace, then `ipcs` there: resolves to
 * `{ code, output, left }`, `left` the ipcs rows of objects still there.
 */
async function inNamespace(files) {
  const wrap = ipcNamespace()
  if (!wrap) throw new Error(NO_NAMESPACE)
  const script = `pids=""; for f in "$@"; do node "$f" & pids="$pids $!"; done
code=0; for p in $pids; do wait $p || code=$?; done; echo "--- ipcs"; ipcs -a; exit $code`
  const child = spawn(wrap[0], [...wrap.slice(1), 'sh', '-c', script, 'sh', ...files], {
    cwd: setUp().dir,
    env: { ...process.env, TZ: 'UTC' },
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const [code] = await once(child, 'close')
  const ipcs = output.slice(output.indexOf('--- ipcs'))
  return { code, output, left: ipcs.split('\n').filter((l) => /^0x[0-9a-f]{8}\s/.test(l)) }
}

const runs = new Map()
for (const b of programs) {
  const key = b.marker?.kind === 'pair' ? `pair ${b.marker.value}` : where(b)
  runs.set(key, [...(runs.get(key) ?? []), b])
}
for (const [label, members] of runs) {
  test(`runs: ${label}${members.length > 1 ? ` (${members.map(where).join(' and ')}, as two processes)` : ''}`, async (t) => {
    const { compiled, run } = setUp()
    if (members.some((b) => b.lang === 'ts')) t.is(compiled.status, 0, 'the TypeScript blocks compile')
    const r = await inNamespace(members.map(run))
    t.is(r.code, 0, r.output)
    t.deepEqual(r.left, [], `it leaves nothing behind:\n${r.output}`)
  })
}

/**
 * `sysv-shm`: the command line. Parses the subcommand and its options,
 * runs it, and maps the outcome to an exit code: 0 done, 1 an operation
 * failed, 2 a usage error.
 * @internal
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'

import type { Command } from './command'
import { COMMANDS } from './commands'
import { err, out } from './io'
import { UsageError } from './parse'

type Options = NonNullable<ParseArgsConfig['options']>

/** Exit codes of the command line. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string }
    return pkg.version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function mainHelp(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((n) => n.length))
  const list = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(w)}  ${c.summary}`)
    .join('\n')
  return `Usage: sysv-shm <command> [options]

System V shared memory segments: list, inspect, remove, dump; kernel limits; ftok keys;
message queues (queue ls|stat|rm, ls -q) and semaphore sets (sem ls|stat|rm, ls -s).

Commands:
${list}

Run 'sysv-shm <command> --help' for the options of a command.
Numbers (ids, keys, offsets) may be decimal or 0x hex, as ipcs prints keys.

Exit codes: 0 success, 1 an operation failed (the error is on stderr, with
its errno name), 2 usage error.

Options:
  -h, --help     show this help
  -V, --version  print the version
`
}

function isParseArgsError(e: unknown): e is Error {
  const code = (e as { code?: unknown } | null)?.code
  return e instanceof Error && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}

/** Runs the command line `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    err(mainHelp().trimEnd())
    return EXIT.usage
  }
  if (name === '-h' || name === '--help') {
    await out(mainHelp())
    return EXIT.ok
  }
  if (name === '-V' || name === '--version') {
    await out(version() + '\n')
    return EXIT.ok
  }
  if (name === 'help') {
    if (rest[0] === undefined) {
      await out(mainHelp())
      return EXIT.ok
    }
    return help(rest)
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) {
    err(`sysv-shm: unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}. Run 'sysv-shm --help'`)
    return EXIT.usage
  }
  if (command.subcommands) return group(name, command, command.subcommands, rest)
  return runCommand(name, command, rest)
}

/** A command of subcommands (`sysv-shm sem ls`): picks the subcommand and runs it. */
async function group(name: string, command: Command, subcommands: Record<string, Command>, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === '-h' || sub === '--help' || (sub === 'help' && rest.length === 0)) {
    await out(command.help)
    return EXIT.ok
  }
  if (sub === 'help') return help([name, ...rest])
  const c = sub !== undefined && Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined
  if (!c) {
    const what = sub === undefined ? 'give a subcommand' : `unknown subcommand ${JSON.stringify(sub)}`
    err(`sysv-shm ${name}: ${what}; subcommands: ${Object.keys(subcommands).join(', ')}.\nRun 'sysv-shm ${name} --help' for usage.`)
    return EXIT.usage
  }
  return runCommand(`${name} ${sub}`, c, rest)
}

/** `sysv-shm help COMMAND [SUBCOMMAND]`. */
async function help(words: string[]): Promise<number> {
  const [about, sub] = words
  const c = about !== undefined && Object.hasOwn(COMMANDS, about) ? COMMANDS[about] : undefined
  if (!c) {
    err(`sysv-shm: unknown command ${JSON.stringify(about)}; run 'sysv-shm --help'`)
    return EXIT.usage
  }
  if (sub === undefined) {
    await out(c.help)
    return EXIT.ok
  }
  const s = c.subcommands && Object.hasOwn(c.subcommands, sub) ? c.subcommands[sub] : undefined
  if (!s) {
    err(`sysv-shm: ${about} has no subcommand ${JSON.stringify(sub)}; run 'sysv-shm ${about} --help'`)
    return EXIT.usage
  }
  await out(s.help)
  return EXIT.ok
}

/**
 * `--key -2` as `--key=-2`: a negative number after an option that takes a value is
 * that value (keys may be negative decimals, as C's signed `key_t` prints them),
 * where `parseArgs` would call it ambiguous.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const takesValue = new Set<string>()
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== 'string') continue
    takesValue.add(`--${name}`)
    if (o.short) takesValue.add(`-${o.short}`)
  }
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--') {
      joined.push(...args.slice(i))
      break
    }
    const next = args[i + 1]
    if (takesValue.has(arg) && next !== undefined && /^-[0-9]/.test(next)) {
      joined.push(arg.startsWith('--') ? `${arg}=${next}` : `${arg}${next}`)
      i++
    } else joined.push(arg)
  }
  return joined
}

/**
 * The message of a `parseArgs` error in this command line's words: Node's text
 * suggests quoting that makes no sense here (`as in '-- "-q"'`).
 */
function usageMessage(e: Error & { code?: unknown }, label: string, options: Options): string {
  const option = /'(-[^' ]*)/.exec(e.message)?.[1]
  const names = Object.entries(options)
    .map(([name, o]) => (o.short ? `-${o.short}, --${name}` : `--${name}`))
    .join(', ')
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `Unknown option '${option}'; ${label} takes ${names}${MOVED[`${label} ${option}`] ?? ''}`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const o = option?.replace(/^--?/, '')
      const entry = o === undefined ? undefined : Object.entries(options).find(([name, v]) => name === o || v.short === o)
      if (entry && entry[1].type === 'boolean') return `option '--${entry[0]}' takes no value`
      return `option '${option}' needs a value`
    }
    default:
      return e.message.split('\n')[0]!
  }
}

/** Options of other commands that users reach for: where that command lives. */
const MOVED: Record<string, string> = {
  'rm -q': "; message queues: 'sysv-shm queue rm'",
  'rm --queues': "; message queues: 'sysv-shm queue rm'",
  'stat -q': "; message queues: 'sysv-shm queue stat'",
  'stat --queues': "; message queues: 'sysv-shm queue stat'",
  'rm -s': "; semaphore sets: 'sysv-shm sem rm'",
  'rm --semaphores': "; semaphore sets: 'sysv-shm sem rm'",
  'stat -s': "; semaphore sets: 'sysv-shm sem stat'",
  'stat --semaphores': "; semaphore sets: 'sysv-shm sem stat'",
}

/** Parses the options of `command` and runs it; `label` names it in messages (`ls`, `sem ls`). */
async function runCommand(label: string, command: Command, args: string[]): Promise<number> {
  const options: Options = { ...command.options, help: { type: 'boolean', short: 'h' } }
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(args, options),
      options,
      allowPositionals: true,
      strict: true,
    })
    if (values.help) {
      await out(command.help)
      return EXIT.ok
    }
    return await command.run(values as Parameters<Command['run']>[0], positionals)
  } catch (e) {
    if (e instanceof UsageError || isParseArgsError(e)) {
      const message = e instanceof UsageError ? e.message : usageMessage(e, label, options)
      err(`sysv-shm ${label}: ${message}\nRun 'sysv-shm ${label} --help' for usage.`)
      return EXIT.usage
    }
    const code = (e as { code?: unknown } | null)?.code
    err(`sysv-shm ${label}: ${typeof code === 'string' ? code + ': ' : ''}${e instanceof Error ? e.message : String(e)}`)
    return EXIT.failed
  }
}

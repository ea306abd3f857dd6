/**
 * `sysv-shm`: the command line. Parses the subcommand and its options,
 * runs it, and maps the outcome to an exit code: 0 done, 1 an operation
 * failed, 2 a usage error.
 * @internal
 * @module
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

import { COMMANDS, type Command } from './commands'
import { err, out } from './io'
import { UsageError } from './parse'

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
message queues (ls -q) and semaphore sets (sem ls|stat|rm, ls -s).

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

/** Parses the options of `command` and runs it; `label` names it in messages (`ls`, `sem ls`). */
async function runCommand(label: string, command: Command, args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
    if (values.help) {
      await out(command.help)
      return EXIT.ok
    }
    return await command.run(values, positionals)
  } catch (e) {
    if (e instanceof UsageError || isParseArgsError(e)) {
      err(`sysv-shm ${label}: ${e.message}\nRun 'sysv-shm ${label} --help' for usage.`)
      return EXIT.usage
    }
    const code = (e as { code?: unknown } | null)?.code
    err(`sysv-shm ${label}: ${typeof code === 'string' ? code + ': ' : ''}${e instanceof Error ? e.message : String(e)}`)
    return EXIT.failed
  }
}

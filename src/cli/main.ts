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

import { COMMANDS } from './commands'
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

System V shared memory segments: list, inspect, remove, dump; kernel limits; ftok keys.

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
    const about = rest[0]
    if (about === undefined) {
      await out(mainHelp())
      return EXIT.ok
    }
    const c = COMMANDS[about]
    if (!c) {
      err(`sysv-shm: unknown command ${JSON.stringify(about)}; run 'sysv-shm --help'`)
      return EXIT.usage
    }
    await out(c.help)
    return EXIT.ok
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) {
    err(`sysv-shm: unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(', ')}. Run 'sysv-shm --help'`)
    return EXIT.usage
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
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
      err(`sysv-shm ${name}: ${e.message}\nRun 'sysv-shm ${name} --help' for usage.`)
      return EXIT.usage
    }
    const code = (e as { code?: unknown } | null)?.code
    err(`sysv-shm ${name}: ${typeof code === 'string' ? code + ': ' : ''}${e instanceof Error ? e.message : String(e)}`)
    return EXIT.failed
  }
}

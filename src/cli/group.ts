/**
 * A command of subcommands (`sysv-shm sem ls`, `sysv-shm queue rm`): its help
 * lists them; src/cli/main.ts picks and runs the one named.
 * @internal
 * @module
 */
import type { Command } from './command'
import { UsageError } from './parse'

/**
 * The command `name` (`sem`) of SUBCOMMANDS: `what` says what it handles
 * (`System V semaphore sets.`), `alias` which `ls` flag lists the same.
 */
export function commandGroup(name: string, summary: string, what: string, alias: string, subcommands: Record<string, Command>): Command {
  const names = Object.keys(subcommands)
  return {
    summary,
    help: `Usage: sysv-shm ${name} <subcommand> [options]

${what}

Subcommands:
${Object.entries(subcommands)
  .map(([sub, c]) => `  ${sub.padEnd(4)}  ${c.summary}`)
  .join('\n')}

Run 'sysv-shm ${name} <subcommand> --help' (or 'sysv-shm help ${name} <subcommand>')
for its options. 'sysv-shm ${alias}' is 'sysv-shm ${name} ls'.
`,
    options: {},
    run() {
      return Promise.reject(new UsageError(`give a subcommand: ${names.slice(0, -1).join(', ')} or ${names.at(-1)}`))
    },
    subcommands,
  }
}

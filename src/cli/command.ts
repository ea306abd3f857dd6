/**
 * What every `sysv-shm` command is: its help, its options and how it runs.
 * A module of its own so that the command files (commands.ts, queues.ts,
 * semaphores.ts, group.ts) share the type without importing each other.
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />
import type { ParseArgsConfig } from 'node:util'

/** The options of a command, as `util.parseArgs` takes them. */
export type Options = NonNullable<ParseArgsConfig['options']>
/** The values `util.parseArgs` parsed. */
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>

export interface Command {
  summary: string
  help: string
  options: Options
  run(values: Values, positionals: string[]): Promise<number>
  /** A command of subcommands (`sem ls`, `sem stat`): `run` is not called, the subcommand's is. */
  subcommands?: Record<string, Command>
}

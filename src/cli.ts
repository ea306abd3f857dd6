#!/usr/bin/env node
/**
 * The `sysv-shm` command (`npx sysv-shm --help`). See src/cli/main.ts.
 * @internal
 * @module
 */
import type * as Main from './cli/main'

// A broken stdout (`sysv-shm ls | head -1`) ends the command quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0)
  throw e
})

let cli: typeof Main
try {
  // Loading the addon can fail (no prebuilt binary for this platform): say so, exit 1.
  cli = require('./cli/main') as typeof Main
} catch (e) {
  process.stderr.write(`sysv-shm: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exit(1)
}

cli.main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`sysv-shm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    process.exitCode = 1
  },
)

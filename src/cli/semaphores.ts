/**
 * `sysv-shm sem ls|stat|rm` (and `ls -s`): semaphore sets, like `ipcs -s`,
 * `ipcs -s -i ID` and `ipcrm -s`.
 * @internal
 * @module
 */

import { ShmError } from '../errors'
import { Semaphore, listSemaphores, type SemaphoreInfo } from '../semaphore'
import type { Command } from './command'
import * as f from './format'
import { commandGroup } from './group'
import { SEMAPHORES, json, lsKind, statAny, type SemaphoreJson } from './kinds'
import { byKey, describe, err, failureJson, out, type Hints } from './io'
import { UsageError, noPrivateKey, parseId, parseKey } from './parse'
import { pidState } from './procs'

const HINTS: Hints = {
  EINVAL: 'no semaphore set has this id',
  EIDRM: 'the semaphore set has been removed',
  EACCES: "the set's mode does not let you read it",
  EPERM: 'only its owner, its creator or a privileged user may do this',
}

/** One semaphore of a set in `sem stat --json`. */
export interface SemaphoreValueJson {
  index: number
  value: number
  /** ncount: processes waiting for the value to increase. */
  forIncrease: number
  /** zcount: processes waiting for the value to become 0. */
  forZero: number
  /** sempid: the last process that operated on it. */
  lastPid: number
}

const FILTERS = `  --key KEY          only the set of this key (0x hex or decimal; 0 lists IPC_PRIVATE ones)
  --mine             only sets you own or created
  --older-than DUR   only sets with no semop and no change for DUR (30s, 10m, 2h, 1d, 1w)`

const ls: Command = {
  summary: 'list semaphore sets, like ipcs -s',
  help: `Usage: sysv-shm sem ls [-l] [--json] [--key KEY] [--mine] [--older-than DUR]
       (the same as sysv-shm ls -s)

Lists every semaphore set of this IPC namespace, like ipcs -s, in the
kernel's order: key (hex), semid, owner, permissions (rwx and octal) and the
number of semaphores (nsems).

Options:
  -l, --long         add group, creator user and group, the last semop time
                     and the last change time (like ipcs -s -c and -t)
  --json             print a JSON array of sets with every field (see docs/guide.md)
${FILTERS}
  -h, --help         show this help
`,
  options: {
    long: { type: 'boolean', short: 'l' },
    key: { type: 'string' },
    mine: { type: 'boolean' },
    'older-than': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
    return lsKind(SEMAPHORES, values)
  },
}



/** Value, waiters and last pid of every semaphore of a set this user may read. */
function semaphoresOf(id: number): SemaphoreValueJson[] {
  const sem = Semaphore.openById(id)
  return sem.values().map((value, index) => {
    const w = sem.waiters(index)
    return { index, value, forIncrease: w.forIncrease, forZero: w.forZero, lastPid: w.lastPid }
  })
}

const stat: Command = {
  summary: 'show one semaphore set and each value, like ipcs -s -i',
  help: `Usage: sysv-shm sem stat <id> [--json]
       sysv-shm sem stat --key KEY [--json]

Shows one semaphore set: key, permissions, owner and creator, the number of
semaphores, the last semop and change times, and for each semaphore (like
ipcs -s -i ID): its value, ncount (processes waiting for the value to
increase), zcount (processes waiting for it to become 0), and the pid of the
last process that operated on it, with whether it still runs. Without
permission to read the set it shows what the kernel lists for everyone (as
ipcs -s does) and no values.

Options:
  --key KEY    the set with this key (0x hex or decimal) instead of an id
  --json       print the set as a JSON object: the fields of sem ls --json and
               semaphores, a list of {index, value, forIncrease, forZero,
               lastPid} (null without read permission)
  -h, --help   show this help
`,
  options: { key: { type: 'string' }, json: { type: 'boolean' } },
  async run(values, positionals) {
    let subject = typeof values.key === 'string' ? `key ${values.key}` : `semid ${positionals[0] ?? ''}`
    let id: number
    if (typeof values.key === 'string') {
      if (positionals.length) throw new UsageError('give an id or --key, not both')
      const key = noPrivateKey(parseKey(values.key), 'semaphore set')
      subject = `key ${f.hexKey(key)}`
      try {
        id = byKey(listSemaphores(), key, 'semaphore set').id
      } catch (e) {
        err(`sysv-shm sem stat: ${describe(subject, e)}`)
        return 1
      }
    } else {
      if (positionals.length !== 1) throw new UsageError(positionals.length ? 'give one id' : 'give an id or --key KEY')
      id = parseId(positionals[0]!)
      subject = `semid ${id}`
    }
    try {
      const { info: s, readable } = statAny(SEMAPHORES, id)
      const sems = readable ? semaphoresOf(id) : null
      if (values.json) {
        await out(json({ ...SEMAPHORES.json(s), semaphores: sems }))
        return 0
      }
      const who = (uid: number, gid: number): string => `${f.user(uid)}:${f.group(gid)} (uid ${uid}, gid ${gid})`
      const when = (d: Date | null): string => (d ? `${f.time(d)} (${f.ago(d)})` : '-')
      const lines: [string, string][] = [
        ['semid', String(s.id)],
        ['key', s.key === 0 ? `${f.hexKey(0)} (IPC_PRIVATE)` : f.hexKey(s.key)],
        ['perms', `${f.rwx(s.mode)} (${f.octal(s.mode)})`],
        ['owner', who(s.uid, s.gid)],
        ['creator', who(s.cuid, s.cgid)],
        ['nsems', String(s.count)],
        ['last op', when(s.opTime)],
        ['change time', when(s.changeTime)],
      ]
      if (!sems) lines.push(['values', "not shown: the set's mode does not let you read it (semctl GETALL: EACCES)"])
      const w = Math.max(...lines.map(([k]) => k.length))
      let text = lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n'
      if (sems) {
        const columns: f.Column[] = [
          { title: 'semnum', right: true },
          { title: 'value', right: true },
          { title: 'ncount', right: true },
          { title: 'zcount', right: true },
          { title: 'pid' },
        ]
        const rows = sems.map((x) => [
          String(x.index),
          String(x.value),
          String(x.forIncrease),
          String(x.forZero),
          `${x.lastPid}${pidState(x.lastPid)}`,
        ])
        text += '\n' + f.table(columns, rows).join('\n') + '\n'
      }
      await out(text)
      return 0
    } catch (e) {
      if (e instanceof UsageError) throw e
      err(`sysv-shm sem stat: ${describe(subject, e, HINTS)}`)
      return 1
    }
  },
}

/** How many processes wait on the set (ncount + zcount of every semaphore), or null if it may not be read. */
function waiting(id: number, count: number): number | null {
  try {
    const sem = Semaphore.openById(id)
    let n = 0
    for (let i = 0; i < count; i++) {
      const w = sem.waiters(i)
      n += w.forIncrease + w.forZero
    }
    return n
  } catch {
    return null
  }
}

const rm: Command = {
  summary: 'remove semaphore sets, like ipcrm -s / -S',
  help: `Usage: sysv-shm sem rm <id>... [--key KEY]... [--json] [--dry-run]

Removes semaphore sets (semctl IPC_RMID), asking nothing, and prints each one
it removed. Removal is immediate: processes waiting on the set wake with
EIDRM, and the output says how many there were. Exit code 1 if any removal
failed.

Options:
  --key KEY      the set with this key (0x hex or decimal); repeatable
  -n, --dry-run  print what would be removed, remove nothing
  --json         print {"removed": [sets], "failed": [errors], "dryRun": bool}
  -h, --help     show this help
`,
  options: {
    key: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', short: 'n' },
    json: { type: 'boolean' },
  },
  async run(values, positionals) {
    const keys = ((values.key as string[] | undefined) ?? []).map((k) => noPrivateKey(parseKey(k), 'semaphore set'))
    const ids = positionals.map(parseId)
    if (!ids.length && !keys.length) throw new UsageError('give ids or --key KEY')
    const dryRun = values['dry-run'] === true
    const todo = [
      ...ids.map((id) => ({ subject: `semid ${id}`, id, key: undefined as number | undefined })),
      ...keys.map((key) => ({ subject: `key ${f.hexKey(key)}`, id: undefined as number | undefined, key })),
    ]
    const removed: SemaphoreJson[] = []
    const failed: (ReturnType<typeof failureJson> & { id: number | null; key: number | null })[] = []
    const lines: string[] = []
    for (const r of todo) {
      try {
        let s: SemaphoreInfo | null = null
        if (r.key !== undefined) s = byKey(listSemaphores(), r.key, 'semaphore set')
        else {
          try {
            s = statAny(SEMAPHORES, r.id!).info
          } catch (e) {
            // Not even listed: let IPC_RMID give the reason (EINVAL, EPERM).
            if (!(e instanceof ShmError && e.code === 'EACCES')) throw e
          }
        }
        const id = s ? s.id : r.id!
        const sleepers = s ? waiting(id, s.count) : null
        if (!dryRun) Semaphore.removeById(id)
        if (s) removed.push(SEMAPHORES.json(s))
        const woke = sleepers ? `, ${dryRun ? 'would wake' : 'woke'} ${sleepers} waiting process${sleepers === 1 ? '' : 'es'} with EIDRM` : ''
        const detail = s ? ` (key ${f.hexKey(s.key)}, ${s.count} semaphore${s.count === 1 ? '' : 's'}${woke})` : ''
        lines.push(`${dryRun ? 'would remove' : 'removed'} semid ${id}${detail}`)
      } catch (e) {
        failed.push({ id: r.id ?? null, key: r.key ?? null, ...failureJson(e) })
        err(`sysv-shm sem rm: ${describe(r.subject, e, r.key !== undefined ? {} : HINTS)}`)
      }
    }
    if (values.json) await out(json({ removed, failed, dryRun }))
    else if (lines.length) await out(lines.join('\n') + '\n')
    return failed.length ? 1 : 0
  },
}

export const sem: Command = commandGroup(
  'sem',
  'semaphore sets: ls, stat, rm (like ipcs -s, ipcs -s -i, ipcrm -s)',
  'System V semaphore sets.',
  'ls -s',
  { ls, stat, rm },
)

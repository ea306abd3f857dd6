/**
 * The commands of `sysv-shm`: ls, stat, rm, limits, dump, ftok; sem (src/cli/semaphores.ts),
 * queue (src/cli/queues.ts).
 * @internal
 * @module
 */
/// <reference types="node" preserve="true" />

import { ShmError } from '../errors'
import { SharedMemory, ftok, limits, listSegments, type SegmentInfo } from '../shared-memory'
import type { Command, Options, Values } from './command'
import * as f from './format'
import { HexDump } from './hexdump'
import { byKey, describe, err, failureJson, out, type Hints } from './io'
import { attachers, pidState } from './procs'
import { UsageError, noPrivateKey, parseId, parseKey, parseProjId, parseUint } from './parse'
import { QUEUES, SEGMENTS, SEMAPHORES, json, lsKind, select, statAny, type SegmentJson } from './kinds'
import { queue } from './queues'
import { sem } from './semaphores'

const JSON_OPTION = { json: { type: 'boolean' } } as const satisfies Options

const HINTS_ID: Hints = {
  EINVAL: 'no segment has this id',
  EIDRM: 'the segment has been removed',
  EACCES: "the segment's mode does not let you read it",
  EPERM: 'only its owner, its creator or a privileged user may do this',
}

function noPositionals(positionals: string[]): void {
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
}

/** The segments not marked removed: a key names one of these at most. */
const liveSegments = (): SegmentInfo[] => listSegments().filter((seg) => !seg.removed)

/** The id named by the one positional or by `--key`. */
function target(values: Values, positionals: string[]): { id: number; subject: string } {
  if (typeof values.key === 'string') {
    if (positionals.length) throw new UsageError('give an id or --key, not both')
    const key = noPrivateKey(parseKey(values.key), 'segment')
    return { id: byKey(liveSegments(), key, 'segment').id, subject: `key ${f.hexKey(key)}` }
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length ? 'give one id' : 'give an id or --key KEY')
  const id = parseId(positionals[0]!)
  return { id, subject: `shmid ${id}` }
}

function subjectOf(values: Values, positionals: string[]): string {
  return typeof values.key === 'string' ? `key ${values.key}` : `shmid ${positionals[0] ?? ''}`
}

const FILTER_HELP = `  --key KEY          only the segment(s) of this key (0x hex or decimal; 0 lists IPC_PRIVATE and removed ones)
  --mine             only segments you own or created
  --orphans          only segments no process has attached (attach count 0)
  --older-than DUR   only segments with no attach, detach or change for DUR (30s, 10m, 2h, 1d, 1w)`

export const ls: Command = {
  summary: 'list segments, like ipcs -m (-q: message queues, -s: semaphore sets)',
  help: `Usage: sysv-shm ls [-l] [--json] [--human] [filters]
       sysv-shm ls -q [-l] [--json] [--human] [--key KEY] [--mine] [--empty] [--older-than DUR]
       sysv-shm ls -s [-l] [--json] [--key KEY] [--mine] [--older-than DUR]

Lists every shared memory segment of this IPC namespace, like ipcs -m, in the
kernel's order: key (hex), shmid, owner, permissions (rwx and octal), size in
bytes, attach count (nattch) and status (dest: removed but still attached;
locked: SHM_LOCK).

With -q, lists the message queues instead, like ipcs -q: key, msqid, owner,
permissions, used-bytes and messages; -l adds group, max-bytes (msg_qbytes),
creator, the pids of the last send and receive, and the last send, receive
and change times. --older-than counts from the last send, receive or change;
--empty keeps the queues that hold no message (sysv-shm queue ls is the same).

With -s, lists the semaphore sets instead, like ipcs -s (and sysv-shm sem ls):
key, semid, owner, permissions and nsems; -l adds group, creator, and the
last semop and change times, from which --older-than counts.

Options:
  -q, --queues       list message queues instead of segments
  -s, --semaphores   list semaphore sets instead of segments
  -l, --long         add group, creator user and group, creator and last pid,
                     and the last attach, detach and change times
  --json             print a JSON array of segments with every field (see docs/guide.md)
  --human            sizes as 4.0 KiB instead of bytes
${FILTER_HELP}
  --empty            with -q: only queues that hold no message
  -h, --help         show this help
`,
  options: {
    long: { type: 'boolean', short: 'l' },
    queues: { type: 'boolean', short: 'q' },
    semaphores: { type: 'boolean', short: 's' },
    human: { type: 'boolean' },
    key: { type: 'string' },
    mine: { type: 'boolean' },
    orphans: { type: 'boolean' },
    empty: { type: 'boolean' },
    'older-than': { type: 'string' },
    ...JSON_OPTION,
  },
  async run(values, positionals) {
    noPositionals(positionals)
    if (values.queues && values.semaphores) throw new UsageError('give -q (queues) or -s (semaphore sets), not both')
    if (values.queues) return lsKind(QUEUES, values)
    if (values.semaphores) return lsKind(SEMAPHORES, values)
    return lsKind(SEGMENTS, values)
  },
}

export const stat: Command = {
  summary: 'show everything about one segment, like ipcs -m -i',
  help: `Usage: sysv-shm stat <id> [--json]
       sysv-shm stat --key KEY [--json]

Shows one segment: key, size (bytes and pages), permissions, owner and
creator, creator and last pid (and whether they still run), attach count and
the processes that have it attached (from /proc/PID/maps: all of them for
root, your own otherwise; in this IPC namespace only), status, and the last attach, detach and change
times. Without permission to read the segment it shows what the kernel lists
for everyone (as ipcs does).

Options:
  --key KEY    the segment with this key (0x hex or decimal) instead of an id
  --json       print the segment as a JSON object: the fields of ls --json and
               attachedBy, a list of {pid, mappings, command}
  -h, --help   show this help
`,
  options: { key: { type: 'string' }, ...JSON_OPTION },
  async run(values, positionals) {
    let subject = subjectOf(values, positionals)
    try {
      const t = target(values, positionals)
      subject = t.subject
      const s = statAny(SEGMENTS, t.id).info
      const by = s.attachCount > 0 ? attachers(s.id) : []
      if (values.json) {
        await out(json({ ...SEGMENTS.json(s), attachedBy: by }))
        return 0
      }
      const page = limits().pageSize
      const pages = Math.ceil(s.size / page)
      const who = (uid: number, gid: number): string => `${f.user(uid)}:${f.group(gid)} (uid ${uid}, gid ${gid})`
      const when = (d: Date | null): string => (d ? `${f.time(d)} (${f.ago(d)})` : '-')
      const lines: [string, string][] = [
        ['shmid', String(s.id)],
        ['key', s.key === 0 ? `${f.hexKey(0)} (${s.removed ? 'removed' : 'IPC_PRIVATE'})` : f.hexKey(s.key)],
        ['size', `${s.size} bytes (${f.human(s.size)}, ${pages} page${pages === 1 ? '' : 's'} of ${page})`],
        ['perms', `${f.rwx(s.mode)} (${f.octal(s.mode)})`],
        ['owner', who(s.uid, s.gid)],
        ['creator', who(s.cuid, s.cgid)],
        ['creator pid', `${s.creatorPid}${pidState(s.creatorPid)}`],
        ['last pid', `${s.lastPid}${pidState(s.lastPid)}`],
        ['attached', `${s.attachCount} attachment${s.attachCount === 1 ? '' : 's'}`],
        ...by.map((a, i): [string, string] => [
          i === 0 ? 'attached by' : '',
          `pid ${a.pid}${a.mappings > 1 ? ` (${a.mappings} times)` : ''}: ${a.command === null ? '?' : a.command.length > 100 ? a.command.slice(0, 99) + '…' : a.command}`,
        ]),
        ...(s.attachCount > 0 && by.length === 0 ? [['attached by', '(no process whose /proc/PID/maps you may read)'] as [string, string]] : []),
        [
          'status',
          [
            s.removed ? 'dest (removed: freed at the last detach)' : '',
            s.locked ? 'locked (SHM_LOCK)' : '',
          ]
            .filter(Boolean)
            .join(', ') || '-',
        ],
        ['attach time', when(s.attachTime)],
        ['detach time', when(s.detachTime)],
        ['change time', when(s.changeTime)],
      ]
      const w = Math.max(...lines.map(([k]) => k.length))
      await out(lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n')
      return 0
    } catch (e) {
      if (e instanceof UsageError) throw e
      err(`sysv-shm stat: ${describe(subject, e, HINTS_ID)}`)
      return 1
    }
  },
}

interface Removal {
  segment: SegmentInfo | null
  subject: string
  id?: number
  key?: number
}

export const rm: Command = {
  summary: 'remove segments, like ipcrm -m / -M',
  help: `Usage: sysv-shm rm <id>... [--key KEY]... [--json] [--dry-run]
       sysv-shm rm --orphans [--older-than DUR] [--mine] [--json] [--dry-run]

Removes segments (shmctl IPC_RMID), asking nothing, and prints each one it
removed. A segment that is still attached is only marked (status dest): its
key is freed at once, and the memory at the last detach. Exit code 1 if any
removal failed.

Options:
  --key KEY          the segment with this key (0x hex or decimal); repeatable
  --orphans          every segment that no process has attached (attach count 0)
  --older-than DUR   with --orphans: only those with no attach, detach or change
                     for DUR (30s, 10m, 2h, 1d, 1w)
  --mine             with --orphans: only segments you own or created
  -n, --dry-run      print what would be removed, remove nothing
  --json             print {"removed": [segments], "failed": [errors]}
  -h, --help         show this help
`,
  options: {
    key: { type: 'string', multiple: true },
    orphans: { type: 'boolean' },
    'older-than': { type: 'string' },
    mine: { type: 'boolean' },
    'dry-run': { type: 'boolean', short: 'n' },
    ...JSON_OPTION,
  },
  async run(values, positionals) {
    const keys = (values.key as string[] | undefined) ?? []
    const orphans = values.orphans === true
    if (orphans && (keys.length || positionals.length)) throw new UsageError('--orphans takes no ids or keys')
    if (!orphans && (values['older-than'] !== undefined || values.mine)) {
      throw new UsageError('--older-than and --mine filter --orphans; add --orphans')
    }
    if (!orphans && !keys.length && !positionals.length) throw new UsageError('give ids, --key KEY or --orphans')
    const dryRun = values['dry-run'] === true
    const todo: Removal[] = []
    if (orphans) {
      for (const s of select(SEGMENTS, { orphans: true, mine: values.mine, 'older-than': values['older-than'] })) {
        todo.push({ segment: s, subject: `shmid ${s.id}`, id: s.id })
      }
    } else {
      const ids = positionals.map(parseId)
      const parsedKeys = keys.map((k) => noPrivateKey(parseKey(k), 'segment'))
      for (const id of ids) todo.push({ segment: null, subject: `shmid ${id}`, id })
      for (const key of parsedKeys) todo.push({ segment: null, subject: `key ${f.hexKey(key)}`, key })
    }

    const removed: SegmentJson[] = []
    const failed: (ReturnType<typeof failureJson> & { id: number | null; key: number | null })[] = []
    const lines: string[] = []
    for (const r of todo) {
      try {
        let s = r.segment
        if (r.key !== undefined) s = byKey(liveSegments(), r.key, 'segment')
        else if (!orphans) s = tryStat(r.id!)
        else if (s) {
          // Between the listing and now a process may have attached it, or
          // the id may name a new segment: look again.
          const now = tryStat(s.id)
          if (!now || now.attachCount > 0 || now.key !== s.key || now.creatorPid !== s.creatorPid) continue
          s = now
        }
        const id = s ? s.id : r.id!
        if (!dryRun) SharedMemory.removeById(id)
        const seg = s ?? { id, key: 0, size: 0, attachCount: 0 }
        if (s) removed.push(SEGMENTS.json(s))
        const verb = dryRun ? 'would remove' : seg.attachCount > 0 ? 'marked for removal' : 'removed'
        const detail = s
          ? ` (key ${f.hexKey(seg.key)}, ${seg.size} bytes${seg.attachCount > 0 ? `, still attached ${seg.attachCount} time${seg.attachCount === 1 ? '' : 's'}: freed at the last detach` : ''})`
          : ''
        lines.push(`${verb} shmid ${id}${detail}`)
      } catch (e) {
        failed.push({ id: r.id ?? null, key: r.key ?? null, ...failureJson(e) })
        err(`sysv-shm rm: ${describe(r.subject, e, r.key !== undefined ? {} : HINTS_ID)}`)
      }
    }
    if (values.json) await out(json({ removed, failed, dryRun }))
    else if (lines.length) await out(lines.join('\n') + '\n')
    else if (!failed.length) await out('nothing to remove\n')
    return failed.length ? 1 : 0
  },
}

/** `IPC_STAT`, or `null` where the caller may not read the segment (removal may still be allowed). */
function tryStat(id: number): SegmentInfo | null {
  try {
    return statAny(SEGMENTS, id).info
  } catch (e) {
    if (e instanceof ShmError && e.code === 'EACCES') return null
    throw e
  }
}

export const limitsCommand: Command = {
  summary: 'kernel limits and current usage, like ipcs -l and ipcs -u',
  help: `Usage: sysv-shm limits [--json]

Shows the kernel's shared memory limits next to what is in use now, with the
sysctl that raises each one (see "Kernel limits" in docs/guide.md).

Options:
  --json       print the limits and usage as a JSON object
  -h, --help   show this help
`,
  options: { ...JSON_OPTION },
  async run(values, positionals) {
    noPositionals(positionals)
    const l = limits()
    const segments = listSegments()
    const largest = segments.reduce((m, s) => Math.max(m, s.size), 0)
    if (values.json) {
      await out(json({ ...l, largestSegmentSize: largest }))
      return 0
    }
    const pct = (used: number, max: number): string => {
      if (max <= 0) return ''
      const p = (100 * used) / max
      return ` (${used > 0 && p < 0.1 ? '<0.1' : p.toFixed(1)}%)`
    }
    // Above 2^53 a JS number is not exact: the kernel's default "no limit" values are that large.
    const huge = (n: number): boolean => n > Number.MAX_SAFE_INTEGER
    const bytes = (n: number): string => (huge(n) ? `${f.human(n)} (no practical limit)` : `${n} bytes (${f.human(n)})`)
    const rows: string[][] = [
      ['max number of segments', String(l.maxSegments), `${l.usedSegments}${pct(l.usedSegments, l.maxSegments)}`, 'kernel.shmmni'],
      ['max segment size', bytes(l.maxSegmentSize), `largest ${bytes(largest)}`, 'kernel.shmmax'],
      [
        'max total shared memory',
        huge(l.maxTotalPages) ? `${l.maxTotalPages.toExponential(1)} pages (no practical limit)` : `${l.maxTotalPages} pages (${f.human(l.maxTotalPages * l.pageSize)})`,
        `${l.usedPages} pages (${f.human(l.usedPages * l.pageSize)})${pct(l.usedPages, l.maxTotalPages)}`,
        'kernel.shmall',
      ],
      ['min segment size', `${l.minSegmentSize} byte${l.minSegmentSize === 1 ? '' : 's'}`, '', ''],
      ['max segments per process', String(l.maxSegmentsPerProcess), '', ''],
      ['page size', `${l.pageSize} bytes`, '', ''],
      ['pages resident / swapped', '', `${l.residentPages} / ${l.swappedPages}`, ''],
    ]
    const columns: f.Column[] = [{ title: 'limit' }, { title: 'value' }, { title: 'in use' }, { title: 'sysctl' }]
    await out(f.table(columns, rows).join('\n') + '\n')
    return 0
  },
}

const CHUNK = 64 * 1024

export const dump: Command = {
  summary: 'hex dump of a segment, like hexdump -C',
  help: `Usage: sysv-shm dump <id> [--offset N] [--length N] [-v]
       sysv-shm dump --key KEY [--offset N] [--length N] [-v]

Prints the bytes of a segment as hexdump -C does: offset, 16 bytes in hex,
and the printable ASCII. The segment is attached read-only (SHM_RDONLY) for
the dump, so its attach count, last pid and attach/detach times change.

Options:
  --key KEY       the segment with this key instead of an id
  --offset N      start at byte N (decimal or 0x hex); default 0
  --length N      at most N bytes; default to the end of the segment
  -v, --no-squeeze  print every line (by default a run of lines equal to the
                  one before is shown as one "*", as hexdump does)
  -h, --help      show this help
`,
  options: {
    key: { type: 'string' },
    offset: { type: 'string' },
    length: { type: 'string' },
    'no-squeeze': { type: 'boolean', short: 'v' },
  },
  async run(values, positionals) {
    const offset = typeof values.offset === 'string' ? parseUint(values.offset, '--offset') : 0
    const length = typeof values.length === 'string' ? parseUint(values.length, '--length') : undefined
    let subject = subjectOf(values, positionals)
    let shm: SharedMemory | undefined
    try {
      const t = target(values, positionals)
      subject = t.subject
      shm = SharedMemory.openById(t.id, { readOnly: true, zeroCopy: false })
      if (offset > shm.size) {
        err(`sysv-shm dump: ${subject}: offset ${offset} is past the end of the segment (${shm.size} bytes)`)
        return 1
      }
      const end = length === undefined ? shm.size : Math.min(shm.size, offset + length)
      const hd = new HexDump(offset, values['no-squeeze'] !== true)
      for (let at = offset; at < end; at += CHUNK) {
        await out(hd.push(shm.read(at, Math.min(CHUNK, end - at))))
      }
      await out(hd.end())
      return 0
    } catch (e) {
      if (e instanceof UsageError) throw e
      err(`sysv-shm dump: ${describe(subject, e, HINTS_ID)}`)
      return 1
    } finally {
      shm?.detach()
    }
  },
}

export const ftokCommand: Command = {
  summary: 'the key ftok(3) makes of a path and a project id',
  help: `Usage: sysv-shm ftok <path> <projId> [--json]

Prints the key that ftok(3) makes of an existing file and a project id, in
hex as ipcs prints keys: the same key C's ftok(path, id), Python's
sysv_ipc.ftok(path, id) and this package's ftok(path, id) compute.

projId is 1 to 255 in decimal or 0x hex, or one non-digit character as C
programs write it (A is 65, as in ftok(path, 'A')).

Options:
  --json       print {"path", "projId", "key", "keyHex"}
  -h, --help   show this help
`,
  options: { ...JSON_OPTION },
  async run(values, positionals) {
    if (positionals.length !== 2) throw new UsageError('give a path and a project id')
    const [path, proj] = positionals as [string, string]
    const projId = parseProjId(proj)
    try {
      const key = ftok(path, projId) >>> 0
      await out(values.json ? json({ path, projId, key, keyHex: f.hexKey(key) }) : f.hexKey(key) + '\n')
      return 0
    } catch (e) {
      err(`sysv-shm ftok: ${describe(path, e, { ENOENT: 'no such file or directory' })}`)
      return 1
    }
  },
}

/** Every command, by name, in the order of the help. */
export const COMMANDS: Record<string, Command> = {
  ls,
  stat,
  rm,
  limits: limitsCommand,
  dump,
  ftok: ftokCommand,
  sem,
  queue,
}

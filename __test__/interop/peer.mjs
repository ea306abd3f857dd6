// The Node side of the interop protocol (see shm_peer.c): the same line
// commands, carried out with this package, in a process of its own.
import { createInterface } from 'node:readline'

import { SharedMemory, ShmError, ftok } from '../../dist/index.js'

let shm = null
const num = (s) => Number(BigInt(s))

function handle([cmd, a, b, c]) {
  switch (cmd) {
    case 'create':
      shm = SharedMemory.create(num(a), num(b), { mode: Number.parseInt(c, 8) })
      return String(shm.id)
    case 'open':
      shm = SharedMemory.open(num(a))
      return String(shm.id)
    case 'attach':
      shm = SharedMemory.openById(num(a))
      return String(shm.id)
    case 'write':
      shm.write(Buffer.from(b, 'hex'), num(a))
      return ''
    case 'read':
      return shm.read(num(a), num(b)).toString('hex')
    case 'add32': {
      const cell = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset + num(a), 1)
      for (let i = num(b); i > 0; i--) Atomics.add(cell, 0, 1)
      return ''
    }
    case 'stat': {
      const s = shm.stat()
      return (
        `key=0x${(s.key >>> 0).toString(16).padStart(8, '0')} size=${s.size} mode=0${s.mode.toString(8)} ` +
        `nattch=${s.attachCount} cpid=${s.creatorPid} lpid=${s.lastPid} uid=${s.uid} gid=${s.gid} ` +
        `cuid=${s.cuid} cgid=${s.cgid} dest=${s.removed ? 1 : 0}`
      )
    }
    case 'remove':
      shm.remove()
      return ''
    case 'detach':
      shm?.detach()
      return ''
    case 'ftok':
      return '0x' + (ftok(a, num(b)) >>> 0).toString(16).padStart(8, '0')
    case 'pid':
      return String(process.pid)
    default:
      throw new Error(`unknown command ${cmd}`)
  }
}

const rl = createInterface({ input: process.stdin })
for await (const line of rl) {
  const words = line.trim().split(/\s+/)
  if (words[0] === 'quit') break
  if (!words[0]) continue
  try {
    const out = handle(words)
    process.stdout.write(out ? `ok ${out}\n` : 'ok\n')
  } catch (e) {
    const code = e instanceof ShmError ? e.code : 'EUSAGE'
    process.stdout.write(`err ${code} ${String(e.message).replace(/\n/g, ' ')}\n`)
  }
}
shm?.detach()
rl.close()

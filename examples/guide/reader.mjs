// Process B of docs/guide.md: opens the writer's segment by its key and
// prints each message until "bye" or until the writer removes the segment.
//
//   node reader.mjs [PATH]     (the same PATH as the writer's)
import { SharedMemory, ftok } from 'sysv-shm'

const path = process.argv[2] ?? '/tmp'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const shm = SharedMemory.open(ftok(path, 42)) // ENOENT if the writer has not made it yet
console.log(`reader: opened segment ${shm.id}`)
const header = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 2)

let last = 0
for (;;) {
  const seq = Atomics.load(header, 0)
  if (seq % 2 === 1 || seq === last) {
    // Being written, or nothing new. Has the writer removed the segment?
    if (shm.stat().removed) {
      console.log('reader: the writer removed the segment')
      break
    }
    await sleep(50)
    continue
  }
  const text = shm.read(8, Atomics.load(header, 1)).toString()
  if (Atomics.load(header, 0) !== seq) continue // overwritten while we copied: read again
  last = seq
  console.log(`reader: ${text}`)
  if (text === 'bye') break
}
shm.detach()

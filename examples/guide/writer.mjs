// Process A of docs/guide.md: makes a segment and publishes a message in it
// every half second, then "bye", then removes the segment.
//
//   node writer.mjs [PATH] [COUNT]     (PATH: any existing file or directory, default /tmp)
import { SharedMemory, ftok } from 'sysv-shm'

const path = process.argv[2] ?? '/tmp'
const count = Number(process.argv[3] ?? 20)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Both processes compute the same key from the same path and project id.
const key = ftok(path, 42)
// Mode 0600: only this user may attach. Throws EEXIST if the key is taken.
const shm = SharedMemory.create(key, 4096)
console.log(`writer: made segment ${shm.id} with key 0x${key.toString(16).padStart(8, '0')}`)

// The layout both sides agree on:
//   bytes 0-3  a sequence number, odd while a message is being written
//   bytes 4-7  the length of the message in bytes
//   bytes 8-   the message, UTF-8
const header = new Int32Array(shm.buffer.buffer, shm.buffer.byteOffset, 2)

function publish(text) {
  Atomics.add(header, 0, 1) // odd: readers wait
  const length = shm.write(text, 8)
  Atomics.store(header, 1, length)
  Atomics.add(header, 0, 1) // even: the message is whole
}

for (let i = 1; i <= count; i++) {
  publish(`message ${i} of ${count} from pid ${process.pid}`)
  await sleep(500)
}
publish('bye')
await sleep(1000)

// Remove it: a reader still attached keeps it until it detaches.
shm.remove()
shm.detach()
console.log('writer: removed the segment')

// A consumer of docs/guide.md's publish/subscribe example that wants the current state, not
// every message: it shows the newest reading four times a second.
//
//   node dashboard.mjs [TOPIC]
import { Subscriber } from 'sysv-shm'

const topic = process.argv[2] ?? 'guide/temperature'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// register: false: it takes no entry of the subscriber table and moves no cursor.
const sub = Subscriber.open(topic, { register: false })
console.log(`dashboard: watching segment ${sub.id}`)

let shown = 0
for (;;) {
  const msg = sub.latest() // the newest message, or null before the first
  if (msg !== null) {
    const { seq, of, celsius } = JSON.parse(msg.toString())
    if (seq !== shown) console.log(`dashboard: now ${celsius} °C (reading ${seq} of ${of})`)
    shown = seq
    if (seq === of) break // the last reading stays in the segment after the close
  }
  await sleep(250)
}
sub.close()

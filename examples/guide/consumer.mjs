// A consumer of docs/guide.md's publish/subscribe example: receives every reading, in order,
// until the producer closes the topic.
//
//   node consumer.mjs [TOPIC]
import { Subscriber } from 'sysv-shm'

const topic = process.argv[2] ?? 'guide/temperature'

// ENOENT if the producer has not made the topic yet. Registered: the producer sees it.
const sub = Subscriber.open(topic)
console.log(`consumer: subscribed to segment ${sub.id}`)

// Waits off the event loop; ends when the producer closed the topic and all was read.
for await (const msg of sub) {
  const { seq, of, celsius } = JSON.parse(msg.toString())
  // lagged: readings skipped right before this one (it fell more than 16 behind).
  console.log(`consumer: reading ${seq} of ${of}: ${celsius} °C${sub.lagged ? ` (skipped ${sub.lagged})` : ''}`)
}
console.log(`consumer: the producer closed the topic; skipped ${sub.missed} in all`)
sub.close()

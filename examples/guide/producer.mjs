// The producer of docs/guide.md's publish/subscribe example: publishes COUNT temperature
// readings on a topic, one every 100 ms, once SUBSCRIBERS registered subscribers have joined,
// then closes the topic.
//
//   node producer.mjs [TOPIC] [COUNT] [SUBSCRIBERS]
import { Publisher } from 'sysv-shm'

const topic = process.argv[2] ?? 'guide/temperature'
const count = Number(process.argv[3] ?? 50)
const subscribers = Number(process.argv[4] ?? 1)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// The name gives the key (topicKey(name)); the segment's header keeps the name, so another
// program's segment at that key is an error, never a wrong topic. 16 messages of up to 256
// bytes are kept; 'overwrite' (the default policy): never wait for a slow subscriber.
const pub = Publisher.create(topic, { capacity: 16, maxMessage: 256 })
console.log(`producer: topic ${topic} is segment ${pub.id} with key 0x${pub.key.toString(16).padStart(8, '0')}`)

// Registered subscribers are counted; readers that only poll (the Python one) are not.
while (pub.subscriberCount < subscribers) await sleep(20)

for (let seq = 1; seq <= count; seq++) {
  const celsius = Math.round(200 + 50 * Math.sin(seq / 5)) / 10
  pub.publish(JSON.stringify({ seq, of: count, celsius, pid: process.pid }))
  await sleep(100)
}

// Sets the closed flag (subscribers read what is left, then stop), wakes them and removes
// the segment: the kernel frees it when the last subscriber detaches.
pub.close()
console.log('producer: closed the topic')

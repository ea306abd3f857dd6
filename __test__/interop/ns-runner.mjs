// Runs commands for helpers.mjs's Namespace inside `unshare --ipc`. One JSON
// line in, `ok JSON` out:
//   {argv, input}             runs to the end -> {code, signal, stdout, stderr}
//   {argv, input, background} starts it, stdin left open -> {pid}
//   {close: pid}              ends its stdin, waits -> {code, signal, stdout, stderr}
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

const background = new Map()

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'quit') break
  const req = JSON.parse(line)
  let result
  if (req.close !== undefined) {
    const job = background.get(req.close)
    background.delete(req.close)
    job.child.stdin.end()
    const [code, signal] = await once(job.child, 'exit')
    result = { code, signal, stdout: job.stdout, stderr: job.stderr }
  } else if (req.background) {
    const child = spawn(req.argv[0], req.argv.slice(1), { stdio: 'pipe', env: process.env })
    const job = { child, stdout: '', stderr: '' }
    child.stdout.setEncoding('utf8').on('data', (d) => (job.stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (job.stderr += d))
    child.stdin.write(req.input ?? '')
    background.set(child.pid, job)
    result = { pid: child.pid }
  } else {
    const r = spawnSync(req.argv[0], req.argv.slice(1), { input: req.input, encoding: 'utf8', env: process.env })
    result = { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, error: r.error?.message }
  }
  process.stdout.write('ok ' + JSON.stringify(result) + '\n')
}
for (const job of background.values()) job.child.stdin.end()

// A Node 18 module loader (`--experimental-loader`) for scripts/test-runtimes.sh:
// the spec files' `import test from 'ava'` resolves to ava 6 (installed under
// the tools dir, named by SYSV_SHM_AVA6), the ava that runs them under Node 18,
// instead of the checkout's ava 7, which needs Node 20.19+.
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const ava6 = process.env.SYSV_SHM_AVA6
if (!ava6) throw new Error('ava6-loader: set SYSV_SHM_AVA6 to the folder that has node_modules/ava (6.x)')
const parent = pathToFileURL(join(ava6, 'package.json')).href

export async function resolve(specifier, context, next) {
  if (specifier === 'ava' || specifier.startsWith('ava/')) return next(specifier, { ...context, parentURL: parent })
  return next(specifier, context)
}

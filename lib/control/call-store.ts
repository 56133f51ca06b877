// Run a control method on a store wherever its writer is: through the control socket when a
// server holds the store, else on the store opened here (and closed again, which flushes). The
// CLI does this for every command that works on served stores, so they print the same either way.
import { parseWith, PagecowError } from '../errors.js'
import { openStore } from '../open-store.js'
import { ControlClient } from './control-client.js'
import type { ControlCall, ControlStream } from './control-method.js'

/** `method` with `params` on the store in `dir`, served or not; the work's error wins over one while closing. */
export async function callStore<P, R>(dir: string, method: ControlCall<P, R>, params: P): Promise<R> {
  const client = await ControlClient.connect(dir)
  if (client) {
    try {
      return await client.call(method, params)
    } finally {
      client.close()
    }
  }
  const checked = parseWith(method.params, params, method.name)
  const store = await openStore(dir, { readOnly: method.readOnly })
  let result: R
  try {
    result = await method.run(store, checked)
  } catch (err) {
    await store.close().catch(() => {})
    throw err
  }
  await store.close()
  return result
}

/**
 * `method` with `params` on the server running the store in `dir`: for what only lives as long
 * as an open store (a freeze). EINVAL when no server runs it.
 */
export async function callServer<P, R>(dir: string, method: ControlCall<P, R>, params: P): Promise<R> {
  const client = await ControlClient.connect(dir)
  if (!client) {
    throw new PagecowError('EINVAL', `${method.name}: no server is running ${dir} (no live control socket); a freeze lives as long as the store is open, so \`pagecow ${method.name}\` works on a store served by \`pagecow mount\` or \`pagecow serve\` (a library program calls store.${method.name}())`)
  }
  try {
    return await client.call(method, params)
  } finally {
    client.close()
  }
}

/**
 * The events of `method` from the server running the store in `dir`, until the server ends the
 * stream (it is stopping) or `signal` aborts (then it just ends). ENOENT when no server runs the
 * store: events come from a server's writes, and a closed store has none.
 */
export async function* watchStore<P, E>(dir: string, method: ControlStream<P, E>, params: P, options: { signal?: AbortSignal } = {}): AsyncGenerator<E, void, undefined> {
  const { signal } = options
  if (signal?.aborted) return
  const client = await ControlClient.connect(dir)
  if (!client) throw new PagecowError('ENOENT', `no server is running ${dir} (no live control socket): \`pagecow ${method.name}\` follows a store served by \`pagecow mount\` or \`pagecow serve\``)
  const abort = () => client.close()
  signal?.addEventListener('abort', abort)
  try {
    yield* client.stream(method, params)
  } catch (err) {
    if (!signal?.aborted) throw err
  } finally {
    signal?.removeEventListener('abort', abort)
    client.close()
  }
}

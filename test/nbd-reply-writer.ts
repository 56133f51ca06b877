// ReplyWriter: replies in order and whole, buffers given back once written (or never will be),
// progress visible piece by piece to a slow reader, drained() and end().
import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { ReplyWriter } from '../lib/nbd/reply-writer.js'
import { shortTempDir } from './fixtures/nbd-served.js'
import { Random } from './fixtures/random.js'

const MiB = 1024 * 1024

/** A connected pair over a Unix socket: the server side (written) and the client side (paused). */
async function pair(t: Test): Promise<{ server: net.Socket; client: net.Socket }> {
  const path = join(shortTempDir(t), 'w.sock')
  const accepted = new Promise<net.Socket>((resolve) => {
    const listener = net.createServer((s) => {
      listener.close()
      resolve(s)
    })
    listener.listen(path)
  })
  await new Promise((r) => setImmediate(r))
  const client = net.connect(path)
  client.pause()
  const server = await accepted
  t.teardown(() => {
    server.destroy()
    client.destroy()
  })
  return { server, client }
}

async function readAll(client: net.Socket, length: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let got = 0
  client.resume()
  while (got < length) {
    const [chunk] = (await once(client, 'data')) as [Buffer]
    chunks.push(chunk)
    got += chunk.length
  }
  client.pause()
  return Buffer.concat(chunks)
}

t.test('replies arrive whole and in order; each done runs once, after its bytes are taken', async (t) => {
  const { server, client } = await pair(t)
  const writer = new ReplyWriter(server)
  const rng = new Random(4)
  const replies = [rng.bytes(16), rng.bytes(3 * MiB), rng.bytes(100), rng.bytes(700 * 1024)]
  const done: number[] = []
  writer.send([replies[0]!.subarray(0, 8), replies[0]!.subarray(8)], () => done.push(0))
  writer.send([replies[1]!], () => done.push(1))
  writer.send([replies[2]!]) // no callback wanted
  writer.send([replies[3]!], () => done.push(3))
  await sleep(50)
  t.ok(writer.pendingBytes > 2 * MiB, `a client that reads nothing leaves the bytes pending (${writer.pendingBytes})`)
  t.ok(server.writableLength <= 1.5 * MiB, `no more than the window is handed to the socket (${server.writableLength})`)
  t.notOk(done.includes(1), 'a reply not taken is not done')
  const total = replies.reduce((n, r) => n + r.length, 0)
  const got = await readAll(client, total)
  t.ok(got.equals(Buffer.concat(replies)), 'the bytes, whole and in order')
  await writer.drained()
  t.same(done, [0, 1, 3], 'each done once, in order')
  t.equal(writer.pendingBytes, 0)
  t.equal(writer.takenBytes, total)
})

t.test('a slow reader shows progress piece by piece, not only at the end of a long reply', async (t) => {
  const { server, client } = await pair(t)
  const writer = new ReplyWriter(server)
  writer.send([Buffer.alloc(8 * MiB, 1)])
  await sleep(50)
  const before = writer.takenBytes
  const some = await readAll(client, MiB)
  await sleep(50)
  t.ok(writer.takenBytes > before, `reading ${some.length} bytes of an 8 MiB reply moved takenBytes (${before} → ${writer.takenBytes})`)
  t.ok(writer.takenBytes < 8 * MiB)
})

t.test('end() goes after the queued replies; a closed socket gives every buffer back', async (t) => {
  const { server, client } = await pair(t)
  const writer = new ReplyWriter(server)
  writer.send([Buffer.alloc(2 * MiB, 7)])
  writer.end()
  let late = false
  writer.send([Buffer.alloc(10)], () => (late = true))
  t.ok(late, 'a reply after end() is dropped at once, its done called')
  const ended = once(client, 'end')
  const got = await readAll(client, 2 * MiB)
  client.resume()
  await ended
  t.equal(got.length, 2 * MiB, 'the queued reply arrived before the end')

  const other = await pair(t)
  const w2 = new ReplyWriter(other.server)
  const dropped: number[] = []
  for (let i = 0; i < 8; i++) w2.send([Buffer.alloc(MiB)], () => dropped.push(i))
  await sleep(20)
  const drained = w2.drained()
  other.server.destroy()
  await drained
  await sleep(20)
  t.same(dropped.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7], 'every done ran when the socket closed')
  t.equal(w2.pendingBytes, 0)
})

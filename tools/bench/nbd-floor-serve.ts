// The floor of a Node NBD server, for the benchmark's --floor peer: pagecow's handshake, then
// requests answered with no store behind them (WRITE and FLUSH succeed at once, READ returns a
// buffer of random bytes read once, BLOCK_STATUS says "data"). What it costs per request is what
// any server on one Node event loop pays before doing any work:
//   npx tsx tools/bench/nbd-floor-serve.ts --size BYTES --socket PATH
import { randomFillSync } from 'node:crypto'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { negotiate } from '../../lib/nbd/handshake.js'
import {
  NBD_CMD_BLOCK_STATUS,
  NBD_CMD_DISC,
  NBD_CMD_READ,
  NBD_CMD_WRITE,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE_BLOCK_STATUS,
  NBD_REPLY_TYPE_OFFSET_DATA,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_STRUCTURED_REPLY_MAGIC,
} from '../../lib/nbd/protocol.js'
import { SocketReader } from '../../lib/nbd/socket-reader.js'

const { values } = parseArgs({ options: { size: { type: 'string' }, socket: { type: 'string' } } })
const size = Number(values.size)
const path = values.socket
if (!path || !Number.isSafeInteger(size)) {
  console.error('usage: nbd-floor-serve.ts --size BYTES --socket PATH')
  process.exit(1)
}
const data = randomFillSync(Buffer.alloc(32 * 1024 * 1024))

function serve(socket: net.Socket): void {
  const reader = new SocketReader(socket)
  void (async () => {
    const exp = { name: '', description: 'the floor of a Node NBD server', size: () => size, readOnly: false, pageSize: 4096 }
    const negotiated = await negotiate(socket, reader, exp, { refusal: () => undefined }).catch(() => undefined)
    if (!negotiated) return socket.destroy()
    let corked = false
    const send = (...buffers: Buffer[]) => {
      if (!corked) {
        corked = true
        socket.cork()
        process.nextTick(() => {
          corked = false
          socket.uncork()
        })
      }
      for (const b of buffers) socket.write(b)
    }
    for (;;) {
      const h = reader.take(28) ?? (await reader.read(28).catch(() => undefined))
      if (!h) return
      const type = h.readUInt16BE(6)
      const offset = h.readUInt32BE(16) * 2 ** 32 + h.readUInt32BE(20)
      const length = h.readUInt32BE(24)
      if (type === NBD_CMD_DISC) return socket.end()
      if (type === NBD_CMD_WRITE && !(reader.take(length) ?? (await reader.read(length).catch(() => undefined)))) return
      if (type === NBD_CMD_READ && negotiated.structuredReplies) {
        const head = Buffer.alloc(28)
        head.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0)
        head.writeUInt16BE(NBD_REPLY_FLAG_DONE, 4)
        head.writeUInt16BE(NBD_REPLY_TYPE_OFFSET_DATA, 6)
        h.copy(head, 8, 8, 16)
        head.writeUInt32BE(8 + length, 16)
        head.writeBigUInt64BE(BigInt(offset), 20)
        send(head, data.subarray(0, length))
      } else if (type === NBD_CMD_BLOCK_STATUS) {
        const head = Buffer.alloc(32)
        head.writeUInt32BE(NBD_STRUCTURED_REPLY_MAGIC, 0)
        head.writeUInt16BE(NBD_REPLY_FLAG_DONE, 4)
        head.writeUInt16BE(NBD_REPLY_TYPE_BLOCK_STATUS, 6)
        h.copy(head, 8, 8, 16)
        head.writeUInt32BE(12, 16)
        head.writeUInt32BE(negotiated.metaContexts[0]?.id ?? 1, 20)
        head.writeUInt32BE(length, 24)
        send(head)
      } else {
        const reply = Buffer.alloc(16)
        reply.writeUInt32BE(NBD_SIMPLE_REPLY_MAGIC, 0)
        h.copy(reply, 8, 8, 16)
        send(type === NBD_CMD_READ ? Buffer.concat([reply, data.subarray(0, length)]) : reply)
      }
    }
  })()
}

const server = net.createServer({ noDelay: true }, serve)
server.listen(path, () => console.log(`nbd+unix:///?socket=${path}`))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
process.on('SIGINT', () => server.close(() => process.exit(0)))

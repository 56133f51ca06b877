// A minimal NBD client that connects over a Unix socket, sends one FLUSH and returns how long the
// server took to answer it, for the benchmark (fio's own end_fsync cannot be timed apart from the
// writes). Fixed newstyle, NBD_OPT_GO on the default export, simple replies.
import { once } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { NBD_CMD_DISC, NBD_CMD_FLUSH, NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES, NBD_OPTS_MAGIC, NBD_OPT_GO, NBD_REP_ACK, NBD_REQUEST_MAGIC } from '../../lib/nbd/protocol.js'
import { SocketReader } from '../../lib/nbd/socket-reader.js'

/** Milliseconds from sending NBD_CMD_FLUSH to its reply, on the server at `socketPath`. */
export async function timeFlush(socketPath: string): Promise<number> {
  const socket = net.connect(socketPath)
  await once(socket, 'connect')
  const reader = new SocketReader(socket)
  try {
    await reader.read(18) // NBDMAGIC, IHAVEOPT, handshake flags
    const flags = Buffer.alloc(4)
    flags.writeUInt32BE(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)
    const go = Buffer.alloc(16 + 6)
    go.writeBigUInt64BE(NBD_OPTS_MAGIC, 0)
    go.writeUInt32BE(NBD_OPT_GO, 8)
    go.writeUInt32BE(6, 12) // an empty name, no information requests
    socket.write(Buffer.concat([flags, go]))
    for (;;) {
      const reply = await reader.read(20)
      const type = reply.readUInt32BE(12)
      await reader.read(reply.readUInt32BE(16))
      if (type === NBD_REP_ACK) break
      if (type >= 2 ** 31) throw new Error(`the server refused GO (${type.toString(16)})`)
    }
    const request = (type: number) => {
      const h = Buffer.alloc(28)
      h.writeUInt32BE(NBD_REQUEST_MAGIC, 0)
      h.writeUInt16BE(type, 6)
      return h
    }
    const start = performance.now()
    socket.write(request(NBD_CMD_FLUSH))
    const reply = await reader.read(16)
    const ms = performance.now() - start
    if (reply.readUInt32BE(4) !== 0) throw new Error(`FLUSH failed with NBD error ${reply.readUInt32BE(4)}`)
    socket.end(request(NBD_CMD_DISC))
    return ms
  } finally {
    socket.destroy()
  }
}

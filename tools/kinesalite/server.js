#!/usr/bin/env node
// Kinesis Data Streams stand-in for the etl test bed.
//
// Runs kinesalite in memory (memdown; no LevelDB build needed) and listens on 127.0.0.1 only,
// unlike kinesalite's own CLI, which binds every interface. Started by crates/etl-testbed:
//
//   node server.js --port <port> [--shard-limit 10000] [--stream-ms 50]
//
// --stream-ms sets how long streams stay CREATING / DELETING / UPDATING (kinesalite's default
// is 500 ms; tests still have to wait for ACTIVE, just not for long). Prints one line
// "listening 127.0.0.1:<port>" once the socket is bound. Exits on SIGTERM / SIGINT.
'use strict'

const kinesalite = require('kinesalite')

function parseArgs(argv) {
  const out = { port: 0, shardLimit: 10000, streamMs: 50 }
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]
    const value = Number(argv[i + 1])
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${key} needs a non-negative integer, got ${argv[i + 1]}`)
    }
    if (key === '--port') out.port = value
    else if (key === '--shard-limit') out.shardLimit = value
    else if (key === '--stream-ms') out.streamMs = value
    else throw new Error(`unknown option ${key}`)
  }
  return out
}

let args
try {
  args = parseArgs(process.argv.slice(2))
} catch (err) {
  console.error(`kinesalite wrapper: ${err.message}`)
  process.exit(2)
}

const server = kinesalite({
  shardLimit: args.shardLimit,
  createStreamMs: args.streamMs,
  deleteStreamMs: args.streamMs,
  updateStreamMs: args.streamMs,
})

server.on('error', (err) => {
  console.error(`kinesalite wrapper: ${err.message}`)
  process.exit(1)
})

server.listen(args.port, '127.0.0.1', () => {
  const address = server.address()
  console.log(`listening ${address.address}:${address.port}`)
})

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => process.exit(0))
}

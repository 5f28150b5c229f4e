'use strict';
// Echo server on Node `ws`, the reference peer for bench/echo_bench.sh.
// Usage: node bench/node_echo.js [port]   (port 0 or none: any free port)
// Listens on 127.0.0.1 and prints "PORT <n>" once it is listening. Text is
// echoed as text and binary as binary, with no compression.
const path = require('path');
const { WebSocketServer } = require(
  path.join(__dirname, '..', 'spec', 'interop', 'node_modules', 'ws'));

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
  maxPayload: 4 * 1024 * 1024, // the 1 MiB case plus a wide margin
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // a peer's protocol error closes just that socket
});

wss.on('listening', () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
});

wss.on('error', (err) => {
  process.stderr.write(`node_echo: ${err.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

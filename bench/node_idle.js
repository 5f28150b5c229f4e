'use strict';
// The Node `ws` echo server of bench/node_echo.js (same options), plus a
// once-a-second line on stderr for bench/idle_bench.sh:
//   STAT conns <open connections> heap_kib <V8 heapUsed / 1024>
// Usage: node bench/node_idle.js   (prints "PORT <n>" once listening)
const path = require('path');
const { WebSocketServer } = require(
  path.join(__dirname, '..', 'spec', 'interop', 'node_modules', 'ws'));

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: false,
  maxPayload: 4 * 1024 * 1024,
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
  let left = 3600; // bounded: the benchmark kills the server long before
  const t = setInterval(() => {
    const kib = process.memoryUsage().heapUsed / 1024;
    process.stderr.write(`STAT conns ${wss.clients.size} heap_kib ${kib.toFixed(1)}\n`);
    if (--left <= 0) clearInterval(t);
  }, 1000);
});

wss.on('error', (err) => {
  process.stderr.write(`node_idle: ${err.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

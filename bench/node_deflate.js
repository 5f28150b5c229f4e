'use strict';
// Node `ws` echo server for bench/deflate_bench.sh.
// Usage: node bench/node_deflate.js [port] [on|off]
// "on": perMessageDeflate with the settings of our server's defaults
// (deflate = true in ws.listen): server and client windows 12 bits, zlib
// level 6, memLevel 5, threshold 128 bytes; ws's concurrencyLimit (10
// zlib jobs at once, run on libuv's thread pool) is left at its default.
// "off": perMessageDeflate false, as bench/node_echo.js.
// Prints "PORT <n>" once listening, and once a second on stderr
//   STAT conns <open connections> heap_kib <V8 heapUsed / 1024>
const path = require('path');
const { WebSocketServer } = require(
  path.join(__dirname, '..', 'spec', 'interop', 'node_modules', 'ws'));

const port = Number(process.argv[2] || 0);
const mode = process.argv[3] || 'on';
if (mode !== 'on' && mode !== 'off') {
  process.stderr.write('node_deflate: mode must be on or off\n');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 4 * 1024 * 1024,
  perMessageDeflate: mode === 'on' && {
    serverMaxWindowBits: 12,
    clientMaxWindowBits: 12,
    zlibDeflateOptions: { level: 6, memLevel: 5 },
    threshold: 128,
  },
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});

wss.on('listening', () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
  let left = 7200; // bounded: the benchmark kills the server long before
  const t = setInterval(() => {
    const kib = process.memoryUsage().heapUsed / 1024;
    process.stderr.write(`STAT conns ${wss.clients.size} heap_kib ${kib.toFixed(1)}\n`);
    if (--left <= 0) clearInterval(t);
  }, 1000);
});

wss.on('error', (err) => {
  process.stderr.write(`node_deflate: ${err.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

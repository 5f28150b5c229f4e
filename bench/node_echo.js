'use strict';
// Echo server on Node `ws`, the reference peer for bench/echo_bench.sh.
// Usage: node bench/node_echo.js [port]   (port 0 or none: any free port)
// With TLS_CERT and TLS_KEY (PEM files) in the environment it serves wss://.
// Listens on 127.0.0.1 and prints "PORT <n>" once it is listening. Text is
// echoed as text and binary as binary, with no compression.
const path = require('path');
const { WebSocketServer } = require(
  path.join(__dirname, '..', 'spec', 'interop', 'node_modules', 'ws'));

const port = Number(process.argv[2] || 0);
const options = {
  perMessageDeflate: false,
  maxPayload: 4 * 1024 * 1024, // the 1 MiB case plus a wide margin
};
let wss;
if (process.env.TLS_CERT) {
  // wss://: TLS_CERT and TLS_KEY are PEM files
  const fs = require('fs');
  const https = require('https');
  const server = https.createServer({
    cert: fs.readFileSync(process.env.TLS_CERT),
    key: fs.readFileSync(process.env.TLS_KEY),
  });
  wss = new WebSocketServer({ server, ...options });
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
  });
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, ...options });
  wss.on('listening', () => {
    process.stdout.write(`PORT ${wss.address().port}\n`);
  });
}

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // a peer's protocol error closes just that socket
});

wss.on('error', (err) => {
  process.stderr.write(`node_echo: ${err.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

'use strict';
// Node ws's client echo rate, the counterpart of bench/client_echo.lua:
// N connections, one message in flight each, against any echo server.
//   node bench/node_client_echo.js URL [conns] [size] [secs]
// wss:// trusts the CA file in $CA_FILE when set. Prints a RESULT line
// like client_echo.lua's; exit status 1 on a mismatch or failed connection.
const fs = require('fs');
const path = require('path');
const WebSocket = require(
  path.join(__dirname, '..', 'spec', 'interop', 'node_modules', 'ws'));

const [url, connsArg, sizeArg, secsArg] = process.argv.slice(2);
const conns = Number(connsArg || 50);
const size = Number(sizeArg || 16);
const secs = Number(secsArg || 5);
const opts = { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 };
if (process.env.CA_FILE) opts.ca = fs.readFileSync(process.env.CA_FILE);

let count = 0;
let bad = 0;
let failed = 0;
let open = 0;
const start = Date.now() + 1000; // 1 s warm-up, as client_echo.lua
const end = start + secs * 1000;
const payload = Buffer.alloc(size, 'x');

function finish() {
  console.log(`RESULT client=node-ws conns=${conns} size=${size} ` +
    `echoes=${count} secs=${secs.toFixed(2)} rate=${(count / secs).toFixed(1)} ` +
    `mismatches=${bad} conn_errors=${failed}`);
  process.exit(bad === 0 && failed === 0 && count > 0 ? 0 : 1);
}

for (let c = 1; c <= conns; c++) {
  const ws = new WebSocket(url, opts);
  let n = 0;
  let msg;
  const next = () => {
    n++;
    // a stamp, as client_echo.lua, so a stale or foreign echo is caught
    msg = Buffer.from(payload);
    msg.write(`${c}:${n}:`.slice(0, size));
    ws.send(msg, { binary: true });
  };
  ws.on('open', () => { open++; next(); });
  ws.on('message', (data) => {
    if (!msg.equals(data)) { bad++; ws.close(); return; }
    const now = Date.now();
    if (now >= start && now < end) count++;
    if (now < end) next(); else ws.close();
  });
  ws.on('error', (err) => { failed++; process.stderr.write(`connect: ${err.message}\n`); });
  ws.on('close', () => { open--; if (open <= 0) setImmediate(finish); });
}
setTimeout(finish, (secs + 15) * 1000);

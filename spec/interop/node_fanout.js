'use strict';
// Interop peer for broadcasts: many Node `ws` clients in one process.
//
//   node spec/interop/node_fanout.js URL N
//
// Opens N connections to URL (all at once), prints "open N" when every one
// is open, then checks what each receives: message i (from 1) must be the
// text "bcast <i> " padded with "." to its length, in order. Whenever a
// connection receives a message it prints nothing; every 0.2 s it prints
// "progress <messages received by all connections together>". When every
// connection is closed it prints
//   "done conns=<N> inorder=<connections that got 1..k in order for their
//    k> counts=<k:connections,...> codes=<code:connections,...>"
// and exits. Gives up after 60 seconds with "timeout".
const path = require('path');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));

const [url, nArg] = process.argv.slice(2);
const n = Number(nArg);
let open = 0;
let closed = 0;
let received = 0;
const conns = [];

function expected(i, len) {
  const head = 'bcast ' + i + ' ';
  return head + '.'.repeat(Math.max(0, len - head.length));
}

function finish() {
  let inorder = 0;
  const counts = {};
  const codes = {};
  for (const c of conns) {
    if (c.ok) inorder++;
    counts[c.count] = (counts[c.count] || 0) + 1;
    codes[c.code] = (codes[c.code] || 0) + 1;
  }
  const fmt = (o) => Object.keys(o).sort().map((k) => k + ':' + o[k]).join(',');
  console.log(`done conns=${conns.length} inorder=${inorder} counts=${fmt(counts)} codes=${fmt(codes)}`);
  process.exit(0);
}

for (let k = 0; k < n; k++) {
  const c = { count: 0, ok: true, code: 0 };
  conns.push(c);
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('open', () => {
    open++;
    if (open === n) console.log('open ' + n);
  });
  ws.on('message', (data, isBinary) => {
    c.count++;
    received++;
    const text = data.toString();
    if (isBinary || text !== expected(c.count, text.length)) c.ok = false;
  });
  ws.on('error', () => {});
  ws.on('close', (code) => {
    c.code = code;
    closed++;
    if (closed === n) finish();
  });
}

setInterval(() => console.log('progress ' + received), 200);
setTimeout(() => {
  console.log('timeout');
  process.exit(1);
}, 60000);

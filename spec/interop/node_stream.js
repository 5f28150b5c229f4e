'use strict';
// Interop peer for spec/stream_spec.lua: a Node `ws` server for streamed
// messages.
//
//   node spec/interop/node_stream.js SIZE
//
// Listens on 127.0.0.1 (any free port) and prints "PORT <n>". To a client
// that sends "go" it sends payloads.make('binary', SIZE) twice: first as
// 64 fragments, then as one frame. Then it takes the client's next
// message, which must be the same payload, and answers "ok SIZE SHA256"
// when its size and SHA-256 match, else "bad SIZE SHA256" with what came.
// Runs until SIGTERM, and never longer than 2 minutes.
const crypto = require('crypto');
const WebSocket = require('ws');
const payloads = require('./payloads');

const size = Number(process.argv[2]);
const expected = payloads.make('binary', size);
const want = crypto.createHash('sha256').update(expected).digest('hex');

const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0,
  maxPayload: size + 1, perMessageDeflate: false }, () => {
  console.log(`PORT ${wss.address().port}`);
});

wss.on('connection', (ws) => {
  let stage = 0;
  ws.on('message', (data) => {
    if (stage === 0) {
      stage = 1;
      const pieces = payloads.split(expected, 64);
      pieces.forEach((p, i) => ws.send(p, { binary: true, fin: i === 63 }));
      ws.send(expected, { binary: true });
    } else {
      const got = crypto.createHash('sha256').update(data).digest('hex');
      const ok = data.length === size && got === want;
      ws.send(`${ok ? 'ok' : 'bad'} ${data.length} ${got}`);
    }
  });
  ws.on('error', (e) => console.log(`error ${e.message}`));
});

process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.exit(0), 120000).unref();

'use strict';
// Interop peer: a WebSocket client on Node `ws`, driven by the Lua specs.
//
//   node spec/interop/node_client.js URL OUTFILE [--ca FILE] [--protocol P]
//        [--deflate JSON] -- STEP...
//
// Connects to URL (trusting only the CA in FILE for wss:// when --ca is
// given), runs the steps in order and appends one line per result to
// OUTFILE, then "done". Each STEP is one argument:
//   echo KIND SIZE          send payloads.make(KIND, SIZE), wait for the echo
//                           -> "echo KIND SIZE: <kind> <length> ok|mismatch"
//   fragment KIND SIZE N    the same in N frames split by bytes
//                           -> "fragment KIND SIZE N: <kind> <length> ok|mismatch"
//   send TEXT...            send TEXT as a text message
//   recv                    -> "recv <kind> <length>[ <text, when short>]"
//   expect KIND SIZE        receive and compare with payloads.make(KIND, SIZE)
//                           -> "expect KIND SIZE: <kind> <length> ok|mismatch"
//   ping PAYLOAD            ping and wait for the pong -> "pong PAYLOAD"
//   close CODE REASON...    close, wait for the close -> "closed CODE REASON"
//   wait-close              wait for the server's close -> "closed CODE REASON"
//   many N M                N more connections, opened together; once all
//                           are open each sends M numbered messages
//                           "client I message J <text payload>", one at a
//                           time, checking every echo; then all close
//                           -> "many N M: ok=<echoes> bad=<echoes> closed=<1000s>"
//   plain KIND SIZE         like echo, the message sent uncompressed
//   ext                     -> "ext <response Sec-WebSocket-Extensions|->"
//   params                  -> "params <negotiated parameters JSON|->"
//   stats                   -> "stats <counters>" (node_deflate.js)
// --deflate JSON turns permessage-deflate on: JSON is ws's perMessageDeflate
// option (true or an object: clientNoContextTakeover, threshold, ...).
// Pings from the server are logged as they come: "got-ping PAYLOAD".
// Failures: "error MESSAGE" (connecting), "unexpected-close CODE REASON".
// Gives up after 60 seconds with "timeout".
const fs = require('fs');
const path = require('path');
const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
const payloads = require('./payloads');
const deflate = require('./node_deflate');

const [url, outFile] = process.argv.slice(2, 4);
const dash = process.argv.indexOf('--');
const steps = dash > 0 ? process.argv.slice(dash + 1) : [];
const head = dash > 0 ? process.argv.slice(0, dash) : process.argv;

function option(name) {
  const i = head.indexOf(name);
  return i > 0 ? head[i + 1] : undefined;
}

function out(line) {
  fs.appendFileSync(outFile, `${line}\n`);
}

function finish(code) {
  out('done');
  process.exit(code);
}

const caFile = option('--ca');
const protocol = option('--protocol');
const connectOptions = {
  perMessageDeflate: deflate.option(option('--deflate')),
  maxPayload: 64 * 1024 * 1024,
  ca: caFile ? fs.readFileSync(caFile) : undefined,
};

// A connection whose messages are taken in order with next().
function open(target) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, protocol ? [protocol] : [], connectOptions);
    const queue = [];
    let answer = '-';
    ws.on('upgrade', (res) => { answer = res.headers['sec-websocket-extensions'] || '-'; });
    let waiter = null;
    let closed = null;
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary };
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(msg);
      } else {
        queue.push(msg);
      }
    });
    ws.on('ping', (data) => out(`got-ping ${data}`));
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(null);
      }
    });
    ws.on('error', (err) => reject(err));
    ws.on('open', () => resolve({
      ws,
      answer: () => answer,
      next: () => (queue.length > 0 ? Promise.resolve(queue.shift())
        : closed ? Promise.resolve(null)
          : new Promise((r) => { waiter = r; })),
      closed: () => closed,
      whenClosed: () => (closed ? Promise.resolve(closed)
        : new Promise((r) => ws.once('close', () => r(closed)))),
    }));
  });
}

function kindOf(msg) {
  return msg.isBinary ? 'binary' : 'text';
}

async function expectMessage(conn) {
  const msg = await conn.next();
  if (msg === null) {
    const c = conn.closed();
    out(`unexpected-close ${c.code} ${c.reason}`);
    finish(1);
  }
  return msg;
}

function verdict(msg, expected) {
  return `${kindOf(msg)} ${msg.data.length} ${Buffer.compare(msg.data, expected) === 0 ? 'ok' : 'mismatch'}`;
}

// N connections opened together; once all are open each sends M numbered
// messages, one at a time, checking every echo; then all close.
async function many(n, m) {
  let ok = 0;
  let bad = 0;
  let clean = 0;
  const opening = [];
  for (let i = 1; i <= n; i++) opening.push(open(url));
  const conns = await Promise.all(opening);
  await Promise.all(conns.map(async (conn, k) => {
    const i = k + 1;
    for (let j = 1; j <= m; j++) {
      const text = `client ${i} message ${j} ${payloads.make('text', (i * 31 + j * 7) % 200)}`;
      conn.ws.send(text);
      const msg = await conn.next();
      if (msg !== null && !msg.isBinary && msg.data.toString() === text) ok += 1;
      else bad += 1;
    }
    conn.ws.close(1000, `client ${i} done`);
    const c = await conn.whenClosed();
    if (c.code === 1000) clean += 1;
  }));
  return `ok=${ok} bad=${bad} closed=${clean}`;
}

async function run() {
  let conn;
  try {
    conn = await open(url);
  } catch (err) {
    out(`error ${err.code || err.message}`);
    finish(1);
  }
  for (const step of steps) {
    const [name, ...args] = step.split(' ');
    if (name === 'echo' || name === 'fragment' || name === 'plain') {
      const expected = payloads.make(args[0], Number(args[1]));
      const binary = args[0] === 'binary';
      if (name === 'echo' || name === 'plain') {
        conn.ws.send(expected, { binary, compress: name === 'echo' });
      } else {
        const pieces = payloads.split(expected, Number(args[2]));
        pieces.forEach((p, i) => conn.ws.send(p, { binary, fin: i === pieces.length - 1 }));
      }
      out(`${step}: ${verdict(await expectMessage(conn), expected)}`);
    } else if (name === 'ext') {
      out(`ext ${conn.answer()}`);
    } else if (name === 'params') {
      out(`params ${deflate.params(conn.ws)}`);
    } else if (name === 'stats') {
      out(`stats ${deflate.stats(conn.ws)}`);
    } else if (name === 'send') {
      conn.ws.send(args.join(' '));
    } else if (name === 'recv') {
      const msg = await expectMessage(conn);
      const text = !msg.isBinary && msg.data.length <= 100 ? ` ${msg.data}` : '';
      out(`recv ${kindOf(msg)} ${msg.data.length}${text}`);
    } else if (name === 'expect') {
      const expected = payloads.make(args[0], Number(args[1]));
      out(`${step}: ${verdict(await expectMessage(conn), expected)}`);
    } else if (name === 'ping') {
      const payload = args.join(' ');
      await new Promise((resolve) => {
        conn.ws.once('pong', (data) => { out(`pong ${data}`); resolve(); });
        conn.ws.ping(payload);
      });
    } else if (name === 'close' || name === 'wait-close') {
      if (name === 'close') conn.ws.close(Number(args[0]), args.slice(1).join(' '));
      const c = await conn.whenClosed();
      out(`closed ${c.code} ${c.reason}`);
    } else if (name === 'many') {
      out(`${step}: ${await many(Number(args[0]), Number(args[1]))}`);
    } else {
      out(`unknown step ${step}`);
      finish(1);
    }
  }
  if (conn.ws.readyState === WebSocket.OPEN) {
    conn.ws.close(1000);
    await conn.whenClosed();
  }
  finish(0);
}

setTimeout(() => { out('timeout'); finish(1); }, 60 * 1000).unref();
run().catch((err) => { out(`error ${err.message}`); finish(1); });

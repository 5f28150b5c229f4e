'use strict';
// Interop peer: a WebSocket server on Node `ws`, driven by the Lua specs.
//
//   node spec/interop/node_server.js [--cert FILE --key FILE]
//        [--max-payload BYTES] [--deflate JSON] [--unix PATH]
//
// Listens on 127.0.0.1, any free port, and prints "PORT <n>" once
// listening (wss:// when --cert and --key are given); with --unix, on a
// Unix socket at PATH instead, and prints "UNIX PATH". Every message is
// echoed with its kind, except text messages starting with "cmd:", which
// are commands:
//   cmd:close [CODE [REASON...]]  close (no CODE: a close frame with no code)
//   cmd:terminate                 drop TCP with no close frame
//   cmd:ping PAYLOAD              ping; the pong is answered with "pong:PAYLOAD"
//   cmd:send KIND SIZE            send payloads.make(KIND, SIZE)
//   cmd:fragment KIND SIZE N      the same message in N frames, split by bytes
//   cmd:header NAME               send "header NAME VALUE" (request header)
//   cmd:plain KIND SIZE           send payloads.make(KIND, SIZE) uncompressed
//   cmd:stats                     send "stats <counters>" (node_deflate.js;
//                                 the counters from before this reply)
//   cmd:params                    send "params <negotiated parameters JSON|->"
// --deflate JSON turns permessage-deflate on: JSON is ws's perMessageDeflate
// option (true or an object: serverNoContextTakeover, threshold, ...).
// Events are printed as lines, the request path naming the connection:
//   open PATH PROTOCOL|-   ping PATH PAYLOAD   close PATH CODE REASON
//   error PATH MESSAGE
//   offer PATH <request Sec-WebSocket-Extensions|->
//   answer PATH <response Sec-WebSocket-Extensions|->  (both after open)
//   stats PATH <counters>                      (just before close)
// Runs until SIGTERM, and never longer than 5 minutes (an orphan left by a
// killed spec run goes away by itself).
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const { WebSocketServer } = require(path.join(__dirname, 'node_modules', 'ws'));
const payloads = require('./payloads');
const deflate = require('./node_deflate');

function option(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function log(line) {
  process.stdout.write(`${line}\n`);
}

const certFile = option('--cert');
const keyFile = option('--key');
const common = {
  perMessageDeflate: deflate.option(option('--deflate')),
  // above the 16 MiB case unless a limit is asked for
  maxPayload: Number(option('--max-payload') || 64 * 1024 * 1024),
  handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false),
};

const listener = certFile
  ? https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) })
  : http.createServer();
const wss = new WebSocketServer({ server: listener, ...common });

function command(ws, req, text) {
  const [name, ...args] = text.slice(4).split(' ');
  switch (name) {
    case 'close':
      if (args.length === 0) ws.close();
      else ws.close(Number(args[0]), args.slice(1).join(' '));
      break;
    case 'terminate':
      ws.terminate();
      break;
    case 'ping':
      ws.ping(args.join(' '));
      break;
    case 'send':
      ws.send(payloads.make(args[0], Number(args[1])), { binary: args[0] === 'binary' });
      break;
    case 'fragment': {
      const pieces = payloads.split(payloads.make(args[0], Number(args[1])), Number(args[2]));
      pieces.forEach((piece, i) => {
        ws.send(piece, { binary: args[0] === 'binary', fin: i === pieces.length - 1 });
      });
      break;
    }
    case 'plain':
      ws.send(payloads.make(args[0], Number(args[1])),
        { binary: args[0] === 'binary', compress: false });
      break;
    case 'stats':
      ws.send(`stats ${deflate.stats(ws)}`);
      break;
    case 'params':
      ws.send(`params ${deflate.params(ws)}`);
      break;
    case 'header':
      ws.send(`header ${args[0]} ${req.headers[args[0].toLowerCase()]}`);
      break;
    default:
      ws.send(`unknown command ${name}`);
  }
}

// The Sec-WebSocket-Extensions value of each handshake response, by request.
const answers = new WeakMap();
wss.on('headers', (headers, req) => {
  const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
  if (line) answers.set(req, line.slice(line.indexOf(':') + 1).trim());
});

wss.on('connection', (ws, req) => {
  const where = req.url;
  log(`open ${where} ${ws.protocol || '-'}`);
  log(`offer ${where} ${req.headers['sec-websocket-extensions'] || '-'}`);
  log(`answer ${where} ${answers.get(req) || '-'}`);
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length >= 4 && data.toString('latin1', 0, 4) === 'cmd:') {
      command(ws, req, data.toString());
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('ping', (data) => log(`ping ${where} ${data}`));
  ws.on('pong', (data) => {
    if (ws.readyState === ws.OPEN) ws.send(`pong:${data}`);
  });
  ws.on('close', (code, reason) => {
    log(`stats ${where} ${deflate.stats(ws)}`);
    log(`close ${where} ${code} ${reason}`);
  });
  ws.on('error', (err) => log(`error ${where} ${err.message}`));
});

listener.on('tlsClientError', (err) => log(`tls-error ${err.code || err.message}`));
const unixPath = option('--unix');
if (unixPath) listener.listen(unixPath, () => log(`UNIX ${unixPath}`));
else listener.listen(0, '127.0.0.1', () => log(`PORT ${listener.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
setTimeout(() => process.exit(0), 300 * 1000).unref();

'use strict';
// permessage-deflate instrumentation shared by the Node peers: counts, per
// connection, the payload bytes of the compressed messages `ws` sends and
// receives, before and after zlib, by wrapping its PerMessageDeflate. The
// numbers mean what our conn:deflate_stats() means:
//   tx_raw/tx_wire  bytes given to compress / the compressed frame payloads
//   rx_wire/rx_raw  compressed frame payloads received / bytes inflated
//   tx_msgs/rx_msgs compressed messages sent / received (frames with FIN)
// Uncompressed messages (RSV1 clear) are not counted.
const path = require('path');

const PerMessageDeflate = require(
  path.join(__dirname, 'node_modules', 'ws', 'lib', 'permessage-deflate'));

const kStats = Symbol('lua-ws-interop-stats');

function counters(ext) {
  if (!ext[kStats]) {
    ext[kStats] = { tx_raw: 0, tx_wire: 0, rx_wire: 0, rx_raw: 0, tx_msgs: 0, rx_msgs: 0 };
  }
  return ext[kStats];
}

const { compress, decompress } = PerMessageDeflate.prototype;

PerMessageDeflate.prototype.compress = function countedCompress(data, fin, callback) {
  const s = counters(this);
  const n = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  compress.call(this, data, fin, (err, buf) => {
    if (!err) {
      s.tx_raw += n;
      s.tx_wire += buf.length;
      if (fin) s.tx_msgs += 1;
    }
    callback(err, buf);
  });
};

PerMessageDeflate.prototype.decompress = function countedDecompress(data, fin, callback) {
  const s = counters(this);
  const n = data.length;
  decompress.call(this, data, fin, (err, buf) => {
    if (!err) {
      s.rx_wire += n;
      s.rx_raw += buf.length;
      if (fin) s.rx_msgs += 1;
    }
    callback(err, buf);
  });
};

function extensionOf(ws) {
  return ws._extensions && ws._extensions[PerMessageDeflate.extensionName];
}

// "tx_raw=N tx_wire=N rx_wire=N rx_raw=N tx_msgs=N rx_msgs=N" for ws (all
// 0 when permessage-deflate was not negotiated).
function stats(ws) {
  const ext = extensionOf(ws);
  const s = ext ? counters(ext) : counters({});
  return Object.keys(s).map((k) => `${k}=${s[k]}`).join(' ');
}

// The negotiated parameters as JSON, keys sorted ("-" when none).
function params(ws) {
  const ext = extensionOf(ws);
  if (!ext || !ext.params) return '-';
  const p = {};
  Object.keys(ext.params).sort().forEach((k) => { p[k] = ext.params[k]; });
  return JSON.stringify(p);
}

// The --deflate option: JSON for ws's perMessageDeflate (true, false or
// an object of its options), false when absent.
function option(text) {
  return text === undefined ? false : JSON.parse(text);
}

module.exports = { stats, params, option };

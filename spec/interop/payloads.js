'use strict';
// Deterministic payloads shared by the Node peers and the Lua specs
// (spec/interop/peers.lua and payloads.py build the same bytes):
//   binary(n): byte i is (31 * i + 7) mod 256 (every byte value, period 256)
//   text(n):   byte i is 32 + (7 * i) mod 95 (printable ASCII, period 95)
//   utf8(n):   UTF8_SAMPLE repeated n times (1- to 4-byte UTF-8 sequences)
//   json(n):   the first n bytes of the lines
//              {"seq":I,"user":"user-J","event":"tick","ok":true}\n
//              for I = 0, 1, 2, ... and J = I mod 97 (compressible text)

const UTF8_SAMPLE = 'h\u00e9llo \u2713 \u{1D11E} \u65e5\u672c ';

function json(n) {
  const lines = [];
  let length = 0;
  for (let i = 0; length < n; i++) {
    const line = `{"seq":${i},"user":"user-${i % 97}","event":"tick","ok":true}\n`;
    lines.push(line);
    length += line.length;
  }
  return Buffer.from(lines.join('').slice(0, n), 'latin1');
}

function make(kind, n) {
  if (kind === 'utf8') return Buffer.from(UTF8_SAMPLE.repeat(n), 'utf8');
  if (kind === 'json') return json(n);
  const buf = Buffer.allocUnsafe(n);
  if (kind === 'binary') {
    for (let i = 0; i < n; i++) buf[i] = (31 * i + 7) & 255;
  } else if (kind === 'text') {
    for (let i = 0; i < n; i++) buf[i] = 32 + ((7 * i) % 95);
  } else {
    throw new Error(`unknown payload kind ${kind}`);
  }
  return buf;
}

// Split buf into n pieces by bytes (the last takes the remainder); text
// pieces may end inside a UTF-8 sequence, which a fragment may.
function split(buf, n) {
  const size = Math.floor(buf.length / n);
  const pieces = [];
  for (let i = 0; i < n; i++) {
    pieces.push(buf.subarray(i * size, i === n - 1 ? buf.length : (i + 1) * size));
  }
  return pieces;
}

module.exports = { UTF8_SAMPLE, make, split };

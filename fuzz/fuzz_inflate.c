/*
 * Fuzz target for permessage-deflate payloads (ws_deflate.c).
 *
 * Input: four header bytes, then the data.
 *   h[0]  bits 0-2: inflater window bits - 8; bit 3: no context takeover;
 *         bits 4-6: deflater window bits - 8 (at most the inflater's)
 *   h[1]  the inflate limit for the untrusted pass, in 64-byte steps
 *         (0..16320), and the compression level (h[1] % 10)
 *   h[2], h[3]  seed for the piece sizes and the message boundary
 *
 * 1. Untrusted: the data, cut into two messages, each fed in pieces of
 *    fuzzer-chosen sizes, is inflated. Invariants: the output never holds
 *    more than limit + 1 bytes (limit on success); every result is 0,
 *    WS_EINFLATE or WS_EINFLATE_LIMIT and has a name; after an error a
 *    reset makes the inflater usable again.
 * 2. Differential: the data is compressed (in pieces) twice as two
 *    messages, and inflated back (in other pieces) with a limit of exactly
 *    its size: both messages must come back equal to it.
 * 3. Bounded: the data, cut into two messages as in 1, is inflated with
 *    ws_inflate_part (at most a fuzzer-chosen `room` a call, the input
 *    zlib leaves given again) and ended with ws_inflate_message(NULL, 0,
 *    1): the same bytes and the same result as one ws_inflate_message
 *    call on the whole message, no call appending more than room, and
 *    the end adding at most END_MAX bytes.
 * Every piece is copied to a heap block of exactly its size, so a read past
 * either end is an ASan report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

typedef struct {
  uint32_t s;
} seq;

static uint32_t next(seq *q) {
  q->s = q->s * 1103515245u + 12345u;
  return q->s >> 16;
}

/* A piece size: often small, sometimes the rest. */
static size_t piece(seq *q, size_t left) {
  uint32_t r = next(q);
  size_t k = (r & 3) == 0 ? left : (size_t)(r >> 2) % 97;
  return k < left ? k : left;
}

static int inflate_copy(ws_inflater *f, const uint8_t *p, size_t n, int fin,
                        uint64_t max, ws_buf *out) {
  uint8_t *c = malloc(n ? n : 1);
  int rc;
  CHECK(c != NULL);
  if (n) memcpy(c, p, n);
  rc = ws_inflate_message(f, c, n, fin, max, out);
  free(c);
  return rc;
}

/* Inflate one message in pieces; the result of the last call made. */
static int inflate_pieces(ws_inflater *f, const uint8_t *p, size_t n,
                          uint64_t max, ws_buf *out, seq *q) {
  size_t pos = 0;
  int rc;
  do {
    size_t k = piece(q, n - pos);
    rc = inflate_copy(f, p + pos, k, pos + k == n, max, out);
    pos += k;
    CHECK(out->len <= max + 1);
  } while (rc == 0 && pos < n);
  return rc;
}

static void untrusted(const ws_deflate_config *cfg, const uint8_t *data,
                      size_t n, uint64_t max, seq *q) {
  ws_inflater *f;
  ws_buf out = {0};
  size_t cut = n ? next(q) % (n + 1) : 0;
  int m;
  CHECK(ws_inflater_new(&f, cfg) == 0);
  for (m = 0; m < 2; m++) {
    const uint8_t *p = m ? data + cut : data;
    size_t len = m ? n - cut : cut;
    int rc = inflate_pieces(f, p, len, max, &out, q);
    CHECK(rc == 0 || rc == WS_EINFLATE || rc == WS_EINFLATE_LIMIT);
    CHECK(strcmp(ws_errname(rc), "unknown") != 0);
    if (rc == 0) CHECK(out.len <= max);
    if (rc == WS_EINFLATE_LIMIT) CHECK(out.len == max + 1);
    if (rc != 0) {
      static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9,
                                      0xc9, 0x07, 0x00};
      CHECK(ws_inflate_message(f, hello, 7, 1, 5, &out) == rc);
      CHECK(ws_inflater_reset(f) == 0);
      out.len = 0;
      CHECK(ws_inflate_message(f, hello, 7, 1, 5, &out) == 0);
      CHECK(out.len == 5 && memcmp(out.p, "Hello", 5) == 0);
    }
    out.len = 0;
  }
  ws_deflate_buf_free(cfg, &out);
  ws_inflater_free(f);
}

static void differential(const ws_deflate_config *tx,
                         const ws_deflate_config *rx, const uint8_t *data,
                         size_t n, seq *q) {
  ws_deflater *d;
  ws_inflater *f;
  ws_buf z = {0}, out = {0};
  int m;
  CHECK(ws_deflater_new(&d, tx) == 0);
  CHECK(ws_inflater_new(&f, rx) == 0);
  for (m = 0; m < 2; m++) {
    size_t pos = 0;
    z.len = 0;
    out.len = 0;
    do {
      size_t k = piece(q, n - pos);
      CHECK(ws_deflate_message(d, data + pos, k, pos + k == n, &z) == 0);
      pos += k;
    } while (pos < n);
    CHECK(inflate_pieces(f, z.p, z.len, n, &out, q) == 0);
    CHECK(out.len == n && (n == 0 || memcmp(out.p, data, n) == 0));
  }
  ws_deflate_buf_free(tx, &z);
  ws_deflate_buf_free(rx, &out);
  ws_deflater_free(d);
  ws_inflater_free(f);
}

/* What the message's end (00 00 ff ff after the last piece) may add: the
 * rest of a match zlib could not write (258 bytes) and what 32 more bits
 * decode to in a hostile stream (a 2-bit length-and-distance pair copies
 * 258 bytes). */
#define END_MAX (258u + 16u * 258u)

static void bounded(const ws_deflate_config *cfg, const uint8_t *data,
                    size_t n, uint64_t max, seq *q) {
  ws_inflater *f, *ref;
  ws_buf out = {0}, want = {0};
  size_t cut = n ? next(q) % (n + 1) : 0;
  size_t room = 1 + next(q) % 300;
  int m;
  CHECK(ws_inflater_new(&f, cfg) == 0);
  CHECK(ws_inflater_new(&ref, cfg) == 0);
  for (m = 0; m < 2; m++) {
    const uint8_t *p = m ? data + cut : data;
    size_t len = m ? n - cut : cut, pos = 0, used, before;
    int rc = 0, rc_ref = inflate_copy(ref, p, len, 1, max, &want);
    while (rc == 0 && pos < len) {
      size_t k = piece(q, len - pos), off = 0;
      uint8_t *c = malloc(k ? k : 1);
      CHECK(c != NULL);
      if (k) memcpy(c, p + pos, k);
      do {
        before = out.len;
        rc = ws_inflate_part(f, c + off, k - off, max, room, &out, &used);
        CHECK(out.len - before <= room && used <= k - off);
        off += used;
        /* no progress only when the room filled up */
        CHECK(rc != 0 || used > 0 || off == k || out.len - before == room);
      } while (rc == 0 && off < k);
      free(c);
      pos += k;
    }
    if (rc == 0) {
      before = out.len;
      rc = ws_inflate_message(f, NULL, 0, 1, max, &out);
      CHECK(out.len - before <= END_MAX);
    }
    if (cfg->window_bits == 15 || (rc == 0 && rc_ref == 0)) {
      CHECK(rc == rc_ref);
      CHECK(out.len == want.len &&
            (out.len == 0 || memcmp(out.p, want.p, out.len) == 0));
    } else {
      /* A stream that refers further back than a small window is invalid,
       * and zlib sees it only as far as the output of the current call
       * does not cover the distance: one call with room for everything
       * may accept it where calls of `room` bytes fail (whole mode's own
       * verdict on it depends on how the input was cut, too). With a
       * 15-bit window no distance reaches past it. */
      CHECK(rc == WS_EINFLATE || rc == WS_EINFLATE_LIMIT || rc == 0);
    }
    if (rc != 0 || rc_ref != 0) {
      CHECK(ws_inflater_reset(f) == 0 && ws_inflater_reset(ref) == 0);
    }
    out.len = want.len = 0;
  }
  {
    size_t used;
    CHECK(ws_inflate_part(f, NULL, 0, max, 0, &out, &used) == WS_EINVALID);
  }
  ws_deflate_buf_free(cfg, &out);
  ws_deflate_buf_free(cfg, &want);
  ws_inflater_free(f);
  ws_inflater_free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t len) {
  ws_deflate_config rx, tx;
  seq q;
  int rxb, txb;
  if (len < 4) return 0;
  rxb = 8 + (in[0] & 7);
  txb = 8 + ((in[0] >> 4) & 7);
  if (txb > rxb) txb = rxb;
  ws_deflate_config_init(&rx);
  rx.window_bits = rxb;
  rx.no_context_takeover = (in[0] & 8) != 0;
  tx = rx;
  tx.window_bits = txb;
  tx.level = in[1] % 10;
  q.s = (uint32_t)in[2] << 8 | in[3];
  untrusted(&rx, in + 4, len - 4, (uint64_t)in[1] * 64, &q);
  differential(&tx, &rx, in + 4, len - 4, &q);
  bounded(&rx, in + 4, len - 4, (uint64_t)in[1] * 64, &q);
  return 0;
}

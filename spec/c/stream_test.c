/*
 * Part mode of the engine (ws_engine_stream): messages come out as parts
 * as their bytes arrive. Checked here:
 *  - a 1 GiB single frame, and a 256 MiB compressed message (zeros,
 *    about 1000:1), go through with the engine's own memory bounded by a
 *    few KiB (plain) or zlib's state plus one part (compressed), counted
 *    by the allocator;
 *  - whole mode and part mode agree: random messages (text with
 *    multi-byte characters, binary, empty, fragmented, compressed or
 *    not, pings between fragments) fed whole, a byte at a time and in
 *    random pieces give the same messages, joined from parts, and the
 *    same close event;
 *  - UTF-8 across parts, invalid text mid-message (parts before it
 *    stand, then 1007), a character cut off at the end (1007), 1009 at
 *    max_message_size and max_frame_size, ws_engine_stream after input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "check.h"


/* ------------------------------------------------------------ allocator */

typedef struct {
  size_t live, peak;
} counter;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counter *c = ud;
  size_t *h = ptr ? (size_t *)ptr - 2 : NULL;
  if (h) {
    if (h[0] != osize) {
      fprintf(stderr, "FAIL: osize %zu for a block of %zu\n", osize, h[0]);
      failed++;
    }
    c->live -= h[0];
  }
  if (nsize == 0) {
    free(h);
    return NULL;
  }
  h = realloc(h, nsize + 2 * sizeof(size_t));
  if (h == NULL) return NULL;
  h[0] = nsize;
  c->live += nsize;
  if (c->live > c->peak) c->peak = c->live;
  return h + 2;
}

static int fixed_rand(void *ud, uint8_t *buf, size_t n) {
  uint32_t *s = ud;
  size_t i;
  for (i = 0; i < n; i++) {
    *s = *s * 1103515245u + 12345u;
    buf[i] = (uint8_t)(*s >> 16);
  }
  return 0;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

static const ws_pmd_params pmd15 = {0, 0, 15, 15};

/* ------------------------------------------------- one huge frame, plain */

/* A server engine reads a masked 1 GiB binary frame in 64 KiB reads. */
static void test_huge_frame(void) {
  const uint64_t total = (uint64_t)1 << 30;
  const size_t chunk = 65536;
  uint8_t *buf = malloc(chunk + WS_FRAME_MAX_HEADER);
  uint8_t key[4] = {1, 2, 3, 4};
  ws_frame_header h;
  ws_config cfg;
  ws_engine e;
  counter c = {0, 0};
  uint64_t sent = 0, got = 0, sum_out = 0;
  unsigned phase = 0;
  int parts = 0, fins = 0, bad = 0, hs;
  size_t maxpart = 0;

  ws_config_init(&cfg, WS_ROLE_SERVER);
  cfg.max_message_size = total;
  cfg.max_frame_size = total;
  cfg.alloc = count_alloc;
  cfg.alloc_ud = &c;
  ws_engine_init(&e, &cfg);
  check(ws_engine_stream(&e, 1) == 0, "stream on before input");
  memset(&h, 0, sizeof h);
  h.fin = 1;
  h.opcode = WS_OP_BINARY;
  h.masked = 1;
  memcpy(h.key, key, 4);
  h.length = total;
  hs = ws_frame_encode(buf, WS_FRAME_MAX_HEADER, &h);
  check(hs == 14, "64-bit header");
  {
    size_t off = (size_t)hs;
    while (sent < total || off > 0) {
      size_t n = chunk - off, pos = 0;
      if ((uint64_t)n > total - sent) n = (size_t)(total - sent);
      /* payload byte x holds ((x + 14) / chunk) & 0xff: one value per
       * read, so a misplaced part shows at its ends */
      memset(buf + off, (int)(((sent + 14) / chunk) & 0xff), n);
      phase = ws_mask(buf + off, n, key, phase);
      sent += n;
      n += off;
      off = 0;
      while (pos < n) {
        ws_event ev;
        size_t k;
        pos += ws_engine_recv(&e, buf + pos, n - pos, &ev);
        if (ev.type == WS_EV_NONE) break;
        if (ev.type != WS_EV_PART || ev.kind != WS_OP_BINARY) {
          bad++;
          continue;
        }
        parts++;
        fins += ev.fin;
        got += ev.len;
        if (ev.len > maxpart) maxpart = ev.len;
        if (ev.len > 0) {
          k = ev.len - 1;
          sum_out += ev.data[0] != (uint8_t)((got - ev.len + 14) / chunk);
          sum_out += ev.data[k] != (uint8_t)((got - 1 + 14) / chunk);
        }
      }
    }
  }
  check(bad == 0, "huge frame: only binary parts");
  check(got == total && sum_out == 0, "huge frame: every byte, in place");
  check(fins == 1, "huge frame: one fin");
  check(maxpart <= chunk, "huge frame: parts no larger than a read");
  check(parts >= (int)(total / chunk), "huge frame: delivered as it came");
  check(c.peak < 4096, "huge frame: the engine keeps nothing of it");
  if (c.peak >= 4096) fprintf(stderr, "  peak %zu\n", c.peak);
  ws_engine_free(&e);
  free(buf);
}

/* ------------------------------------------- a huge compressed message */

static void test_huge_compressed(void) {
  const size_t mib = (size_t)1 << 20, chunk = 65536;
  const int n_mib = 256;
  uint8_t *zeros = calloc(1, mib);
  ws_deflate_config dc;
  ws_deflater *d;
  ws_buf z = {0};
  ws_config cfg;
  ws_engine e;
  counter c = {0, 0};
  uint8_t key[4] = {9, 8, 7, 6}, *wire;
  ws_frame_header h;
  size_t wlen, pos = 0, maxpart = 0;
  uint64_t got = 0;
  int i, hs, fins = 0, bad = 0;

  ws_deflate_config_init(&dc);
  ws_deflater_new(&d, &dc);
  for (i = 0; i < n_mib; i++)
    ws_deflate_message(d, zeros, mib, i == n_mib - 1, &z);
  ws_deflater_free(d);
  wire = malloc(z.len + WS_FRAME_MAX_HEADER);
  memset(&h, 0, sizeof h);
  h.fin = 1;
  h.rsv = 4;
  h.opcode = WS_OP_BINARY;
  h.masked = 1;
  memcpy(h.key, key, 4);
  h.length = z.len;
  hs = ws_frame_encode(wire, WS_FRAME_MAX_HEADER, &h);
  memcpy(wire + hs, z.p, z.len);
  ws_mask(wire + hs, z.len, key, 0);
  wlen = (size_t)hs + z.len;
  ws_deflate_buf_free(NULL, &z);

  ws_config_init(&cfg, WS_ROLE_SERVER);
  cfg.max_message_size = (uint64_t)n_mib * mib;
  cfg.alloc = count_alloc;
  cfg.alloc_ud = &c;
  ws_engine_init(&e, &cfg);
  ws_engine_deflate(&e, &pmd15, -1, 8, 0);
  ws_engine_stream(&e, 1);
  while (pos < wlen) {
    size_t n = wlen - pos < chunk ? wlen - pos : chunk, off = 0;
    while (off < n) {
      ws_event ev;
      size_t k;
      off += ws_engine_recv(&e, wire + pos + off, n - off, &ev);
      if (ev.type == WS_EV_NONE) break;
      if (ev.type != WS_EV_PART) {
        bad++;
        continue;
      }
      k = ev.len;
      bad += k > 0 && (ev.data[0] != 0 || memcmp(ev.data, zeros, k) != 0);
      got += ev.len;
      fins += ev.fin;
      if (ev.len > maxpart) maxpart = ev.len;
    }
    pos += n;
  }
  check(bad == 0, "compressed: only parts, of zeros");
  check(got == (uint64_t)n_mib * mib && fins == 1,
        "compressed: the whole message, one fin");
  check(maxpart <= 16384 + 258, "compressed: parts of at most 16 KiB");
  /* zlib's inflate state and window (~40 KiB) and one part */
  check(c.peak < 128 * 1024, "compressed: memory bounded by a part");
  if (c.peak >= 128 * 1024) fprintf(stderr, "  peak %zu\n", c.peak);
  ws_engine_free(&e);
  free(wire);
  free(zeros);
}

/* ----------------------------------------------- whole mode == part mode */

typedef struct {
  uint8_t *data; /* messages joined, each preceded by kind and length */
  size_t len, cap;
  uint8_t *cur; /* the message being joined from parts */
  size_t cur_len, cur_cap;
  int close_code, close_error, pings, order_bad;
} transcript;

static void put(uint8_t **p, size_t *len, size_t *cap, const void *src,
                size_t n) {
  if (*len + n > *cap) {
    *cap = (*len + n) * 2 + 64;
    *p = realloc(*p, *cap);
  }
  if (n) memcpy(*p + *len, src, n);
  *len += n;
}

static void log_message(transcript *t, int kind, const uint8_t *p,
                        size_t n) {
  uint8_t k = (uint8_t)kind;
  put(&t->data, &t->len, &t->cap, &k, 1);
  put(&t->data, &t->len, &t->cap, &n, sizeof n);
  put(&t->data, &t->len, &t->cap, p, n);
}

static void take_event(transcript *t, const ws_event *ev) {
  switch (ev->type) {
    case WS_EV_MESSAGE:
      log_message(t, ev->kind, ev->data, ev->len);
      break;
    case WS_EV_PART:
      put(&t->cur, &t->cur_len, &t->cur_cap, ev->data, ev->len);
      if (ev->fin) {
        log_message(t, ev->kind, t->cur, t->cur_len);
        t->cur_len = 0;
      }
      break;
    case WS_EV_PING:
      t->pings++;
      break;
    case WS_EV_CLOSE:
      t->close_code = ev->code;
      t->close_error = ev->error;
      break;
    default:
      t->order_bad++;
  }
}

/* Feed wire[len] to a new server engine in pieces (mode 0 whole, 1 a
 * byte at a time, 2 random sizes), then end it. */
static void run(const uint8_t *wire, size_t len, int stream, int deflate,
                uint64_t max_msg, int mode, transcript *t) {
  ws_config cfg;
  ws_engine e;
  uint8_t *copy = malloc(len ? len : 1);
  size_t pos = 0;
  ws_event ev;
  memcpy(copy, wire, len);
  memset(t, 0, sizeof *t);
  ws_config_init(&cfg, WS_ROLE_SERVER);
  cfg.max_message_size = max_msg;
  ws_engine_init(&e, &cfg);
  if (deflate) ws_engine_deflate(&e, &pmd15, -1, 8, 0);
  ws_engine_stream(&e, stream);
  while (pos < len && ws_engine_failing(&e) == WS_V_NONE) {
    size_t n = mode == 0 ? len - pos : mode == 1 ? 1 : 1 + rnd() % 300;
    size_t off = 0;
    if (n > len - pos) n = len - pos;
    while (off < n) {
      off += ws_engine_recv(&e, copy + pos + off, n - off, &ev);
      if (ev.type == WS_EV_NONE) break;
      take_event(t, &ev);
    }
    pos += n;
  }
  if (ws_engine_end(&e, WS_END_EOF, NULL, &ev) == 1) take_event(t, &ev);
  ws_engine_free(&e);
  free(copy);
}

static int same(const transcript *a, const transcript *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len)) &&
         a->close_code == b->close_code && a->close_error == b->close_error &&
         a->pings == b->pings && a->order_bad == 0 && b->order_bad == 0;
}

static void free_t(transcript *t) {
  free(t->data);
  free(t->cur);
}

/* Random text: ASCII and 2-, 3- and 4-byte characters. */
static size_t random_text(uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t r = rnd() % 4;
    if (r == 0 && i + 2 <= n) {
      p[i++] = 0xC3, p[i++] = 0xA9;
    } else if (r == 1 && i + 3 <= n) {
      p[i++] = 0xE2, p[i++] = 0x82, p[i++] = 0xAC;
    } else if (r == 2 && i + 4 <= n) {
      p[i++] = 0xF0, p[i++] = 0x9F, p[i++] = 0x98, p[i++] = 0x80;
    } else {
      p[i++] = (uint8_t)('a' + rnd() % 26);
    }
  }
  return i;
}

/* A client's output: random messages, some sent in parts with pings
 * between them; `corrupt` spoils one text byte to 0xFF in the middle. */
static size_t make_wire(uint8_t **out, int deflate, int corrupt) {
  ws_config cfg;
  ws_engine c;
  uint32_t seed = rnd();
  uint8_t msg[5000];
  int i, nmsg = 1 + (int)(rnd() % 12);
  size_t n;
  const uint8_t *o;
  ws_config_init(&cfg, WS_ROLE_CLIENT);
  cfg.rand = fixed_rand;
  cfg.rand_ud = &seed;
  ws_engine_init(&c, &cfg);
  if (deflate) ws_engine_deflate(&c, &pmd15, -1, 8, 0);
  for (i = 0; i < nmsg; i++) {
    size_t len = rnd() % 4 == 0 ? 0 : rnd() % sizeof msg;
    ws_opcode kind = rnd() % 2 ? WS_OP_TEXT : WS_OP_BINARY;
    unsigned flags = rnd() % 2 ? WS_SEND_COMPRESS : WS_SEND_NO_COMPRESS;
    if (kind == WS_OP_TEXT) len = random_text(msg, len);
    else {
      size_t k;
      for (k = 0; k < len; k++) msg[k] = (uint8_t)rnd();
    }
    if (rnd() % 2) {
      ws_engine_send_ex(&c, kind, msg, len, rnd() % 3 ? 0 : 1 + rnd() % 700,
                        flags);
    } else {
      /* in parts cut anywhere (inside characters too), pings between */
      size_t off = 0;
      do {
        size_t k = rnd() % 3 == 0 ? 0 : rnd() % 900;
        if (k > len - off) k = len - off;
        ws_engine_send_part_ex(&c, kind, msg + off, k, off + k == len,
                               flags);
        off += k;
        if (rnd() % 3 == 0) ws_engine_ping(&c, (const uint8_t *)"p", 1);
      } while (c.sending);
    }
  }
  o = ws_engine_output(&c, &n);
  *out = malloc(n + 1);
  memcpy(*out, o, n);
  ws_engine_free(&c);
  if (corrupt && !deflate && n > 20) {
    /* unmask-aware corruption is not needed: any flipped byte makes a
     * run fail somewhere, the same way in both modes */
    (*out)[n / 2] ^= 0x5A;
  }
  return n;
}

static void test_differential(void) {
  int round, mismatches = 0, rounds = 400;
  for (round = 0; round < rounds; round++) {
    int deflate = round % 2, corrupt = round % 5 == 4;
    uint64_t max_msg = round % 7 == 6 ? 3000 : 1 << 20;
    uint8_t *wire;
    size_t n = make_wire(&wire, deflate, corrupt);
    transcript whole, part;
    int mode;
    run(wire, n, 0, deflate, max_msg, 0, &whole);
    for (mode = 0; mode < 3; mode++) {
      run(wire, n, 1, deflate, max_msg, mode, &part);
      if (!same(&whole, &part)) {
        mismatches++;
        if (mismatches < 5)
          fprintf(stderr, "  round %d mode %d: %zu/%zu bytes, close %d/%d\n",
                  round, mode, whole.len, part.len, whole.close_code,
                  part.close_code);
      }
      free_t(&part);
    }
    free_t(&whole);
    free(wire);
  }
  check(mismatches == 0, "part mode joins to whole mode's messages");
}

/* ------------------------------------------------------------- details */

/* Server frames (unmasked) for a client engine. */
static size_t frame(uint8_t *out, int op, int fin, const char *p, size_t n) {
  ws_frame_header h;
  int hs;
  memset(&h, 0, sizeof h);
  h.fin = (unsigned)fin;
  h.opcode = (unsigned)op;
  h.length = n;
  hs = ws_frame_encode(out, WS_FRAME_MAX_HEADER, &h);
  memcpy(out + hs, p, n);
  return (size_t)hs + n;
}

typedef struct {
  ws_event ev[16];
  char data[16][64];
  int n;
} evs;

/* Feed all of in (in pieces of `step`) to e, keeping the events. */
static void feed(ws_engine *e, uint8_t *in, size_t len, size_t step,
                 evs *out) {
  size_t pos = 0;
  while (pos < len) {
    size_t n = len - pos < step ? len - pos : step, off = 0;
    while (off < n) {
      ws_event ev;
      off += ws_engine_recv(e, in + pos + off, n - off, &ev);
      if (ev.type == WS_EV_NONE) break;
      if (out->n < 16) {
        out->ev[out->n] = ev;
        memcpy(out->data[out->n], ev.data, ev.len < 64 ? ev.len : 64);
        out->n++;
      }
    }
    pos += n;
  }
}

static ws_engine client(uint64_t max_msg, uint64_t max_frame) {
  ws_config cfg;
  ws_engine e;
  ws_config_init(&cfg, WS_ROLE_CLIENT);
  cfg.max_message_size = max_msg;
  cfg.max_frame_size = max_frame;
  ws_engine_init(&e, &cfg);
  ws_engine_stream(&e, 1);
  return e;
}

static void test_details(void) {
  uint8_t w[512];
  size_t n;
  ws_event ev;
  evs got;

  { /* a euro sign cut across frames and reads; a ping in between */
    ws_engine e = client(1000, 1000);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_TEXT, 0, "a\xE2", 2);
    n += frame(w + n, WS_OP_PING, 1, "hi", 2);
    n += frame(w + n, WS_OP_CONTINUATION, 0, "", 0);
    n += frame(w + n, WS_OP_CONTINUATION, 1, "\x82\xAC", 2);
    feed(&e, w, n, n, &got);
    check(got.n == 3 && got.ev[0].type == WS_EV_PART && got.ev[0].len == 2 &&
              !got.ev[0].fin && memcmp(got.data[0], "a\xE2", 2) == 0 &&
              got.ev[1].type == WS_EV_PING && got.ev[2].type == WS_EV_PART &&
              got.ev[2].fin && got.ev[2].len == 2 &&
              got.ev[2].kind == WS_OP_TEXT,
          "text split inside a character, ping between parts");
    ws_engine_free(&e);
  }
  { /* an empty message is one empty part with fin */
    ws_engine e = client(1000, 1000);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_BINARY, 1, "", 0);
    feed(&e, w, n, 1, &got);
    check(got.n == 1 && got.ev[0].type == WS_EV_PART && got.ev[0].len == 0 &&
              got.ev[0].fin && got.ev[0].kind == WS_OP_BINARY,
          "empty message: one part with fin");
    check(ws_engine_stream(&e, 0) == WS_ESTATE, "stream after input");
    ws_engine_free(&e);
  }
  { /* a part arrives before its frame is complete */
    ws_engine e = client(1000, 1000);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_BINARY, 1, "0123456789", 10);
    feed(&e, w, n - 4, n, &got);
    check(got.n == 1 && got.ev[0].len == 6 && !got.ev[0].fin,
          "a part before the frame ends");
    feed(&e, w + n - 4, 4, 4, &got);
    check(got.n == 2 && got.ev[1].len == 4 && got.ev[1].fin &&
              memcmp(got.data[1], "6789", 4) == 0,
          "the rest with fin");
    ws_engine_free(&e);
  }
  { /* invalid UTF-8 mid-message: parts before stand, then 1007 */
    ws_engine e = client(1000, 1000);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_TEXT, 0, "good", 4);
    n += frame(w + n, WS_OP_CONTINUATION, 1, "ba\xFF", 3);
    feed(&e, w, n, n, &got);
    check(got.n == 1 && got.ev[0].type == WS_EV_PART && got.ev[0].len == 4,
          "the valid part is delivered");
    check(ws_engine_failing(&e) == WS_V_INVALID_UTF8, "1007 pending");
    ws_engine_recv(&e, w, 0, &ev);
    check(ev.type == WS_EV_CLOSE && ev.code == 1007, "then the close, 1007");
    ws_engine_free(&e);
  }
  { /* a character cut off by the last frame */
    ws_engine e = client(1000, 1000);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_TEXT, 1, "x\xC3", 2);
    feed(&e, w, n, n, &got);
    check(got.n == 0 && ws_engine_failing(&e) == WS_V_INVALID_UTF8,
          "cut-off character at fin: 1007, no part");
    ws_engine_free(&e);
  }
  { /* max_message_size counts the whole message */
    ws_engine e = client(10, 10);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_BINARY, 0, "123456", 6);
    n += frame(w + n, WS_OP_CONTINUATION, 1, "78901", 5);
    feed(&e, w, n, n, &got);
    check(got.n == 1 && got.ev[0].len == 6 &&
              ws_engine_failing(&e) == WS_V_MESSAGE_TOO_BIG,
          "1009 when the parts pass max_message_size");
    ws_engine_free(&e);
  }
  { /* max_frame_size too */
    ws_engine e = client(100, 4);
    memset(&got, 0, sizeof got);
    n = frame(w, WS_OP_BINARY, 1, "12345", 5);
    feed(&e, w, n, n, &got);
    check(got.n == 0 && ws_engine_failing(&e) == WS_V_FRAME_TOO_BIG,
          "1009 for a frame over max_frame_size");
    ws_engine_free(&e);
  }
}

int main(void) {
  test_details();
  test_differential();
  test_huge_frame();
  test_huge_compressed();
  printf("stream_test: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

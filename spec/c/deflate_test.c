/*
 * permessage-deflate payloads (csrc/core/ws_deflate.c): round trips of
 * several sizes and kinds of data, fed whole, a byte at a time and in
 * random pieces, for every pair of window sizes with and without context
 * takeover; the examples of RFC 7692 7.2.3; the inflate limit against a
 * bomb; corrupt input. Every allocation goes through a counting allocator
 * that checks the sizes it is given back and that nothing leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "ws.h"
#include "check.h"


/* ------------------------------------------------------------ allocator */

typedef struct {
  size_t live;  /* bytes allocated and not freed */
  size_t peak;
  size_t blocks;
} counter;

/* Each block records its size in front so that osize can be checked. */
static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  counter *c = ud;
  size_t *h = ptr ? (size_t *)ptr - 2 : NULL;
  if (h) {
    if (h[0] != osize) {
      fprintf(stderr, "FAIL: osize %zu for a block of %zu\n", osize, h[0]);
      failed++;
    }
    c->live -= h[0];
    c->blocks--;
  }
  if (nsize == 0) {
    free(h);
    return NULL;
  }
  h = realloc(h, nsize + 2 * sizeof(size_t));
  if (h == NULL) return NULL;
  h[0] = nsize;
  c->live += nsize;
  c->blocks++;
  if (c->live > c->peak) c->peak = c->live;
  return h + 2;
}

static counter mem;

/* The same, refusing every allocation once `left` reaches 0. */
static long left = -1;
static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  if (nsize > 0 && left >= 0 && left-- == 0) return NULL;
  return count_alloc(ud, ptr, osize, nsize);
}

static ws_deflate_config config(int wb, int no_takeover) {
  ws_deflate_config cfg;
  ws_deflate_config_init(&cfg);
  cfg.window_bits = wb;
  cfg.no_context_takeover = no_takeover;
  cfg.alloc = count_alloc;
  cfg.alloc_ud = &mem;
  return cfg;
}

/* ----------------------------------------------------------------- data */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

/* JSON-like text, or random bytes. */
static void fill(uint8_t *p, size_t n, int random) {
  static const char *words[] = {"{\"id\":", "\"price\":", "\"bid\",",
                                "\"ask\",", "1234.5", "}", "\"qty\":7,"};
  size_t i = 0;
  if (random) {
    for (; i < n; i++) p[i] = (uint8_t)rnd();
    return;
  }
  while (i < n) {
    const char *w = words[rnd() % 7];
    size_t k = strlen(w);
    if (k > n - i) k = n - i;
    memcpy(p + i, w, k);
    i += k;
  }
}

/* Piece sizes: 0 whole, 1 a byte at a time, 2 random (0..300 bytes). */
static size_t piece(int mode, size_t left) {
  size_t k;
  if (mode == 0) return left;
  if (mode == 1) return left ? 1 : 0;
  k = rnd() % 301;
  return k < left ? k : left;
}

/* Compress msg in pieces, inflate the result in (other) pieces, compare. */
static int roundtrip(ws_deflater *d, ws_inflater *f, const uint8_t *msg,
                     size_t n, int mode) {
  ws_buf z = {0}, out = {0};
  size_t pos = 0;
  int ok = 1;
  do {
    size_t k = piece(mode, n - pos);
    if (ws_deflate_message(d, msg + pos, k, pos + k == n, &z) != 0) ok = 0;
    pos += k;
  } while (ok && pos < n);
  pos = 0;
  do {
    size_t k = piece(mode, z.len - pos);
    if (ws_inflate_message(f, z.p + pos, k, pos + k == z.len, n, &out) != 0)
      ok = 0;
    pos += k;
  } while (ok && pos < z.len);
  if (ok && (out.len != n || (n && memcmp(out.p, msg, n) != 0))) ok = 0;
  {
    ws_deflate_config c = config(15, 0); /* the counting allocator */
    ws_deflate_buf_free(&c, &z);
    ws_deflate_buf_free(&c, &out);
  }
  return ok;
}

/* ----------------------------------------------------------------- tests */

static void test_roundtrips(void) {
  static const size_t sizes[] = {0, 1, 125, 65536, 1u << 20};
  uint8_t *msg = malloc(1u << 20);
  char what[160];
  int tx, rx, nt, random, mode;
  size_t s;
  for (tx = 8; tx <= 15; tx++)
    for (rx = tx; rx <= 15; rx++)
      for (nt = 0; nt <= 1; nt++) {
        ws_deflate_config ct = config(tx, nt), cr = config(rx, nt);
        ws_deflater *d;
        ws_inflater *f;
        int ok = ws_deflater_new(&d, &ct) == 0 && ws_inflater_new(&f, &cr) == 0;
        check(ok, "deflater and inflater made");
        if (!ok) continue;
        for (s = 0; s < sizeof sizes / sizeof *sizes; s++)
          for (random = 0; random <= 1; random++)
            for (mode = 0; mode <= 2; mode++) {
              /* Byte-at-a-time up to 64 KiB; big sizes only for the
               * widest windows, to keep the run short. */
              if (mode == 1 && sizes[s] > 65536) continue;
              if (sizes[s] > 65536 && !(tx == rx && (tx == 8 || tx == 15)))
                continue;
              fill(msg, sizes[s], random);
              /* Twice: the second message uses the first's window when
               * context takeover is on. */
              snprintf(what, sizeof what,
                       "round trip %zu %s bytes, pieces %d, windows %d/%d, "
                       "%s", sizes[s], random ? "random" : "json", mode, tx,
                       rx, nt ? "no takeover" : "takeover");
              check(roundtrip(d, f, msg, sizes[s], mode) &&
                        roundtrip(d, f, msg, sizes[s], mode),
                    what);
            }
        ws_deflater_free(d);
        ws_inflater_free(f);
      }
  free(msg);
}

static int bytes_are(const ws_buf *b, const uint8_t *p, size_t n) {
  return b->len == n && memcmp(b->p, p, n) == 0;
}

static void test_rfc_examples(void) {
  static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
  static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                   0x65, 0x6c, 0x6c, 0x6f, 0x00};
  static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9,
                                   0xc9, 0x07, 0x00, 0x00};
  static const uint8_t two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
  static const uint8_t empty[] = {0x00};
  const uint8_t *h = (const uint8_t *)"Hello";
  ws_deflate_config c = config(15, 0), cn = config(15, 1);
  ws_deflater *d, *dn;
  ws_inflater *f, *fn;
  ws_buf b = {0};
  ws_deflater_new(&d, &c);
  ws_deflater_new(&dn, &cn);
  ws_inflater_new(&f, &c);
  ws_inflater_new(&fn, &cn);

  /* 7.2.3.1 and 7.2.3.2: compressing. */
  ws_deflate_message(d, h, 5, 1, &b);
  check(bytes_are(&b, hello1, 7), "7.2.3.1: Hello compresses to f2 48 cd c9 c9 07 00");
  b.len = 0;
  ws_deflate_message(d, h, 5, 1, &b);
  check(bytes_are(&b, hello2, 5), "7.2.3.2: a second Hello with takeover is f2 00 11 00 00");
  b.len = 0;
  ws_deflate_message(dn, h, 5, 1, &b);
  b.len = 0;
  ws_deflate_message(dn, h, 5, 1, &b);
  check(bytes_are(&b, hello1, 7), "7.2.3.2: without takeover the second Hello is the first's bytes");
  b.len = 0;
  ws_deflate_message(dn, NULL, 0, 1, &b);
  check(bytes_are(&b, empty, 1), "7.2.3.6: an empty message compresses to 00");

  /* Inflating the same bytes. */
  b.len = 0;
  check(ws_inflate_message(f, hello1, 7, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.1 inflates to Hello");
  b.len = 0;
  check(ws_inflate_message(f, hello2, 5, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.2 inflates to Hello with takeover");
  b.len = 0;
  check(ws_inflate_message(fn, stored, sizeof stored, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.3 (stored block) inflates to Hello");
  b.len = 0;
  check(ws_inflate_message(fn, two, sizeof two, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.5 (two blocks) inflates to Hello");
  b.len = 0;
  check(ws_inflate_message(fn, empty, 1, 1, 100, &b) == 0 && b.len == 0,
        "7.2.3.6: 00 inflates to an empty message");
  /* 7.2.3.4: BFINAL, then a message referring back into it: the window
   * survives the end of the DEFLATE stream. */
  b.len = 0;
  check(ws_inflate_message(f, bfinal, sizeof bfinal, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.4 (BFINAL) inflates to Hello");
  b.len = 0;
  check(ws_inflate_message(f, hello2, 5, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "after BFINAL, f2 00 11 00 00 still refers back to Hello");
  /* The same BFINAL payload split in pieces, then a plain message. */
  b.len = 0;
  check(ws_inflate_message(f, bfinal, 3, 0, 100, &b) == 0 &&
            ws_inflate_message(f, bfinal + 3, sizeof bfinal - 3, 1, 100, &b) == 0 &&
            bytes_are(&b, h, 5), "7.2.3.4 in two pieces");

  ws_deflate_buf_free(&c, &b);
  ws_deflater_free(d);
  ws_deflater_free(dn);
  ws_inflater_free(f);
  ws_inflater_free(fn);
}

static void test_limit(void) {
  const size_t big = 16u << 20, max = 1u << 20;
  uint8_t *zeros = calloc(1, big);
  ws_deflate_config c = config(15, 0);
  ws_deflater *d;
  ws_inflater *f;
  ws_buf z = {0}, out = {0};
  size_t pos = 0, peak0;
  int rc = 0;
  ws_deflater_new(&d, &c);
  ws_deflate_message(d, zeros, big, 1, &z);
  free(zeros);
  check(z.len < 20000, "16 MiB of zeros compress to a small bomb");
  ws_inflater_new(&f, &c);
  mem.peak = mem.live;
  peak0 = mem.live;
  while (rc == 0 && pos < z.len) {
    size_t k = z.len - pos < 1024 ? z.len - pos : 1024;
    rc = ws_inflate_message(f, z.p + pos, k, pos + k == z.len, max, &out);
    pos += k;
  }
  check(rc == WS_EINFLATE_LIMIT, "the bomb stops with WS_EINFLATE_LIMIT");
  check(out.len == max + 1 && out.cap <= max + 1,
        "at most max + 1 bytes inflated and held");
  /* The message, plus zlib's 32 KiB window allocated at the first byte. */
  check(mem.peak - peak0 <= max + 1 + 40000, "memory stays at the limit");
  check(ws_inflate_message(f, z.p, 1, 1, max, &out) == WS_EINFLATE_LIMIT,
        "the error sticks until a reset");
  check(ws_inflater_reset(f) == 0, "reset after the limit");
  out.len = 0;
  {
    static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    check(ws_inflate_message(f, hello1, 7, 1, 5, &out) == 0 && out.len == 5,
          "a message of exactly max bytes inflates after the reset");
    out.len = 0;
    check(ws_inflate_message(f, hello1, 7, 1, 4, &out) == WS_EINFLATE_LIMIT &&
              out.len == 5,
          "one byte over max is refused");
  }
  ws_deflate_buf_free(&c, &z);
  ws_deflate_buf_free(&c, &out);
  ws_deflater_free(d);
  ws_inflater_free(f);
}

static void test_corrupt(void) {
  static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0x12};
  static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  ws_deflate_config c = config(15, 0);
  ws_inflater *f;
  ws_buf out = {0};
  int rc;
  ws_inflater_new(&f, &c);
  rc = ws_inflate_message(f, bad, sizeof bad, 1, 1000, &out);
  check(rc == WS_EINFLATE, "a corrupt stream gives WS_EINFLATE");
  check(strcmp(ws_errname(rc), "inflate") == 0 &&
            strcmp(ws_strerror(rc), "inflate: corrupt deflate stream") == 0,
        "WS_EINFLATE is named");
  check(ws_inflate_message(f, hello1, 7, 1, 1000, &out) == WS_EINFLATE,
        "the error sticks until a reset");
  out.len = 0;
  check(ws_inflater_reset(f) == 0 &&
            ws_inflate_message(f, hello1, 7, 1, 1000, &out) == 0 &&
            out.len == 5,
        "after a reset the inflater works again");
  ws_deflate_buf_free(&c, &out);
  ws_inflater_free(f);
}

static void test_config(void) {
  ws_deflate_config c = config(7, 0);
  ws_deflater *d = (ws_deflater *)&c;
  ws_inflater *f = (ws_inflater *)&c;
  check(ws_deflater_new(&d, &c) == WS_EINVALID && d == NULL,
        "window bits 7 refused (deflater)");
  check(ws_inflater_new(&f, &c) == WS_EINVALID && f == NULL,
        "window bits 7 refused (inflater)");
  c = config(16, 0);
  check(ws_deflater_new(&d, &c) == WS_EINVALID, "window bits 16 refused");
  c = config(15, 0);
  c.level = 10;
  check(ws_deflater_new(&d, &c) == WS_EINVALID, "level 10 refused");
  c.level = 0;
  c.mem_level = 0;
  check(ws_deflater_new(&d, &c) == WS_EINVALID, "mem_level 0 refused");
  c.mem_level = 1;
  check(ws_deflater_new(&d, &c) == 0, "level 0, mem_level 1 accepted");
  ws_deflater_free(d);
  ws_deflater_free(NULL);
  ws_inflater_free(NULL);
}

/* Inflate raw DEFLATE with zlib itself, one output byte per call: the
 * history then lives only in zlib's window, so a distance further back
 * than the window given to inflateInit2 is refused ("invalid distance too
 * far back"), which a large output buffer would hide. 1 if p[n] (plus the
 * flush tail) inflates to exactly want[wn]. z persists across messages. */
static int strict_inflate(z_stream *z, const uint8_t *p, size_t n,
                          const uint8_t *want, size_t wn) {
  static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
  uint8_t *buf = malloc(n + 4), byte;
  size_t got = 0;
  int ok = buf != NULL;
  if (!ok) return 0;
  memcpy(buf, p, n);
  memcpy(buf + n, tail, 4);
  z->next_in = buf;
  z->avail_in = (uInt)(n + 4);
  while (ok && z->avail_in > 0) {
    int rc;
    z->next_out = &byte;
    z->avail_out = 1;
    rc = inflate(z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) ok = 0;
    if (z->avail_out == 0) {
      if (got >= wn || want[got] != byte) ok = 0;
      got++;
    } else if (rc == Z_BUF_ERROR) {
      break;
    }
  }
  free(buf);
  return ok && got == wn;
}

static int strict_one(int wb, const uint8_t *p, size_t n, const uint8_t *want,
                      size_t wn) {
  z_stream z;
  int ok;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -wb) != Z_OK) return 0;
  ok = strict_inflate(&z, p, n, want, wn);
  inflateEnd(&z);
  return ok;
}

/* Window bits 8: zlib cannot deflate raw streams with 8, ws_deflate.c uses
 * 9, and claims zlib then never reaches back more than 250 bytes. Check it
 * against zlib's own inflater held to 256 bytes of history, on data full
 * of matches at every distance, over two messages with context takeover;
 * and check the strict inflater is strict: a 15-bit stream with matches
 * 200 to 1200 bytes back is refused. */
static void test_window_8(void) {
  const size_t n = 65536;
  uint8_t *msg = malloc(n);
  ws_deflate_config c8 = config(8, 0), c15 = config(15, 0);
  ws_deflater *d8, *d15;
  ws_buf z = {0};
  z_stream strict;
  size_t i;
  int kind, m, ok;
  ws_deflater_new(&d8, &c8);
  ws_deflater_new(&d15, &c15);
  memset(&strict, 0, sizeof strict);
  inflateInit2(&strict, -8);
  for (kind = 0; kind < 3; kind++) {
    /* json-like; random; random with repeats 200..1200 bytes back */
    fill(msg, n, kind != 0);
    if (kind == 2)
      for (i = 1200; i < n; i++)
        if (rnd() % 4) msg[i] = msg[i - 200 - (i % 1001)];
    /* Twice: the second message refers back into the first. */
    for (m = 0; m < 2; m++) {
      z.len = 0;
      ws_deflate_message(d8, msg, n, 1, &z);
      ok = strict_inflate(&strict, z.p, z.len, msg, n);
      check(ok, "window bits 8 (compressed with 9) inflates with a "
                "256-byte window");
    }
  }
  inflateEnd(&strict);
  z.len = 0;
  ws_deflate_message(d15, msg, n, 1, &z);
  check(!strict_one(8, z.p, z.len, msg, n),
        "a 15-bit stream is refused by the strict 256-byte inflater");
  check(strict_one(15, z.p, z.len, msg, n),
        "and accepted with a 32 KiB window");
  ws_deflate_buf_free(&c8, &z);
  ws_deflater_free(d8);
  ws_deflater_free(d15);
  free(msg);
}

/* Out of memory at each allocation in turn: WS_ENOMEM, never a crash or a
 * leak, and the objects can still be freed. */
static void test_nomem(void) {
  uint8_t msg[4000];
  long n;
  int reached = 0;
  fill(msg, sizeof msg, 0);
  for (n = 0; n < 40 && !reached; n++) {
    ws_deflate_config c = config(15, 0);
    ws_deflater *d = NULL;
    ws_inflater *f = NULL;
    ws_buf z = {0}, out = {0};
    int rc;
    c.alloc = failing_alloc;
    left = n;
    rc = ws_deflater_new(&d, &c);
    if (rc == 0) rc = ws_inflater_new(&f, &c);
    if (rc == 0) rc = ws_deflate_message(d, msg, sizeof msg, 1, &z);
    if (rc == 0) rc = ws_inflate_message(f, z.p, z.len, 1, 1u << 20, &out);
    if (rc == 0) {
      reached = 1;
      check(out.len == sizeof msg && memcmp(out.p, msg, sizeof msg) == 0,
            "round trip with every allocation granted");
    } else {
      check(rc == WS_ENOMEM, "an allocation failure is WS_ENOMEM");
    }
    left = -1;
    ws_deflate_buf_free(&c, &z);
    ws_deflate_buf_free(&c, &out);
    ws_deflater_free(d);
    ws_inflater_free(f);
    check(mem.live == 0, "nothing leaks after an allocation failure");
  }
  check(reached, "enough allocations end in a round trip");
}

/* The same bomb through the engine, fed 1 KiB at a time as a socket would:
 * the connection fails with 1009 and the engine's memory (counted through
 * its allocator) stays near max_message_size. */
static void test_engine_bomb(void) {
  const size_t big = 16u << 20, max = 1u << 20;
  uint8_t *zeros = calloc(1, big), hdr[WS_FRAME_MAX_HEADER], *wire;
  ws_deflate_config c = config(15, 0);
  ws_deflater *d;
  ws_buf z = {0};
  ws_config cfg;
  ws_engine e;
  ws_event ev;
  ws_frame_header h = {1, 4, WS_OP_BINARY, 0, {0}, 0};
  ws_pmd_params agreed = {0, 0, 15, 15};
  size_t pos = 0, n, peak0;
  int hl, closed = 0;
  ws_deflater_new(&d, &c);
  ws_deflate_message(d, zeros, big, 1, &z);
  free(zeros);
  ws_deflater_free(d);
  h.length = z.len;
  hl = ws_frame_encode(hdr, sizeof hdr, &h);
  n = (size_t)hl + z.len;
  wire = malloc(n);
  memcpy(wire, hdr, (size_t)hl);
  memcpy(wire + hl, z.p, z.len);
  ws_deflate_buf_free(&c, &z);

  ws_config_init(&cfg, WS_ROLE_CLIENT);
  cfg.max_message_size = max;
  cfg.alloc = count_alloc;
  cfg.alloc_ud = &mem;
  check(ws_engine_init(&e, &cfg) == 0 &&
            ws_engine_deflate(&e, &agreed, -1, 8, 0) == 0,
        "engine with permessage-deflate");
  peak0 = mem.live;
  mem.peak = mem.live;
  while (pos < n && !closed) {
    size_t k = n - pos < 1024 ? n - pos : 1024, used = 0;
    while (used < k) {
      used += ws_engine_recv(&e, wire + pos + used, k - used, &ev);
      if (ev.type == WS_EV_CLOSE) closed = 1;
    }
    pos += k;
  }
  if (!closed) closed = ws_engine_fail_pending(&e, &ev);
  check(closed && ev.type == WS_EV_CLOSE && ev.code == 1009 &&
            strcmp(ev.error_name, "protocol:message_too_big") == 0,
        "the engine fails the bomb with 1009 protocol:message_too_big");
  /* the message up to the limit, zlib's inflate state and 32 KiB window,
   * the pmd state and a close frame's output */
  check(mem.peak - peak0 <= max + 1 + 64 * 1024,
        "the engine's memory stays at the limit plus zlib's window");
  ws_engine_free(&e);
  free(wire);
}

int main(void) {
  test_nomem();
  test_window_8();
  test_config();
  test_rfc_examples();
  test_corrupt();
  test_limit();
  test_engine_bomb();
  test_roundtrips();
  check(mem.live == 0 && mem.blocks == 0, "every block freed");
  printf("deflate_test: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

/*
 * Microbenchmarks of the lua-ws C core: masking, UTF-8 validation, the
 * receive path of the engine and its send path.
 *
 * Every case is timed next to a memcpy of the same size in the same run,
 * so the figures can be read against what this machine's memory system
 * does anyway. Each measurement warms up once, then keeps the best of
 * several repetitions (at least MIN_TIME seconds in all). Work that only
 * prepares a repetition (re-copying input the engine unmasks in place,
 * re-initialising an engine) runs outside the timed region. Each result
 * is checked afterwards (event counts, checksums, round trips), which
 * also keeps the compiler from dropping the work.
 *
 * Usage: bench_core [--quick]
 *   --quick  small sizes and few repetitions: a smoke test for CI.
 * Exit status 1 if a result fails its check; missed speed targets are
 * reported but do not fail the run.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws.h"

#define MIB (1024u * 1024u)

typedef struct {
  int quick;
  double min_time; /* seconds of timed repetitions per measurement */
  int min_reps;
  size_t big;      /* "64 MiB" buffers */
  size_t frames;   /* small frames per parse run */
  size_t stream_frames; /* 64 KiB frames per stream run */
  size_t small_reps;    /* 1 KiB mask calls per run */
  size_t send_small;    /* 16-byte messages per send run */
  int failures;
  /* figures kept for the target check at the end */
  double unmask_big_gbs, ascii_gbs, mixed_gbs, small_mfps;
} bench;

/* ------------------------------------------------------------ helpers */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "bench_core: out of memory (%zu bytes)\n", n);
    exit(2);
  }
  return p;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void check(bench *b, int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "bench_core: CHECK FAILED: %s\n", what);
    b->failures++;
  }
}

/* A unit of timed work and its untimed preparation. */
typedef struct {
  void (*prep)(void *ctx); /* may be NULL */
  void (*run)(void *ctx);
  void *ctx;
} job;

/* Warm up, then repeat until both the time and count floors are met;
 * returns the best single repetition in seconds. */
static double best_of(const bench *b, const job *j) {
  double best = 1e30, spent = 0;
  int reps = 0;
  if (j->prep) j->prep(j->ctx);
  j->run(j->ctx);
  while (reps < b->min_reps || spent < b->min_time) {
    double t0, dt;
    if (j->prep) j->prep(j->ctx);
    t0 = now();
    j->run(j->ctx);
    dt = now() - t0;
    if (dt < best) best = dt;
    spent += dt;
    if (++reps >= 100000) break;
  }
  return best;
}

/* The memcpy baseline: `count` copies of `size` bytes between two
 * buffers. The call goes through a volatile pointer so it stays a real
 * libc memcpy even for small sizes, like the calls it is compared to. */
typedef struct {
  uint8_t *dst, *src;
  size_t size, count;
} copy_ctx;

static void copy_run(void *p) {
  static void *(*volatile cpy)(void *, const void *, size_t) = memcpy;
  copy_ctx *c = p;
  size_t i;
  for (i = 0; i < c->count; i++) cpy(c->dst, c->src, c->size);
}

static double memcpy_gbs(const bench *b, size_t size, size_t count) {
  copy_ctx c;
  job j = {NULL, copy_run, NULL};
  double t;
  c.dst = xmalloc(size);
  c.src = xmalloc(size);
  memset(c.src, 0x5A, size);
  memset(c.dst, 0, size);
  c.size = size;
  c.count = count;
  j.ctx = &c;
  t = best_of(b, &j);
  free(c.dst);
  free(c.src);
  return (double)size * (double)count / t / 1e9;
}

static void print_header(void) {
  printf("%-40s %9s %9s %8s %9s %8s %6s\n", "case", "size", "best ms",
         "GB/s", "M items/s", "memcpy", "ratio");
  printf("%-40s %9s %9s %8s %9s %8s %6s\n", "", "", "", "", "", "GB/s",
         "");
}

static void fmt_size(char *out, size_t n, size_t size) {
  if (size >= MIB && size % MIB == 0)
    snprintf(out, n, "%zu MiB", size / MIB);
  else if (size >= 1024 && size % 1024 == 0)
    snprintf(out, n, "%zu KiB", size / 1024);
  else if (size >= 1000000)
    snprintf(out, n, "%.1f MB", (double)size / 1e6);
  else
    snprintf(out, n, "%zu B", size);
}

/* One table row. bytes and items are per repetition; items 0 leaves the
 * column empty. Returns the case's GB/s. */
static double row(const char *name, size_t size, double secs, double bytes,
                  double items, double base_gbs) {
  char sz[32], it[32];
  double gbs = bytes / secs / 1e9;
  fmt_size(sz, sizeof sz, size);
  if (items > 0)
    snprintf(it, sizeof it, "%.2f", items / secs / 1e6);
  else
    snprintf(it, sizeof it, "-");
  printf("%-40s %9s %9.3f %8.2f %9s %8.2f %6.2f\n", name, sz, secs * 1e3,
         gbs, it, base_gbs, gbs / base_gbs);
  fflush(stdout);
  return gbs;
}

/* ------------------------------------------------------------ masking */

typedef struct {
  uint8_t *buf;
  size_t len, count;
  unsigned phase; /* 0..3, or 4: rotate 1, 2, 3 across calls */
  uint8_t key[4];
  uint64_t calls; /* total ws_mask calls over the buffer */
} mask_ctx;

static void mask_run(void *p) {
  mask_ctx *c = p;
  size_t i;
  unsigned ph = c->phase;
  for (i = 0; i < c->count; i++) {
    if (c->phase == 4) ph = 1 + (unsigned)(i % 3);
    ws_mask(c->buf, c->len, c->key, ph);
  }
  c->calls += c->count;
}

/* Each call XORs the whole buffer with the key rotated by its phase, so
 * the result depends only on how many calls used each phase. Replay that
 * byte by byte and compare. */
static int mask_verify(const mask_ctx *c, const uint8_t *orig,
                       uint64_t per_phase[4]) {
  uint8_t k[4] = {0, 0, 0, 0};
  size_t i;
  unsigned ph, j;
  for (ph = 0; ph < 4; ph++)
    if (per_phase[ph] & 1)
      for (j = 0; j < 4; j++) k[j] ^= c->key[(ph + j) & 3];
  for (i = 0; i < c->len; i++)
    if (c->buf[i] != (uint8_t)(orig[i] ^ k[i & 3])) return 0;
  return 1;
}

static void bench_mask(bench *b, size_t size, size_t count, unsigned phase,
                       const char *name) {
  mask_ctx c;
  job j = {NULL, mask_run, NULL};
  uint8_t *orig;
  uint64_t per_phase[4] = {0, 0, 0, 0}, seed = 42;
  double t, gbs;
  size_t i;

  c.buf = xmalloc(size);
  orig = xmalloc(size);
  for (i = 0; i < size; i++) orig[i] = (uint8_t)splitmix(&seed);
  memcpy(c.buf, orig, size);
  c.len = size;
  c.count = count;
  c.phase = phase;
  memcpy(c.key, "\x37\xfa\x21\x3d", 4);
  c.calls = 0;
  j.ctx = &c;
  t = best_of(b, &j);

  /* Account for every call made (warm-up included). */
  if (phase < 4) {
    per_phase[phase] = c.calls;
  } else {
    uint64_t runs = c.calls / count;
    for (i = 0; i < count; i++) per_phase[1 + i % 3] += runs;
  }
  check(b, mask_verify(&c, orig, per_phase), name);
  gbs = row(name, size, t, (double)size * (double)count, 0,
            memcpy_gbs(b, size, count));
  if (size == b->big && phase == 0) b->unmask_big_gbs = gbs;
  free(c.buf);
  free(orig);
}

/* ------------------------------------------------------------- UTF-8 */

/* Append code point cp as UTF-8 if it fits before end; returns the new
 * write position or NULL when full. */
static uint8_t *put_utf8(uint8_t *p, const uint8_t *end, uint32_t cp) {
  size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  if ((size_t)(end - p) < n) return NULL;
  switch (n) {
    case 1:
      *p++ = (uint8_t)cp;
      break;
    case 2:
      *p++ = (uint8_t)(0xC0 | (cp >> 6));
      *p++ = (uint8_t)(0x80 | (cp & 0x3F));
      break;
    case 3:
      *p++ = (uint8_t)(0xE0 | (cp >> 12));
      *p++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      *p++ = (uint8_t)(0x80 | (cp & 0x3F));
      break;
    default:
      *p++ = (uint8_t)(0xF0 | (cp >> 18));
      *p++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      *p++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      *p++ = (uint8_t)(0x80 | (cp & 0x3F));
      break;
  }
  return p;
}

enum { TEXT_ASCII, TEXT_MIXED, TEXT_CJK, TEXT_EMOJI };

/* Deterministic text of exactly len bytes; the tail that no longer fits
 * a whole character is padded with spaces. */
static void gen_text(uint8_t *buf, size_t len, int kind) {
  static const uint32_t accented[] = {0xE9, 0xFC, 0xDF, 0xF1,
                                      0xF6, 0xE0, 0xE7, 0xE8};
  uint64_t seed = 7;
  uint8_t *p = buf, *end = buf + len, *q;
  unsigned word = 0;
  for (;;) {
    uint64_t r = splitmix(&seed);
    uint32_t cp;
    switch (kind) {
      case TEXT_ASCII:
        /* Words of lowercase letters and an occasional newline. */
        if (word == 0) {
          word = 2 + (unsigned)(r % 8);
          cp = (r >> 8) % 13 == 0 ? '\n' : ' ';
        } else {
          word--;
          cp = 'a' + (uint32_t)((r >> 8) % 26);
        }
        break;
      case TEXT_MIXED:
        /* As ASCII, but one letter in ten is a 2-byte letter. */
        if (word == 0) {
          word = 2 + (unsigned)(r % 8);
          cp = (r >> 8) % 13 == 0 ? '.' : ' ';
        } else {
          word--;
          if ((r >> 8) % 10 == 0)
            cp = accented[(r >> 16) % 8];
          else
            cp = 'a' + (uint32_t)((r >> 16) % 26);
        }
        break;
      case TEXT_CJK:
        /* CJK ideographs with an ideographic full stop now and then. */
        cp = r % 20 == 0 ? 0x3002 : 0x4E00 + (uint32_t)((r >> 8) % 0x5000);
        break;
      default:
        cp = 0x1F600 + (uint32_t)((r >> 8) % 80);
        break;
    }
    q = put_utf8(p, end, cp);
    if (q == NULL) break;
    p = q;
  }
  memset(p, ' ', (size_t)(end - p));
}

typedef struct {
  const uint8_t *buf;
  size_t len;
  int result;
  ws_utf8_state state;
} utf8_ctx;

static void utf8_run(void *p) {
  utf8_ctx *c = p;
  ws_utf8_state st = WS_UTF8_ACCEPT;
  size_t bad = 0;
  c->result = ws_utf8_validate(&st, c->buf, c->len, &bad);
  c->state = st;
}

static void bench_utf8(bench *b, int kind, const char *name) {
  utf8_ctx c;
  job j = {NULL, utf8_run, NULL};
  uint8_t *buf = xmalloc(b->big);
  double t, gbs;
  gen_text(buf, b->big, kind);
  check(b, ws_utf8_valid(buf, b->big), "generated text is valid UTF-8");
  c.buf = buf;
  c.len = b->big;
  j.ctx = &c;
  t = best_of(b, &j);
  check(b, c.result == 0 && ws_utf8_complete(c.state), name);
  gbs = row(name, b->big, t, (double)b->big, 0, memcpy_gbs(b, b->big, 1));
  if (kind == TEXT_ASCII) b->ascii_gbs = gbs;
  if (kind == TEXT_MIXED) b->mixed_gbs = gbs;
  free(buf);
}

/* --------------------------------------------------- engine: receive */

typedef struct {
  uint8_t *pristine, *work;
  size_t len;
  size_t chunk; /* 0: feed the whole buffer */
  ws_engine e;
  ws_config cfg;
  uint64_t events, bytes, sum, other;
} parse_ctx;

static void parse_prep(void *p) {
  parse_ctx *c = p;
  memcpy(c->work, c->pristine, c->len);
  ws_engine_free(&c->e);
  ws_engine_init(&c->e, &c->cfg);
}

/* Feed in, consuming events until the input is used up. */
static void parse_feed(parse_ctx *c, uint8_t *in, size_t len) {
  size_t off = 0;
  while (off < len) {
    ws_event ev;
    off += ws_engine_recv(&c->e, in + off, len - off, &ev);
    if (ev.type == WS_EV_MESSAGE) {
      c->events++;
      c->bytes += ev.len;
      if (ev.len) c->sum += ev.data[0] + ev.data[ev.len - 1];
    } else if (ev.type != WS_EV_NONE) {
      c->other++;
    }
  }
}

static void parse_run(void *p) {
  parse_ctx *c = p;
  c->events = c->bytes = c->sum = c->other = 0;
  if (c->chunk == 0) {
    parse_feed(c, c->work, c->len);
  } else {
    size_t off;
    for (off = 0; off < c->len; off += c->chunk) {
      size_t n = c->len - off < c->chunk ? c->len - off : c->chunk;
      parse_feed(c, c->work + off, n);
    }
  }
}

/* Build `count` masked frames of `size` payload bytes into one buffer.
 * Text payloads are letters, binary ones random. Returns the buffer and
 * sets the expected checksum (first + last byte of every payload). */
static uint8_t *make_frames(size_t count, size_t size, ws_opcode op,
                            size_t *total, uint64_t *sum) {
  size_t hsize = ws_frame_header_size(size, 1);
  uint8_t *buf = xmalloc(count * (hsize + size));
  uint8_t *payload = xmalloc(size ? size : 1);
  uint64_t seed = 99;
  size_t i, k;
  uint8_t *p = buf;
  *sum = 0;
  for (i = 0; i < count; i++) {
    ws_frame_header h;
    uint64_t r = splitmix(&seed);
    for (k = 0; k < size; k++) {
      if (k % 8 == 0) r = splitmix(&seed);
      payload[k] = op == WS_OP_TEXT ? (uint8_t)('a' + (r & 0xFF) % 26)
                                    : (uint8_t)r;
      r >>= 8;
    }
    if (size) *sum += payload[0] + payload[size - 1];
    h.fin = 1;
    h.rsv = 0;
    h.opcode = op;
    h.masked = 1;
    h.length = size;
    r = splitmix(&seed);
    memcpy(h.key, &r, 4);
    p += ws_frame_encode(p, hsize, &h);
    ws_mask_copy(p, payload, size, h.key, 0);
    p += size;
  }
  free(payload);
  *total = (size_t)(p - buf);
  return buf;
}

static void bench_parse(bench *b, size_t count, size_t size, ws_opcode op,
                        size_t chunk, const char *name) {
  parse_ctx c;
  job j = {parse_prep, parse_run, NULL};
  uint64_t sum;
  double t;
  memset(&c, 0, sizeof c);
  c.pristine = make_frames(count, size, op, &c.len, &sum);
  c.work = xmalloc(c.len);
  c.chunk = chunk;
  ws_config_init(&c.cfg, WS_ROLE_SERVER);
  j.ctx = &c;
  t = best_of(b, &j);
  check(b, c.events == count && c.other == 0 &&
               c.bytes == (uint64_t)count * size && c.sum == sum,
        name);
  row(name, c.len, t, (double)c.len, (double)count,
      memcpy_gbs(b, c.len, 1));
  if (size == 16 && op == WS_OP_BINARY && chunk == 0)
    b->small_mfps = (double)count / t / 1e6;
  ws_engine_free(&c.e);
  free(c.pristine);
  free(c.work);
}

/* ------------------------------------------------------ engine: send */

typedef struct {
  ws_engine e;
  const uint8_t *msg;
  size_t size, count;
  uint64_t out_bytes, head_sum;
  int err;
} send_ctx;

static void send_run(void *p) {
  send_ctx *c = p;
  size_t i;
  c->out_bytes = c->head_sum = 0;
  c->err = 0;
  for (i = 0; i < c->count; i++) {
    const uint8_t *out;
    size_t n;
    if (ws_engine_send(&c->e, WS_OP_BINARY, c->msg, c->size, 0) != 0)
      c->err++;
    out = ws_engine_output(&c->e, &n);
    c->out_bytes += n;
    if (n) c->head_sum += out[0];
    ws_engine_output_consume(&c->e, n);
  }
}

/* One more message, unmasked by hand: the send path must round-trip. */
static int send_roundtrip(send_ctx *c) {
  const uint8_t *out;
  uint8_t *copy;
  size_t n;
  ws_frame_header h;
  int hs, ok;
  if (ws_engine_send(&c->e, WS_OP_BINARY, c->msg, c->size, 0) != 0) return 0;
  out = ws_engine_output(&c->e, &n);
  hs = ws_frame_decode(out, n, &h);
  if (hs < 0 || !h.masked || !h.fin || h.opcode != WS_OP_BINARY ||
      h.length != c->size || n != (size_t)hs + c->size)
    return 0;
  copy = xmalloc(c->size);
  ws_mask_copy(copy, out + hs, c->size, h.key, 0);
  ok = memcmp(copy, c->msg, c->size) == 0;
  free(copy);
  ws_engine_output_consume(&c->e, n);
  return ok;
}

static void bench_send(bench *b, size_t size, size_t count,
                       const char *name) {
  send_ctx c;
  job j = {NULL, send_run, NULL};
  ws_config cfg;
  uint8_t *msg = xmalloc(size);
  uint64_t seed = 5;
  size_t i;
  double t;
  for (i = 0; i < size; i++) msg[i] = (uint8_t)splitmix(&seed);
  memset(&c, 0, sizeof c);
  ws_config_init(&cfg, WS_ROLE_CLIENT); /* masks with the OpenSSL pool */
  ws_engine_init(&c.e, &cfg);
  c.msg = msg;
  c.size = size;
  c.count = count;
  j.ctx = &c;
  t = best_of(b, &j);
  check(b, c.err == 0 &&
               c.out_bytes == (uint64_t)count *
                                  (ws_frame_header_size(size, 1) + size) &&
               c.head_sum == (uint64_t)count * 0x82,
        name);
  check(b, send_roundtrip(&c), "send round trip");
  row(name, size, t, (double)size * (double)count, (double)count,
      memcpy_gbs(b, size, count));
  ws_engine_free(&c.e);
  free(msg);
}

/* --------------------------------------------------------------- main */

static void target(const char *what, double got, double want,
                   const char *unit) {
  printf("  %-36s %8.2f %-9s (target >= %g) %s\n", what, got, unit, want,
         got >= want ? "MET" : "NOT MET");
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
    b.quick = 1;
  } else if (argc > 1) {
    fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
    return 2;
  }
  if (b.quick) {
    b.min_time = 0.01;
    b.min_reps = 2;
    b.big = 1 * MIB;
    b.frames = 20000;
    b.stream_frames = 16;
    b.small_reps = 1024;
    b.send_small = 20000;
  } else {
    b.min_time = 0.2;
    b.min_reps = 5;
    b.big = 64 * MIB;
    b.frames = 1000000;
    b.stream_frames = 1024;
    b.small_reps = 65536;
    b.send_small = 1000000;
  }

  printf("lua-ws core benchmarks%s (best of >= %d reps, >= %.2f s each)\n",
         b.quick ? " --quick" : "", b.min_reps, b.min_time);
  print_header();

  bench_mask(&b, b.big, 1, 0, "unmask in place, phase 0");
  bench_mask(&b, b.big, 1, 1, "unmask in place, phase 1");
  bench_mask(&b, b.big, 1, 3, "unmask in place, phase 3");
  bench_mask(&b, 1024, b.small_reps, 0, "unmask in place x N, phase 0");
  bench_mask(&b, 1024, b.small_reps, 4, "unmask in place x N, phase 1..3");

  {
    /* each validator this CPU has, the one chosen for it last (that one
     * gives the target figures) */
    static const char *const impls[] = {"scalar", "sse4.1", "avx2"};
    const char *best = ws_utf8_impl();
    char name[96];
    size_t k;
    for (k = 0; k < sizeof impls / sizeof impls[0]; k++) {
      if (strcmp(impls[k], best) == 0 || ws_utf8_use(impls[k]) != 0) continue;
      snprintf(name, sizeof name, "utf8 validate: ASCII [%s]", impls[k]);
      bench_utf8(&b, TEXT_ASCII, name);
      snprintf(name, sizeof name, "utf8 validate: European [%s]", impls[k]);
      bench_utf8(&b, TEXT_MIXED, name);
      snprintf(name, sizeof name, "utf8 validate: CJK [%s]", impls[k]);
      bench_utf8(&b, TEXT_CJK, name);
    }
    ws_utf8_use(best);
    snprintf(name, sizeof name, "utf8 validate: ASCII [%s]", best);
    bench_utf8(&b, TEXT_ASCII, name);
    snprintf(name, sizeof name, "utf8 validate: European [%s]", best);
    bench_utf8(&b, TEXT_MIXED, name);
    snprintf(name, sizeof name, "utf8 validate: CJK [%s]", best);
    bench_utf8(&b, TEXT_CJK, name);
    snprintf(name, sizeof name, "utf8 validate: emoji [%s]", best);
    bench_utf8(&b, TEXT_EMOJI, name);
    ws_utf8_use(NULL);
  }

  bench_parse(&b, b.frames, 16, WS_OP_BINARY, 0,
              "recv: 16 B masked binary frames");
  bench_parse(&b, b.frames, 16, WS_OP_TEXT, 0,
              "recv: 16 B masked text frames");
  bench_parse(&b, b.stream_frames, 65536, WS_OP_BINARY, 0,
              "recv: 64 KiB binary frames, whole");
  bench_parse(&b, b.stream_frames, 65536, WS_OP_BINARY, 16384,
              "recv: 64 KiB binary frames, 16 KiB feed");

  bench_send(&b, 16, b.send_small, "send: 16 B binary, client (masked)");
  bench_send(&b, 65536, b.stream_frames,
             "send: 64 KiB binary, client (masked)");

  printf("\nNotes: 'size' is the buffer (or message) size; recv rows count\n"
         "wire bytes (headers included) and events, send rows payload bytes\n"
         "and messages. memcpy copies the same size the same number of times."
         "\n");
  printf("\nTargets%s:\n", b.quick ? " (quick sizes; indicative only)" : "");
  target("unmask, big buffer", b.unmask_big_gbs, 10, "GB/s");
  target("UTF-8 ASCII", b.ascii_gbs, 10, "GB/s");
  target("UTF-8 mixed European", b.mixed_gbs, 4, "GB/s");
  target("small frames parsed", b.small_mfps, 30, "M frames/s");

  if (b.failures) {
    fprintf(stderr, "bench_core: %d check(s) failed\n", b.failures);
    return 1;
  }
  return 0;
}

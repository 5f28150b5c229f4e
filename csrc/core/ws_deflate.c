/*
 * permessage-deflate payloads (RFC 7692 section 7.2): one compressor and
 * one decompressor per direction, on zlib's raw DEFLATE streams.
 *
 * A message is compressed with Z_NO_FLUSH for its pieces and Z_SYNC_FLUSH
 * at its end, which ends the output on an empty stored block whose last
 * four bytes (00 00 ff ff) are dropped (7.2.1); the receiver puts them back
 * before inflating the end of the message (7.2.2). With context takeover the
 * z_streams live across messages, so a warm connection allocates nothing
 * per message; without it they are reset, never freed, between messages.
 *
 * Window bits 8. zlib (since 1.2.9) refuses windowBits -8 for a raw
 * deflate stream and, before that, silently used 9. The accepted practice
 * is to compress with a 9-bit window when 8 was negotiated: Node's zlib
 * turns 8 into 9 for raw deflate (restored after zlib 1.2.9 started
 * refusing 8, as its documentation of createDeflateRaw explains).
 * That is safe because zlib's deflate never emits a distance greater than
 * the window size minus MIN_LOOKAHEAD (262): 512 - 262 = 250 bytes, within
 * the 256-byte window the peer promised to keep (spec/c/deflate_test.c
 * checks this against zlib's inflater held to 256 bytes of history, and
 * that the same check refuses a 15-bit stream). Inflating needs no such
 * trick: inflateInit2 accepts -8, and an 8-bit inflater reads any stream a
 * compressor limited to 256 bytes of history writes.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* next_in is then const: zlib never writes its input. */
#define ZLIB_CONST
#include <zlib.h>

#include "ws.h"

/* zlib asks for blocks and frees them without their size; ws_alloc_fn
 * wants the size back (osize), so each block carries it in a header the
 * width of the strictest alignment. */
#define ZHDR (sizeof(max_align_t))

typedef struct {
  ws_alloc_fn alloc;
  void *ud;
} zalloc_ctx;

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  const zalloc_ctx *a = opaque;
  size_t n;
  unsigned char *h;
  if (size != 0 && items > (SIZE_MAX - ZHDR) / size) return Z_NULL;
  n = (size_t)items * size + ZHDR;
  h = a->alloc(a->ud, NULL, 0, n);
  if (h == NULL) return Z_NULL;
  memcpy(h, &n, sizeof n);
  return h + ZHDR;
}

static void z_free(voidpf opaque, voidpf p) {
  const zalloc_ctx *a = opaque;
  unsigned char *h;
  size_t n;
  if (p == Z_NULL) return;
  h = (unsigned char *)p - ZHDR;
  memcpy(&n, h, sizeof n);
  a->alloc(a->ud, h, n, 0);
}

/* The sync-flush marker: the last four bytes of an empty stored block. */
static const uint8_t flush_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* Output is produced at most this much per zlib call, so the inflater's
 * limit check runs at least this often (and the deflater's buffer grows in
 * steps no larger than needed). */
#define CHUNK 16384u
/* Free bytes below which an output buffer is grown before a zlib call. */
#define MIN_ROOM 64u

struct ws_deflater {
  z_stream z;
  zalloc_ctx a;
  int no_context_takeover;
  int took_input; /* the current message has had some input */
  int failed;     /* the WS_E* code the stream stopped on, 0 if none */
};

struct ws_inflater {
  z_stream z;
  zalloc_ctx a;
  uint64_t total;  /* inflated bytes of the current message */
  int window_bits;
  int no_context_takeover;
  int ended;       /* the peer ended the DEFLATE stream (BFINAL) */
  int failed;      /* the WS_E* code the stream stopped on, 0 if none */
};

/* Grow b so that at least `want` bytes are free after b->len: geometric,
 * so a message costs few reallocations, but never past len + max_room (the
 * inflater passes what is left of its limit, plus one). */
static int buf_room(const zalloc_ctx *a, ws_buf *b, size_t want,
                    size_t max_room) {
  size_t cap, need;
  uint8_t *p;
  if (b->cap - b->len >= want) return 0;
  if (want > SIZE_MAX - b->len) return WS_ENOMEM;
  need = b->len + want;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (max_room <= SIZE_MAX - b->len && cap > b->len + max_room)
    cap = b->len + max_room;
  if (cap < need) cap = need;
  p = a->alloc(a->ud, b->p, b->cap, cap);
  if (p == NULL) return WS_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

void ws_deflate_config_init(ws_deflate_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->window_bits = 15;
  cfg->level = -1;
  cfg->mem_level = 8;
}

static int check_config(const ws_deflate_config *cfg) {
  if (cfg == NULL || cfg->window_bits < 8 || cfg->window_bits > 15)
    return WS_EINVALID;
  return 0;
}

static zalloc_ctx ctx_of(const ws_deflate_config *cfg) {
  zalloc_ctx a;
  a.alloc = cfg->alloc ? cfg->alloc : ws_default_alloc;
  a.ud = cfg->alloc_ud;
  return a;
}

/* Point a stream's allocation at the context stored beside it. */
static void set_alloc(z_stream *z, zalloc_ctx *a) {
  z->zalloc = z_alloc;
  z->zfree = z_free;
  z->opaque = a;
}

void ws_deflate_buf_free(const ws_deflate_config *cfg, ws_buf *b) {
  static const ws_deflate_config none = {0};
  zalloc_ctx a = ctx_of(cfg ? cfg : &none);
  if (b->p) a.alloc(a.ud, b->p, b->cap, 0);
  memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------- deflate */

int ws_deflater_new(ws_deflater **dp, const ws_deflate_config *cfg) {
  ws_deflater *d;
  zalloc_ctx a;
  int rc;
  *dp = NULL;
  if (check_config(cfg) != 0 || cfg->level < -1 || cfg->level > 9 ||
      cfg->mem_level < 1 || cfg->mem_level > 9)
    return WS_EINVALID;
  a = ctx_of(cfg);
  d = a.alloc(a.ud, NULL, 0, sizeof *d);
  if (d == NULL) return WS_ENOMEM;
  memset(d, 0, sizeof *d);
  d->a = a;
  set_alloc(&d->z, &d->a);
  d->no_context_takeover = cfg->no_context_takeover != 0;
  /* 8 becomes 9: see the top of this file. */
  rc = deflateInit2(&d->z, cfg->level, Z_DEFLATED,
                    -(cfg->window_bits < 9 ? 9 : cfg->window_bits),
                    cfg->mem_level, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    a.alloc(a.ud, d, sizeof *d, 0);
    return rc == Z_MEM_ERROR ? WS_ENOMEM : WS_EINVALID;
  }
  *dp = d;
  return 0;
}

void ws_deflater_free(ws_deflater *d) {
  zalloc_ctx a;
  if (d == NULL) return;
  a = d->a;
  deflateEnd(&d->z);
  a.alloc(a.ud, d, sizeof *d, 0);
}

int ws_deflate_message(ws_deflater *d, const uint8_t *in, size_t len,
                       int fin, ws_buf *out) {
  int flush = fin ? Z_SYNC_FLUSH : Z_NO_FLUSH;
  size_t start = out->len;
  int rc;
  if (d->failed) return d->failed;
  if (in == NULL && len > 0) return WS_EINVALID;
  if (len > 0) d->took_input = 1;
  if (fin && !d->took_input) {
    /* zlib writes nothing for a second flush with no input in between, so
     * an empty message is written here: the header of an empty stored
     * block, whose other four bytes are the ones dropped (7.2.3.6). The
     * stream is byte-aligned after any flush, so this is valid anywhere. */
    rc = buf_room(&d->a, out, 1, SIZE_MAX);
    if (rc != 0) return d->failed = rc;
    out->p[out->len++] = 0x00;
    return 0;
  }
  d->z.next_in = in;
  for (;;) {
    size_t room, before;
    uInt step = len > UINT_MAX ? UINT_MAX : (uInt)len;
    d->z.avail_in = step;
    /* Write into the room there is; when it runs short the buffer
     * doubles, so a small message keeps a small buffer and a big one
     * takes few reallocations. (More than 6 free bytes keep zlib from
     * repeating flush markers.) */
    if (out->cap - out->len < MIN_ROOM) {
      rc = buf_room(&d->a, out, out->len < 256 ? 256 : out->len, SIZE_MAX);
      if (rc != 0) return d->failed = rc;
    }
    room = out->cap - out->len;
    if (room > UINT_MAX) room = UINT_MAX;
    d->z.next_out = out->p + out->len;
    d->z.avail_out = (uInt)room;
    before = d->z.avail_in;
    rc = deflate(&d->z, len > step ? Z_NO_FLUSH : flush);
    out->len += room - d->z.avail_out;
    len -= before - d->z.avail_in;
    if (rc == Z_STREAM_ERROR) return d->failed = WS_EDEFLATE;
    /* Z_BUF_ERROR: no progress possible, which here means done. */
    if (len == 0 && d->z.avail_out != 0) break;
    /* zlib always progresses with room on both sides; never spin. */
    if (before == d->z.avail_in && d->z.avail_out == room)
      return d->failed = WS_EDEFLATE;
  }
  if (!fin) return 0;
  /* The flush ended the output on 00 00 ff ff, written by this call. */
  if (out->len - start < 4 ||
      memcmp(out->p + out->len - 4, flush_tail, 4) != 0)
    return d->failed = WS_EDEFLATE;
  out->len -= 4;
  d->took_input = 0;
  if (d->no_context_takeover && deflateReset(&d->z) != Z_OK)
    return d->failed = WS_EDEFLATE;
  return 0;
}

/* ------------------------------------------------------------- inflate */

int ws_inflater_new(ws_inflater **fp, const ws_deflate_config *cfg) {
  ws_inflater *f;
  zalloc_ctx a;
  int rc;
  *fp = NULL;
  if (check_config(cfg) != 0) return WS_EINVALID;
  a = ctx_of(cfg);
  f = a.alloc(a.ud, NULL, 0, sizeof *f);
  if (f == NULL) return WS_ENOMEM;
  memset(f, 0, sizeof *f);
  f->a = a;
  set_alloc(&f->z, &f->a);
  f->window_bits = cfg->window_bits;
  f->no_context_takeover = cfg->no_context_takeover != 0;
  rc = inflateInit2(&f->z, -cfg->window_bits);
  if (rc != Z_OK) {
    a.alloc(a.ud, f, sizeof *f, 0);
    return rc == Z_MEM_ERROR ? WS_ENOMEM : WS_EINVALID;
  }
  *fp = f;
  return 0;
}

void ws_inflater_free(ws_inflater *f) {
  zalloc_ctx a;
  if (f == NULL) return;
  a = f->a;
  inflateEnd(&f->z);
  a.alloc(a.ud, f, sizeof *f, 0);
}

int ws_inflater_reset(ws_inflater *f) {
  f->total = 0;
  f->ended = 0;
  f->failed = 0;
  return inflateReset(&f->z) == Z_OK ? 0 : WS_EINFLATE;
}

/* Run inflate over in[len] into out, at most `max` bytes of output for the
 * message in total, and stopping once `room` bytes were appended (the
 * input zlib has not taken then is left: *used says how much it took).
 * 0 or a WS_E* code. */
static int inflate_some(ws_inflater *f, const uint8_t *in, size_t len,
                        uint64_t max, size_t room_max, ws_buf *out,
                        size_t *used) {
  size_t len0 = len, produced = 0;
  f->z.next_in = in;
  *used = 0;
  while (!f->ended) {
    uInt step = len > UINT_MAX ? UINT_MAX : (uInt)len;
    size_t room, before;
    uint64_t left = max - f->total; /* total <= max here */
    int rc;
    /* At most CHUNK bytes a step, and one byte more than the limit allows,
     * so that going over it is seen without ever holding more than
     * max + 1 bytes. The room there is comes first; when it runs short
     * the buffer doubles (up to that), so a small message keeps a small
     * buffer. */
    size_t limit = left >= CHUNK ? CHUNK : (size_t)left + 1;
    if (limit > room_max - produced) limit = room_max - produced;
    if (limit == 0) break; /* the caller's room is full */
    room = out->cap - out->len;
    if (room < limit && room < MIN_ROOM) {
      size_t want = out->len < 256 ? 256 : out->len;
      rc = buf_room(&f->a, out, want < limit ? want : limit,
                    left >= SIZE_MAX ? SIZE_MAX : (size_t)left + 1);
      if (rc != 0) return rc;
      room = out->cap - out->len;
    }
    if (room > limit) room = limit;
    f->z.avail_in = step;
    f->z.next_out = out->p + out->len;
    f->z.avail_out = (uInt)room;
    before = f->z.avail_in;
    rc = inflate(&f->z, Z_SYNC_FLUSH);
    out->len += room - f->z.avail_out;
    f->total += room - f->z.avail_out;
    produced += room - f->z.avail_out;
    len -= before - f->z.avail_in;
    *used = len0 - len;
    if (f->total > max) return WS_EINFLATE_LIMIT;
    switch (rc) {
      case Z_OK:
      case Z_BUF_ERROR: /* no progress possible: input used up */
        break;
      case Z_STREAM_END:
        /* The peer closed the DEFLATE stream with a BFINAL block (7.2.3.4
         * allows it); the rest of the message is ignored. */
        f->ended = 1;
        *used = len0;
        return 0;
      case Z_MEM_ERROR:
        return WS_ENOMEM;
      default: /* Z_DATA_ERROR, Z_NEED_DICT (not raw), Z_STREAM_ERROR */
        return WS_EINFLATE;
    }
    if (len == 0 && f->z.avail_out != 0) break;
    /* zlib always progresses with room on both sides; never spin. */
    if (before == f->z.avail_in && f->z.avail_out == room) return WS_EINFLATE;
  }
  return 0;
}

/* After a BFINAL block inflate() is done with the stream; with context
 * takeover the next message may still refer to this one's bytes, so the
 * window is carried over into the reset stream. The copy goes through a
 * temporary block (this path is rare: zlib and most peers never set
 * BFINAL). */
static int restart_keeping_window(ws_inflater *f) {
  size_t wsize = (size_t)1 << f->window_bits;
  uInt n = 0;
  Bytef *w = f->a.alloc(f->a.ud, NULL, 0, wsize);
  int rc = WS_ENOMEM;
  if (w == NULL) return rc;
  if (inflateGetDictionary(&f->z, w, &n) == Z_OK &&
      inflateReset(&f->z) == Z_OK &&
      (n == 0 || inflateSetDictionary(&f->z, w, n) == Z_OK))
    rc = 0;
  else
    rc = WS_EINFLATE;
  f->a.alloc(f->a.ud, w, wsize, 0);
  return rc;
}

int ws_inflate_message(ws_inflater *f, const uint8_t *in, size_t len,
                       int fin, uint64_t max, ws_buf *out) {
  int rc;
  if (f->failed) return f->failed;
  if (in == NULL && len > 0) return WS_EINVALID;
  size_t used;
  rc = inflate_some(f, in, len, max, SIZE_MAX, out, &used);
  if (rc == 0 && fin)
    rc = inflate_some(f, flush_tail, 4, max, SIZE_MAX, out, &used);
  if (rc != 0) return f->failed = rc;
  if (!fin) return 0;
  f->total = 0;
  if (f->no_context_takeover) {
    f->ended = 0;
    if (inflateReset(&f->z) != Z_OK) return f->failed = WS_EINFLATE;
  } else if (f->ended) {
    f->ended = 0;
    rc = restart_keeping_window(f);
    if (rc != 0) return f->failed = rc;
  }
  return 0;
}

int ws_inflate_part(ws_inflater *f, const uint8_t *in, size_t len,
                    uint64_t max, size_t room, ws_buf *out, size_t *used) {
  int rc;
  *used = 0;
  if (f->failed) return f->failed;
  if ((in == NULL && len > 0) || room == 0) return WS_EINVALID;
  if (f->ended) { /* after BFINAL the rest of the message is ignored */
    *used = len;
    return 0;
  }
  rc = inflate_some(f, in, len, max, room, out, used);
  if (rc != 0) return f->failed = rc;
  return 0;
}

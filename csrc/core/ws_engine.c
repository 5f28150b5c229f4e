/*
 * The connection engine: bytes in -> events out, calls in -> bytes out.
 *
 * Receive path. A frame whose header and payload both sit in the caller's
 * input is handled in place: unmasked there, validated there, and handed
 * out as a pointer into the input, with no copy and no allocation. Only a
 * message that spans frames or reads is copied, into one reassembly buffer
 * that is reused from message to message. Partial headers wait in a
 * 14-byte array inside the struct; partial control payloads wait in the
 * cold state (struct ws_engine_cold), which also keeps the closing
 * handshake's reasons and is allocated only when one of them is needed,
 * so an idle connection carries none of it.
 *
 * Every rule of RFC 6455 5.1-5.5 that says "fail the WebSocket connection"
 * ends in pend(): the rest of that input is ignored and the violation waits
 * in e->pending, so that whatever the host sends in answer to the events
 * before it is queued ahead of the close frame. The next call in (recv,
 * fail_pending or end) runs fail(): a close frame with the violation's
 * code is queued, the close event names the violation, and later input is
 * ignored.
 *
 * Every close event is made here: the closing handshake's, a violation's,
 * and those of the ways a connection ends off the wire (ws_engine_end,
 * ws_hs_failed_event), so a host never builds one by hand.
 */
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define DEFAULT_MAX_MESSAGE ((uint64_t)16 * 1024 * 1024)
#define DEFAULT_MAX_FRAGMENTS 65536u
/* A reassembly buffer larger than this is released before the next
 * message, so one huge message does not pin memory for the connection's
 * lifetime. */
#define KEEP_BUFFER_MAX ((size_t)256 * 1024)
/* The same for permessage-deflate's two buffers, lower: they are only
 * the inflated message and the compressed one in passing, and a
 * compressing connection should stay near zlib's own memory between
 * messages. Reallocating a larger one costs little beside zlib's work on
 * that many bytes. */
#define PMD_KEEP_MAX ((size_t)16 * 1024)

/* permessage-deflate (see ws_engine_deflate in ws.h). The two zlib
 * streams are made at their first message; `in` holds the message being
 * inflated, `out` the compressed payload being queued. */
struct ws_engine_pmd {
  ws_deflate_config dcfg, icfg;
  ws_deflater *d;
  ws_inflater *f;
  ws_buf in, out;
  size_t threshold;
  int part_compressed; /* the streamed message being sent is compressed */
  ws_deflate_stats st;
};

/* See ws.h: what an idle connection should not carry inline. */
struct ws_engine_cold {
  uint8_t ctl[WS_CONTROL_MAX];
  uint8_t sent_reason[WS_CONTROL_MAX];
  uint8_t received_reason[WS_CONTROL_MAX];
};

void ws_config_init(ws_config *cfg, ws_role role) {
  memset(cfg, 0, sizeof *cfg);
  cfg->role = role;
  cfg->max_message_size = DEFAULT_MAX_MESSAGE;
  cfg->max_frame_size = DEFAULT_MAX_MESSAGE;
  cfg->max_fragments = DEFAULT_MAX_FRAGMENTS;
  cfg->auto_pong = 1;
}

void *ws_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

int ws_engine_init(ws_engine *e, const ws_config *cfg) {
  ws_config def;
  if (cfg == NULL) {
    ws_config_init(&def, WS_ROLE_CLIENT);
    cfg = &def;
  }
  memset(e, 0, sizeof *e);
  if (cfg->role != WS_ROLE_CLIENT && cfg->role != WS_ROLE_SERVER)
    return WS_EINVALID;
  e->cfg = *cfg;
  if (e->cfg.alloc == NULL) e->cfg.alloc = ws_default_alloc;
  if (e->cfg.rand == NULL) e->cfg.rand = ws_rand_openssl;
  if (e->cfg.max_frame_size > e->cfg.max_message_size)
    e->cfg.max_frame_size = e->cfg.max_message_size;
  if (e->cfg.max_fragments == 0) e->cfg.max_fragments = 1;
  e->rnd_pos = WS_MASK_POOL; /* empty: the first client frame fills it */
  e->state = WS_STATE_OPEN;
  return 0;
}

static void buf_release(ws_engine *e, ws_buf *b) {
  if (b->p && e->cfg.alloc) e->cfg.alloc(e->cfg.alloc_ud, b->p, b->cap, 0);
  memset(b, 0, sizeof *b);
}

static void pmd_free(ws_engine *e) {
  struct ws_engine_pmd *z = e->pmd;
  if (z == NULL) return;
  ws_deflater_free(z->d);
  ws_inflater_free(z->f);
  buf_release(e, &z->in);
  buf_release(e, &z->out);
  e->cfg.alloc(e->cfg.alloc_ud, z, sizeof *z, 0);
  e->pmd = NULL;
}

void ws_engine_free(ws_engine *e) {
  buf_release(e, &e->msg);
  buf_release(e, &e->out);
  pmd_free(e);
  if (e->cold) {
    e->cfg.alloc(e->cfg.alloc_ud, e->cold, sizeof *e->cold, 0);
    e->cold = NULL;
  }
  if (e->rnd) {
    /* Unused key bytes are wiped like used ones. */
    memset(e->rnd, 0, WS_MASK_POOL);
    e->cfg.alloc(e->cfg.alloc_ud, e->rnd, WS_MASK_POOL, 0);
    e->rnd = NULL;
  }
}

/* Make room for `extra` more bytes after b->len; geometric growth keeps
 * reallocation amortised. */
static int buf_reserve(ws_engine *e, ws_buf *b, size_t extra) {
  size_t need, cap;
  uint8_t *p;
  if (b->off > 0 && (b->off == b->len || b->off >= b->cap / 2 ||
                     b->cap - b->len < extra)) {
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
  }
  if (extra > SIZE_MAX - b->len) return WS_ENOMEM;
  need = b->len + extra;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = e->cfg.alloc(e->cfg.alloc_ud, b->p, b->cap, cap);
  if (p == NULL) return WS_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* The cold state, allocated at the first call: 0 or WS_ENOMEM. */
static int need_cold(ws_engine *e) {
  if (e->cold != NULL) return 0;
  e->cold = e->cfg.alloc(e->cfg.alloc_ud, NULL, 0, sizeof *e->cold);
  return e->cold != NULL ? 0 : WS_ENOMEM;
}

static const uint8_t *sent_reason(const ws_engine *e) {
  return e->sent_reason_len ? e->cold->sent_reason : (const uint8_t *)"";
}

static const uint8_t *received_reason(const ws_engine *e) {
  return e->received_reason_len ? e->cold->received_reason
                                : (const uint8_t *)"";
}

/* ------------------------------------------------------------- sending */

/* The pool is allocated at the first refill, so a server engine, which
 * never masks, carries only a pointer. */
static int mask_key(ws_engine *e, uint8_t key[4]) {
  if (e->rnd_pos + 4 > WS_MASK_POOL) {
    if (e->rnd == NULL &&
        (e->rnd = e->cfg.alloc(e->cfg.alloc_ud, NULL, 0, WS_MASK_POOL)) ==
            NULL)
      return WS_ENOMEM;
    if (e->cfg.rand(e->cfg.rand_ud, e->rnd, WS_MASK_POOL) != 0)
      return WS_ERAND;
    e->rnd_pos = 0;
  }
  memcpy(key, e->rnd + e->rnd_pos, 4);
  /* Used key bytes are wiped so they can't be read back later. */
  memset(e->rnd + e->rnd_pos, 0, 4);
  e->rnd_pos += 4;
  return 0;
}

/* Append one frame to the output. The caller has checked state and
 * arguments. */
static int put_frame(ws_engine *e, unsigned opcode, unsigned rsv, int fin,
                     const uint8_t *data, size_t len) {
  ws_frame_header h;
  int masked = e->cfg.role == WS_ROLE_CLIENT;
  size_t hsize = ws_frame_header_size(len, masked);
  int r;
  uint8_t *dst;

  h.fin = fin ? 1 : 0;
  h.rsv = rsv;
  h.opcode = opcode;
  h.masked = (unsigned)masked;
  h.length = len;
  if (masked && (r = mask_key(e, h.key)) != 0) return r;
  if (len > SIZE_MAX - hsize) return WS_ENOMEM;
  if ((r = buf_reserve(e, &e->out, hsize + len)) != 0) return r;
  dst = e->out.p + e->out.len;
  r = ws_frame_encode(dst, hsize, &h);
  if (r < 0) return r;
  if (len) {
    if (masked) ws_mask_copy(dst + hsize, data, len, h.key, 0);
    else memcpy(dst + hsize, data, len);
  }
  e->out.len += hsize + len;
  e->out_queued += hsize + len;
  e->tx_frames++;
  return 0;
}

static int check_kind(ws_opcode kind) {
  return kind == WS_OP_TEXT || kind == WS_OP_BINARY;
}

/* Compress a message (or the next part of a streamed one) into the pmd's
 * output buffer: 0 or a WS_E* code. */
static int deflate_into(ws_engine *e, const uint8_t *data, size_t len,
                        int fin) {
  struct ws_engine_pmd *z = e->pmd;
  int r;
  if (z->d == NULL && (r = ws_deflater_new(&z->d, &z->dcfg)) != 0) return r;
  z->out.len = z->out.off = 0;
  if ((r = ws_deflate_message(z->d, data, len, fin, &z->out)) != 0) {
    /* A failed compressor only ever returns its error again. */
    ws_deflater_free(z->d);
    z->d = NULL;
    return r;
  }
  z->st.tx_raw += len;
  z->st.tx_wire += z->out.len;
  return 0;
}

/* Compressed bytes that never made it into the output: the peer will not
 * see them, so our compressor must not refer back to them. A new stream
 * refers to nothing older than itself, which any peer can inflate. */
static void deflate_lost(ws_engine *e) {
  ws_deflater_free(e->pmd->d);
  e->pmd->d = NULL;
}

/* The compressed bytes have been queued (or dropped): a large buffer is
 * let go at once. */
static void deflate_done(ws_engine *e) {
  if (e->pmd->out.cap > PMD_KEEP_MAX) buf_release(e, &e->pmd->out);
}

static int compress_this(const ws_engine *e, size_t len, unsigned flags) {
  if (e->pmd == NULL || (flags & WS_SEND_NO_COMPRESS)) return 0;
  return (flags & WS_SEND_COMPRESS) || len >= e->pmd->threshold;
}

int ws_engine_send_ex(ws_engine *e, ws_opcode kind, const uint8_t *data,
                      size_t len, size_t fragment, unsigned flags) {
  size_t off = 0, frames;
  unsigned rsv = 0;
  int r;
  if (!check_kind(kind) || (data == NULL && len > 0)) return WS_EINVALID;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  if (e->sending) return WS_EFRAGMENT;
  if (kind == WS_OP_TEXT && !ws_utf8_valid(data, len)) return WS_EUTF8;
  if (compress_this(e, len, flags)) {
    if ((r = deflate_into(e, data, len, 1)) != 0) return r;
    data = e->pmd->out.p;
    len = e->pmd->out.len;
    rsv = 4;
  }
  if (fragment == 0 || len <= fragment) {
    r = put_frame(e, kind, rsv, 1, data, len);
    if (rsv) {
      if (r) deflate_lost(e);
      deflate_done(e);
    }
    return r;
  }
  /* Reserve once for all frames, so a failure leaves nothing half
   * queued. */
  frames = len / fragment + (len % fragment != 0);
  if (frames > (SIZE_MAX - len) / WS_FRAME_MAX_HEADER ||
      (r = buf_reserve(e, &e->out, len + frames * WS_FRAME_MAX_HEADER))) {
    if (rsv) {
      deflate_lost(e);
      deflate_done(e);
    }
    return WS_ENOMEM;
  }
  while (off < len) {
    size_t n = len - off < fragment ? len - off : fragment;
    r = put_frame(e, off == 0 ? (unsigned)kind : WS_OP_CONTINUATION,
                  off == 0 ? rsv : 0, off + n == len, data + off, n);
    if (r) break; /* WS_ERAND; WS_ENOMEM only on the first frame */
    off += n;
  }
  if (rsv) deflate_done(e);
  return r;
}

int ws_engine_send(ws_engine *e, ws_opcode kind, const uint8_t *data,
                   size_t len, size_t fragment) {
  return ws_engine_send_ex(e, kind, data, len, fragment, 0);
}

int ws_engine_send_part_ex(ws_engine *e, ws_opcode kind, const uint8_t *data,
                           size_t len, int fin, unsigned flags) {
  ws_utf8_state st;
  unsigned opcode, rsv = 0;
  int r, compressed;
  if (data == NULL && len > 0) return WS_EINVALID;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  if (!e->sending) {
    if (!check_kind(kind)) return WS_EINVALID;
    opcode = kind;
    compressed = e->pmd != NULL && !(flags & WS_SEND_NO_COMPRESS);
    rsv = compressed ? 4 : 0;
  } else {
    opcode = WS_OP_CONTINUATION;
    compressed = e->pmd != NULL && e->pmd->part_compressed;
  }
  st = e->sending ? e->send_utf8 : WS_UTF8_ACCEPT;
  if ((e->sending ? e->send_kind : kind) == WS_OP_TEXT &&
      (ws_utf8_validate(&st, data, len, NULL) != 0 ||
       (fin && !ws_utf8_complete(st))))
    return WS_EUTF8;
  if (compressed) {
    if ((r = deflate_into(e, data, len, fin)) != 0) return r;
    data = e->pmd->out.p ? e->pmd->out.p : (const uint8_t *)"";
    len = e->pmd->out.len;
  }
  r = put_frame(e, opcode, rsv, fin, data, len);
  if (compressed) {
    if (r) deflate_lost(e);
    deflate_done(e);
  }
  if (r) return r;
  if (!e->sending) {
    e->send_kind = kind;
    if (e->pmd) e->pmd->part_compressed = compressed;
  }
  e->send_utf8 = st;
  e->sending = !fin;
  return 0;
}

int ws_engine_send_part(ws_engine *e, ws_opcode kind, const uint8_t *data,
                        size_t len, int fin) {
  return ws_engine_send_part_ex(e, kind, data, len, fin, 0);
}

int ws_engine_send_framed(ws_engine *e, const uint8_t *frame, size_t len) {
  ws_frame_header h;
  int n;
  if (e->cfg.role != WS_ROLE_SERVER || frame == NULL) return WS_EINVALID;
  n = ws_frame_decode(frame, len, &h);
  if (n < 0 || !h.fin || h.masked || h.rsv != 0 ||
      (h.opcode != WS_OP_TEXT && h.opcode != WS_OP_BINARY) ||
      h.length != len - (size_t)n)
    return WS_EINVALID;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  if (e->sending) return WS_EFRAGMENT;
  if (buf_reserve(e, &e->out, len) != 0) return WS_ENOMEM;
  memcpy(e->out.p + e->out.len, frame, len);
  e->out.len += len;
  e->out_queued += len;
  e->tx_frames++;
  return 0;
}

int ws_engine_send_direct(ws_engine *e, ws_opcode kind, const uint8_t *data,
                          size_t len, uint8_t *hdr, size_t *hlen) {
  ws_frame_header h;
  size_t hsize;
  int r;
  if (!check_kind(kind) || (data == NULL && len > 0) || hdr == NULL ||
      hlen == NULL)
    return WS_EINVALID;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  if (e->sending) return WS_EFRAGMENT;
  if (e->cfg.role != WS_ROLE_SERVER || e->out.len != e->out.off ||
      compress_this(e, len, 0))
    return 1;
  if (kind == WS_OP_TEXT && !ws_utf8_valid(data, len)) return WS_EUTF8;
  hsize = ws_frame_header_size(len, 0);
  if (len > SIZE_MAX - hsize) return WS_ENOMEM;
  if ((r = buf_reserve(e, &e->out, hsize + len)) != 0) return r;
  memset(&h, 0, sizeof h);
  h.fin = 1;
  h.opcode = kind;
  h.length = len;
  r = ws_frame_encode(hdr, hsize, &h);
  if (r < 0) return r;
  *hlen = hsize;
  return 0;
}

void ws_engine_sent_direct(ws_engine *e, const uint8_t *hdr, size_t hlen,
                           const uint8_t *data, size_t len, size_t written) {
  size_t total = hlen + len;
  if (written > total) written = total;
  e->out_queued += total;
  e->out_written += written;
  e->tx_frames++;
  /* the output was empty, with room for the frame (send_direct) */
  if (written < hlen) {
    memcpy(e->out.p + e->out.len, hdr + written, hlen - written);
    e->out.len += hlen - written;
    written = hlen;
  }
  if (written < total) {
    memcpy(e->out.p + e->out.len, data + (written - hlen), total - written);
    e->out.len += total - written;
  } else if (e->out.cap > KEEP_BUFFER_MAX) {
    buf_release(e, &e->out); /* as ws_engine_output_consume would */
  }
}

static int send_control(ws_engine *e, unsigned opcode, const uint8_t *data,
                        size_t len) {
  if (data == NULL && len > 0) return WS_EINVALID;
  if (len > WS_CONTROL_MAX) return WS_ECONTROL;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  return put_frame(e, opcode, 0, 1, data, len);
}

int ws_engine_ping(ws_engine *e, const uint8_t *data, size_t len) {
  return send_control(e, WS_OP_PING, data, len);
}

int ws_engine_pong(ws_engine *e, const uint8_t *data, size_t len) {
  return send_control(e, WS_OP_PONG, data, len);
}

/* Queue our close frame and remember what it said. */
static int put_close(ws_engine *e, int code, const uint8_t *reason,
                     size_t reason_len) {
  uint8_t payload[WS_CONTROL_MAX] = {0};
  size_t n = 0;
  int r;
  /* Room to remember the reason, before anything is queued. */
  if (reason_len && (r = need_cold(e)) != 0) return r;
  if (code != 0) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason_len) memcpy(payload + 2, reason, reason_len);
    n = 2 + reason_len;
  }
  if ((r = put_frame(e, WS_OP_CLOSE, 0, 1, payload, n)) != 0) return r;
  e->close_end = e->out_queued;
  e->sent_code = code ? code : WS_CLOSE_no_status;
  if (reason_len) memcpy(e->cold->sent_reason, reason, reason_len);
  e->sent_reason_len = reason_len;
  return 0;
}

int ws_engine_close(ws_engine *e, int code, const uint8_t *reason,
                    size_t reason_len) {
  int r;
  if ((r = ws_close_check(code, reason, reason_len)) != 0) return r;
  if (e->state != WS_STATE_OPEN) return WS_ESTATE;
  if ((r = put_close(e, code, reason, reason_len)) != 0) return r;
  e->state = WS_STATE_CLOSING;
  return 0;
}

const uint8_t *ws_engine_output(const ws_engine *e, size_t *len) {
  *len = e->out.len - e->out.off;
  return e->out.p ? e->out.p + e->out.off : (const uint8_t *)"";
}

void ws_engine_output_consume(ws_engine *e, size_t n) {
  size_t avail = e->out.len - e->out.off;
  if (n > avail) n = avail;
  e->out.off += n;
  e->out_written += n;
  if (e->out.off == e->out.len) {
    e->out.off = e->out.len = 0;
    /* Like the reassembly buffer: one huge message must not pin its
     * buffer for the rest of the connection. */
    if (e->out.cap > KEEP_BUFFER_MAX) buf_release(e, &e->out);
  }
}

/* ----------------------------------------------------------- receiving */

/* Events start from a copy of this rather than memset: for a struct this
 * small, memset becomes `rep stosb`, which alone cost a quarter of the
 * time to parse a 16-byte frame. */
static const ws_event no_event;


static void close_event(ws_engine *e, ws_event *ev, int code,
                        const uint8_t *reason, size_t reason_len, int clean,
                        ws_initiator by, ws_violation v) {
  memset(ev, 0, sizeof *ev);
  ev->type = WS_EV_CLOSE;
  ev->code = code;
  ev->reason = reason ? reason : (const uint8_t *)"";
  ev->reason_len = reason_len;
  ev->clean = clean;
  ev->initiator = by;
  ev->error = v;
  ev->error_name = v != WS_V_NONE ? ws_violation_name(v) : NULL;
  ev->sent_code = e->sent_code;
  ev->sent_reason = sent_reason(e);
  ev->sent_reason_len = e->sent_reason_len;
  ev->received_code = e->received_code;
  ev->received_reason = received_reason(e);
  ev->received_reason_len = e->received_reason_len;
  e->close_reported = 1;
}

void ws_hs_failed_event(ws_event *ev, const char *name) {
  if (name == NULL) name = ws_end_name(WS_END_HANDSHAKE);
  memset(ev, 0, sizeof *ev);
  ev->type = WS_EV_CLOSE;
  ev->code = strcmp(name, "tls") == 0 ? WS_CLOSE_tls_handshake
                                      : ws_end_code(WS_END_HANDSHAKE);
  ev->reason = (const uint8_t *)"";
  ev->initiator = ws_end_initiator(WS_END_HANDSHAKE);
  ev->end = WS_END_HANDSHAKE;
  ev->error_name = name;
  ev->sent_reason = (const uint8_t *)"";
  ev->received_reason = (const uint8_t *)"";
}

int ws_local_end_event(ws_event *ev, int code, const uint8_t *reason,
                       size_t reason_len, const char *name) {
  if ((reason == NULL && reason_len > 0) || (code == 0 && reason_len > 0))
    return WS_EINVALID;
  memset(ev, 0, sizeof *ev);
  ev->type = WS_EV_CLOSE;
  ev->code = code ? code : ws_end_code(WS_END_ABORTED);
  ev->reason = reason_len ? reason : (const uint8_t *)"";
  ev->reason_len = reason_len;
  ev->initiator = WS_BY_LOCAL;
  ev->end = WS_END_ABORTED;
  ev->error_name = name ? name : ws_end_name(WS_END_ABORTED);
  ev->sent_reason = (const uint8_t *)"";
  ev->received_reason = (const uint8_t *)"";
  return 0;
}

/* Fail the connection (RFC 6455 7.1.7): send a close frame with the
 * violation's code if we have not sent one, report, ignore what follows. */
static void fail(ws_engine *e, ws_violation v, ws_event *ev) {
  int code = ws_violation_code(v);
  e->pending = WS_V_NONE;
  if (e->state == WS_STATE_OPEN) {
    const char *name = ws_violation_name(v);
    /* The reason names the rule, which helps whoever debugs the peer. */
    if (put_close(e, code, (const uint8_t *)name, strlen(name)) != 0)
      e->sent_code = 0; /* could not even queue it */
  }
  e->state = WS_STATE_CLOSED;
  e->failed = 1;
  close_event(e, ev, code, (const uint8_t *)"", 0, 0, WS_BY_LOCAL, v);
}

/* A violation found in the input: remember it for the next call in (see
 * ws_engine_recv in ws.h). Returns len, for recv to report the whole
 * input consumed. */
static size_t pend(ws_engine *e, ws_violation v, size_t len) {
  e->pending = v;
  return len;
}

int ws_engine_fail_pending(ws_engine *e, ws_event *ev) {
  if (e->pending == WS_V_NONE) {
    ev->type = WS_EV_NONE;
    return 0;
  }
  fail(e, e->pending, ev);
  return 1;
}

#define HEARTBEAT_REASON "heartbeat timeout"

int ws_engine_end(ws_engine *e, ws_end cause, const char *name,
                  ws_event *ev) {
  if (cause <= WS_END_NONE || cause >= WS_END_HANDSHAKE) {
    ev->type = WS_EV_NONE;
    return WS_EINVALID;
  }
  if (e->close_reported) {
    ev->type = WS_EV_NONE;
    return 0;
  }
  if (e->pending != WS_V_NONE) {
    fail(e, e->pending, ev);
    return 1;
  }
  if (cause == WS_END_HEARTBEAT_TIMEOUT && e->state == WS_STATE_OPEN &&
      put_close(e, WS_CLOSE_internal_error, (const uint8_t *)HEARTBEAT_REASON,
                sizeof HEARTBEAT_REASON - 1) != 0)
    e->sent_code = 0; /* could not even queue it */
  e->state = WS_STATE_CLOSED;
  e->failed = 1;
  close_event(e, ev, ws_end_code(cause), NULL, 0, 0, ws_end_initiator(cause),
              WS_V_NONE);
  ev->end = cause;
  ev->error_name =
      cause == WS_END_TRANSPORT && name != NULL ? name : ws_end_name(cause);
  return 1;
}

int ws_engine_eof(ws_engine *e, ws_event *ev) {
  return ws_engine_end(e, WS_END_EOF, NULL, ev);
}

/* Check a decoded header against 5.1-5.5 and the limits; set up the
 * frame. Returns WS_V_NONE or what was violated. */
static ws_violation start_frame(ws_engine *e) {
  const ws_frame_header *h = &e->fh;
  unsigned op = h->opcode;

  if (h->rsv != 0) { /* one test for the common frame */
    if (h->rsv & ~e->cfg.allowed_rsv) return WS_V_RSV_BITS;
    /* RFC 7692 6: RSV1 marks a compressed message on its first frame
     * only. */
    if ((h->rsv & 4) && e->pmd != NULL) {
      if ((op & 0x8) && op <= WS_OP_PONG) return WS_V_COMPRESSED_CONTROL;
      if (op == WS_OP_CONTINUATION) return WS_V_COMPRESSED_CONTINUATION;
    }
  }
  if ((op > WS_OP_BINARY && op < WS_OP_CLOSE) || op > WS_OP_PONG)
    return WS_V_RESERVED_OPCODE;
  if (e->cfg.role == WS_ROLE_SERVER && !h->masked) return WS_V_UNMASKED_FRAME;
  if (e->cfg.role == WS_ROLE_CLIENT && h->masked) return WS_V_MASKED_FRAME;
  e->remaining = h->length;
  e->mask_phase = 0;
  e->in_payload = 1;
  e->discard = 0;
  if (op & 0x8) {
    if (!h->fin) return WS_V_FRAGMENTED_CONTROL;
    if (h->length > WS_CONTROL_MAX) return WS_V_CONTROL_TOO_LONG;
    e->ctl_len = 0;
    return WS_V_NONE;
  }
  if (op == WS_OP_CONTINUATION) {
    if (!e->in_message) return WS_V_UNEXPECTED_CONTINUATION;
  } else {
    if (e->in_message) return WS_V_EXPECTED_CONTINUATION;
    e->in_message = 1;
    e->msg_kind = (ws_opcode)op;
    e->msg_rsv = h->rsv;
    e->inflating = 0;
    if (h->rsv != 0 && (h->rsv & 4) && e->pmd != NULL) {
      /* permessage-deflate owns RSV1 and acts on it: events do not show
       * it */
      e->msg_rsv &= ~4u;
      e->inflating = 1;
      if (e->pmd->in.cap > PMD_KEEP_MAX) buf_release(e, &e->pmd->in);
      e->pmd->in.len = 0;
    }
    e->msg_frames = 0;
    e->msg_total = 0;
    e->utf8 = WS_UTF8_ACCEPT;
    if (e->msg.cap > KEEP_BUFFER_MAX) buf_release(e, &e->msg);
    e->msg.len = 0;
  }
  if (h->length > e->cfg.max_message_size - e->msg_total)
    return WS_V_MESSAGE_TOO_BIG;
  if (h->length > e->cfg.max_frame_size) return WS_V_FRAME_TOO_BIG;
  if (++e->msg_frames > e->cfg.max_fragments) return WS_V_TOO_MANY_FRAGMENTS;
  e->msg_total += h->length;
  /* After our close frame, data is read only to find the peer's close. */
  e->discard = e->state != WS_STATE_OPEN;
  return WS_V_NONE;
}

/* A complete control frame with payload p (unmasked). A violation leaves
 * ev untouched (WS_EV_NONE) and e->pending set. */
static void control_frame(ws_engine *e, const uint8_t *p, size_t len,
                          ws_event *ev) {
  int code;
  const uint8_t *reason;
  size_t rlen;
  int r;

  switch (e->fh.opcode) {
    case WS_OP_PING:
      if (e->cfg.auto_pong && e->state == WS_STATE_OPEN &&
          put_frame(e, WS_OP_PONG, 0, 1, p, len) != 0) {
        (void)pend(e, WS_V_NOMEM, 0);
        return;
      }
      *ev = no_event;
      ev->type = WS_EV_PING;
      ev->data = p;
      ev->len = len;
      return;
    case WS_OP_PONG:
      *ev = no_event;
      ev->type = WS_EV_PONG;
      ev->data = p;
      ev->len = len;
      return;
    default:
      break;
  }

  r = ws_close_parse(p, len, &code, &reason, &rlen);
  if (r == WS_EUTF8) {
    (void)pend(e, WS_V_INVALID_CLOSE_REASON, 0);
    return;
  }
  if (r != 0) {
    (void)pend(e, len == 1 ? WS_V_BAD_CLOSE_PAYLOAD
                           : WS_V_INVALID_CLOSE_CODE,
               0);
    return;
  }
  if (rlen && need_cold(e) != 0) {
    (void)pend(e, WS_V_NOMEM, 0);
    return;
  }
  e->received_code = code;
  if (rlen) memcpy(e->cold->received_reason, reason, rlen);
  e->received_reason_len = rlen;

  if (e->state == WS_STATE_OPEN) {
    /* The peer started the closing handshake: echo its code (5.5.1). */
    if (put_close(e, code == WS_CLOSE_no_status ? 0 : code, NULL, 0) != 0)
      e->sent_code = 0;
    e->state = WS_STATE_CLOSED;
    close_event(e, ev, code, received_reason(e), rlen, 1, WS_BY_REMOTE,
                WS_V_NONE);
  } else {
    /* The reply to our close: the handshake is complete. */
    e->state = WS_STATE_CLOSED;
    close_event(e, ev, e->sent_code, sent_reason(e), e->sent_reason_len, 1,
                WS_BY_LOCAL, WS_V_NONE);
  }
}

static void message_event(ws_engine *e, const uint8_t *p, size_t len,
                          ws_event *ev) {
  *ev = no_event;
  ev->type = WS_EV_MESSAGE;
  ev->kind = e->msg_kind;
  ev->rsv = e->msg_rsv;
  ev->data = p;
  ev->len = len;
  e->in_message = 0;
}

/* The inflating path is kept out of ws_engine_recv's body, so that the
 * uncompressed loop's registers are not spent on it. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Between messages: a large buffer of the last one is let go as soon as
 * its message has been handed out (its data stayed valid until now). */
static void release_big(ws_engine *e) {
  if (e->msg.cap > KEEP_BUFFER_MAX) buf_release(e, &e->msg);
  if (e->pmd != NULL && e->pmd->in.cap > PMD_KEEP_MAX)
    buf_release(e, &e->pmd->in);
}

/* Inflate the next piece of a compressed message into pmd->in (fin: the
 * message's last), checking the new text as UTF-8. Returns WS_V_NONE or
 * what was violated. */
static NOINLINE ws_violation inflate_piece(ws_engine *e, const uint8_t *p, size_t n,
                                  int fin) {
  struct ws_engine_pmd *z = e->pmd;
  size_t before = z->in.len;
  int r;
  if (z->f == NULL && ws_inflater_new(&z->f, &z->icfg) != 0)
    return WS_V_NOMEM;
  r = ws_inflate_message(z->f, p, n, fin, e->cfg.max_message_size, &z->in);
  z->st.rx_wire += n;
  z->st.rx_raw += z->in.len - before;
  /* What was inflated is checked before an error of the stream is
   * reported, so the verdict does not depend on how the input was cut
   * into reads: zlib writes the same bytes before the bad spot either
   * way. */
  if (e->msg_kind == WS_OP_TEXT &&
      ws_utf8_validate(&e->utf8, z->in.p + before, z->in.len - before,
                       NULL) != 0)
    return WS_V_INVALID_UTF8;
  if (r == WS_EINFLATE_LIMIT) return WS_V_MESSAGE_TOO_BIG;
  if (r == WS_EINFLATE) return WS_V_BAD_DEFLATE;
  if (r != 0) return WS_V_NOMEM;
  if (e->msg_kind == WS_OP_TEXT && fin && !ws_utf8_complete(e->utf8))
    return WS_V_INVALID_UTF8;
  return WS_V_NONE;
}

static const uint8_t *inflated(const ws_engine *e) {
  return e->pmd->in.p ? e->pmd->in.p : (const uint8_t *)"";
}

/* The current data frame is complete. A violation leaves ev untouched
 * and e->pending set. */
static void data_frame_done(ws_engine *e, ws_event *ev) {
  if (e->discard || !e->fh.fin) {
    if (e->fh.fin) e->in_message = 0;
    return;
  }
  if (e->inflating) {
    ws_violation v = inflate_piece(e, NULL, 0, 1);
    if (v != WS_V_NONE) {
      (void)pend(e, v, 0);
      return;
    }
    message_event(e, inflated(e), e->pmd->in.len, ev);
    return;
  }
  if (e->msg_kind == WS_OP_TEXT && !ws_utf8_complete(e->utf8)) {
    (void)pend(e, WS_V_INVALID_UTF8, 0);
    return;
  }
  message_event(e, e->msg.p ? e->msg.p : (const uint8_t *)"", e->msg.len,
                ev);
}

/* ------------------------------------------------------------ part mode */

/* Part mode (ws_engine_stream) has its own receive loop, so that whole
 * mode's keeps its fast path with no test of the mode per frame: the two
 * share the frame checks (start_frame) and control frames, and differ in
 * what happens to data payload. */

static void part_event(ws_engine *e, const uint8_t *p, size_t len, int fin,
                       ws_event *ev) {
  *ev = no_event;
  ev->type = WS_EV_PART;
  ev->kind = e->msg_kind;
  ev->rsv = e->msg_rsv;
  ev->fin = fin;
  ev->data = p ? p : (const uint8_t *)"";
  ev->len = len;
  if (fin) e->in_message = 0;
}

/* Inflated bytes a part carries at most (zlib may add up to one match
 * held back, with the message's last part). */
#define PART_INFLATE_ROOM ((size_t)16384)

/* Inflate from p[n] into pmd->in (emptied first), at most
 * PART_INFLATE_ROOM bytes; *used: input taken. The message's end (fin)
 * is inflated too once all of p was taken. New text is checked as
 * UTF-8 before an error of the stream is reported, as inflate_piece
 * does, so the verdict is whole mode's. */
static NOINLINE ws_violation inflate_part(ws_engine *e, const uint8_t *p,
                                          size_t n, int fin, size_t *used) {
  struct ws_engine_pmd *z = e->pmd;
  int r;
  z->in.len = z->in.off = 0;
  *used = 0;
  if (z->f == NULL && ws_inflater_new(&z->f, &z->icfg) != 0)
    return WS_V_NOMEM;
  r = ws_inflate_part(z->f, p ? p : (const uint8_t *)"", n,
                      e->cfg.max_message_size, PART_INFLATE_ROOM, &z->in,
                      used);
  if (r == 0 && fin && *used == n)
    r = ws_inflate_message(z->f, NULL, 0, 1, e->cfg.max_message_size,
                           &z->in);
  z->st.rx_wire += *used;
  z->st.rx_raw += z->in.len;
  if (e->msg_kind == WS_OP_TEXT &&
      ws_utf8_validate(&e->utf8, z->in.p, z->in.len, NULL) != 0)
    return WS_V_INVALID_UTF8;
  if (r == WS_EINFLATE_LIMIT) return WS_V_MESSAGE_TOO_BIG;
  if (r == WS_EINFLATE) return WS_V_BAD_DEFLATE;
  if (r != 0) return WS_V_NOMEM;
  if (e->msg_kind == WS_OP_TEXT && fin && *used == n &&
      !ws_utf8_complete(e->utf8))
    return WS_V_INVALID_UTF8;
  return WS_V_NONE;
}

/* The payload bytes p[take] of the current data frame, just unmasked
 * (the mask phase before them was phase0). Returns the bytes consumed
 * (fewer than take when inflating stopped at a full part: the rest is
 * masked again and left for the next call), with *ev a part when one is
 * ready; a violation leaves e->pending set. */
static size_t stream_payload(ws_engine *e, uint8_t *p, size_t take,
                             unsigned phase0, ws_event *ev) {
  int last = e->remaining == take && e->fh.fin;
  if (e->inflating) {
    size_t used;
    ws_violation v = inflate_part(e, p, take, last, &used);
    if (v != WS_V_NONE) {
      (void)pend(e, v, 0);
      return take;
    }
    if (used < take) {
      if (e->fh.masked) {
        e->mask_phase = (phase0 + (unsigned)used) & 3u;
        (void)ws_mask(p + used, take - used, e->fh.key, e->mask_phase);
      }
      last = 0;
    }
    e->remaining -= used;
    if (last || e->pmd->in.len > 0)
      part_event(e, e->pmd->in.p, e->pmd->in.len, last, ev);
    return used;
  }
  e->remaining -= take;
  if (e->msg_kind == WS_OP_TEXT &&
      (ws_utf8_validate(&e->utf8, p, take, NULL) != 0 ||
       (last && !ws_utf8_complete(e->utf8)))) {
    (void)pend(e, WS_V_INVALID_UTF8, 0);
    return take;
  }
  if (take > 0 || last) part_event(e, p, take, last, ev);
  return take;
}

static size_t recv_parts(ws_engine *e, uint8_t *in, size_t len,
                         ws_event *ev) {
  size_t pos = 0;
  while (pos < len) {
    if (!e->in_payload) {
      ws_violation v;
      int n;
      /* The header, as in ws_engine_recv. */
      if (e->hdr_len == 0) {
        n = ws_frame_decode(in + pos, len - pos, &e->fh);
        if (n == WS_EINCOMPLETE) {
          memcpy(e->hdr, in + pos, len - pos);
          e->hdr_len = (unsigned)(len - pos);
          return len;
        }
        if (n > 0) pos += (size_t)n;
      } else {
        size_t k = sizeof e->hdr - e->hdr_len;
        if (k > len - pos) k = len - pos;
        memcpy(e->hdr + e->hdr_len, in + pos, k);
        n = ws_frame_decode(e->hdr, e->hdr_len + k, &e->fh);
        if (n == WS_EINCOMPLETE) {
          e->hdr_len += (unsigned)k;
          return len;
        }
        if (n > 0) {
          pos += (size_t)n - e->hdr_len;
          e->hdr_len = 0;
        }
      }
      if (n < 0) return pend(e, WS_V_LENGTH_TOP_BIT, len);
      if ((v = start_frame(e)) != WS_V_NONE) return pend(e, v, len);
      e->rx_frames++;
      if (e->fh.opcode & 0x8) {
        if (e->remaining <= len - pos) { /* whole: handled in place */
          uint8_t *p = in + pos;
          size_t n2 = (size_t)e->remaining;
          if (e->fh.masked) ws_mask(p, n2, e->fh.key, 0);
          pos += n2;
          e->remaining = 0;
          e->in_payload = 0;
          control_frame(e, p, n2, ev);
          return e->pending != WS_V_NONE ? len : pos;
        }
        continue;
      }
      if (e->remaining > 0) continue;
      /* An empty data frame: only the message's last one gives a part. */
      e->in_payload = 0;
      if (e->discard || !e->fh.fin) {
        if (e->fh.fin) e->in_message = 0;
        continue;
      }
      (void)stream_payload(e, in + pos, 0, 0, ev);
      if (e->pending != WS_V_NONE) return len;
      if (ev->type != WS_EV_NONE) return pos;
      continue;
    }
    {
      uint8_t *p = in + pos;
      size_t take = len - pos;
      unsigned phase0 = e->mask_phase;
      if ((uint64_t)take > e->remaining) take = (size_t)e->remaining;
      if (e->fh.masked && !e->discard)
        e->mask_phase = ws_mask(p, take, e->fh.key, e->mask_phase);
      if (e->fh.opcode & 0x8) {
        if (need_cold(e) != 0) return pend(e, WS_V_NOMEM, len);
        memcpy(e->cold->ctl + e->ctl_len, p, take);
        e->ctl_len += take;
        pos += take;
        e->remaining -= take;
        if (e->remaining > 0) return pos;
        e->in_payload = 0;
        control_frame(e, e->ctl_len ? e->cold->ctl : (const uint8_t *)"",
                      e->ctl_len, ev);
        return e->pending != WS_V_NONE ? len : pos;
      }
      if (e->discard) {
        pos += take;
        e->remaining -= take;
      } else {
        pos += stream_payload(e, p, take, phase0, ev);
        if (e->pending != WS_V_NONE) return len;
      }
      if (e->remaining == 0) {
        e->in_payload = 0;
        if (e->discard && e->fh.fin) e->in_message = 0;
      }
      if (ev->type != WS_EV_NONE) return pos;
    }
  }
  return pos;
}

int ws_engine_stream(ws_engine *e, int on) {
  if (e->rx_frames != 0 || e->hdr_len != 0 || e->in_payload) return WS_ESTATE;
  e->stream = on ? 1 : 0;
  return 0;
}

size_t ws_engine_recv(ws_engine *e, uint8_t *in, size_t len, ws_event *ev) {
  size_t pos = 0;
  ev->type = WS_EV_NONE;
  /* A large reassembly buffer is let go as soon as its message has been
   * handed out (its data stayed valid until this call). */
  if (!e->in_message) release_big(e);
  if (e->pending != WS_V_NONE) {
    fail(e, e->pending, ev);
    return len;
  }
  if (e->failed || e->state == WS_STATE_CLOSED) return len;
  if (e->stream) return recv_parts(e, in, len, ev);

  while (pos < len) {
    if (!e->in_payload) {
      ws_violation v;
      size_t avail;
      int n;
      if (e->hdr_len == 0) {
        n = ws_frame_decode(in + pos, len - pos, &e->fh);
        if (n == WS_EINCOMPLETE) {
          memcpy(e->hdr, in + pos, len - pos);
          e->hdr_len = (unsigned)(len - pos);
          return len;
        }
        if (n > 0) pos += (size_t)n;
      } else {
        size_t k = sizeof e->hdr - e->hdr_len;
        if (k > len - pos) k = len - pos;
        memcpy(e->hdr + e->hdr_len, in + pos, k);
        n = ws_frame_decode(e->hdr, e->hdr_len + k, &e->fh);
        if (n == WS_EINCOMPLETE) {
          e->hdr_len += (unsigned)k;
          return len;
        }
        if (n > 0) {
          pos += (size_t)n - e->hdr_len;
          e->hdr_len = 0;
        }
      }
      if (n < 0) return pend(e, WS_V_LENGTH_TOP_BIT, len);
      if ((v = start_frame(e)) != WS_V_NONE) return pend(e, v, len);
      e->rx_frames++;

      /* Fast path: the whole payload is here and nothing is buffered. */
      avail = len - pos;
      if (e->remaining <= avail && !e->discard &&
          (e->fh.opcode & 0x8 ||
           (e->fh.fin && (e->inflating || e->msg.len == 0)))) {
        uint8_t *p = in + pos;
        size_t n2 = (size_t)e->remaining;
        if (e->fh.masked) ws_mask(p, n2, e->fh.key, 0);
        pos += n2;
        e->remaining = 0;
        e->in_payload = 0;
        if (e->fh.opcode & 0x8) {
          control_frame(e, p, n2, ev);
          return e->pending != WS_V_NONE ? len : pos;
        }
        if (e->inflating) {
          if ((v = inflate_piece(e, p, n2, 1)) != WS_V_NONE)
            return pend(e, v, len);
          message_event(e, inflated(e), e->pmd->in.len, ev);
          return pos;
        }
        if (e->msg_kind == WS_OP_TEXT &&
            (ws_utf8_validate(&e->utf8, p, n2, NULL) != 0 ||
             !ws_utf8_complete(e->utf8)))
          return pend(e, WS_V_INVALID_UTF8, len);
        message_event(e, p, n2, ev);
        return pos;
      }
      if (e->remaining > 0) continue;
    } else {
      /* Payload bytes of a frame that did not arrive whole. */
      uint8_t *p = in + pos;
      size_t take = len - pos;
      if ((uint64_t)take > e->remaining) take = (size_t)e->remaining;
      pos += take;
      e->remaining -= take;
      if (e->fh.masked && !e->discard)
        e->mask_phase = ws_mask(p, take, e->fh.key, e->mask_phase);
      if (e->fh.opcode & 0x8) {
        if (need_cold(e) != 0) return pend(e, WS_V_NOMEM, len);
        memcpy(e->cold->ctl + e->ctl_len, p, take);
        e->ctl_len += take;
      } else if (!e->discard && e->inflating) {
        ws_violation v = inflate_piece(e, p, take, 0);
        if (v != WS_V_NONE) return pend(e, v, len);
      } else if (!e->discard) {
        /* Validate as bytes arrive, so bad text fails at once. */
        if (e->msg_kind == WS_OP_TEXT &&
            ws_utf8_validate(&e->utf8, p, take, NULL) != 0)
          return pend(e, WS_V_INVALID_UTF8, len);
        if (buf_reserve(e, &e->msg, take) != 0)
          return pend(e, WS_V_NOMEM, len);
        memcpy(e->msg.p + e->msg.len, p, take);
        e->msg.len += take;
      }
      if (e->remaining > 0) return pos;
    }

    /* The frame is complete. */
    e->in_payload = 0;
    if (e->fh.opcode & 0x8) {
      control_frame(e, e->ctl_len ? e->cold->ctl : (const uint8_t *)"",
                    e->ctl_len, ev);
      return e->pending != WS_V_NONE ? len : pos;
    }
    data_frame_done(e, ev);
    if (ev->type != WS_EV_NONE) return pos;
    if (e->pending != WS_V_NONE) return len;
  }
  return pos;
}

/* ------------------------------------------------------ permessage-deflate */

int ws_engine_deflate(ws_engine *e, const ws_pmd_params *agreed, int level,
                      int mem_level, size_t threshold) {
  struct ws_engine_pmd *z;
  int server = e->cfg.role == WS_ROLE_SERVER;
  int ours = server ? agreed->server_max_window_bits
                    : agreed->client_max_window_bits;
  int theirs = server ? agreed->client_max_window_bits
                      : agreed->server_max_window_bits;
  if (e->pmd != NULL || ours < 8 || ours > 15 || theirs < 8 || theirs > 15 ||
      level < -1 || level > 9 || mem_level < 1 || mem_level > 9)
    return WS_EINVALID;
  z = e->cfg.alloc(e->cfg.alloc_ud, NULL, 0, sizeof *z);
  if (z == NULL) return WS_ENOMEM;
  memset(z, 0, sizeof *z);
  ws_deflate_config_init(&z->dcfg);
  z->dcfg.window_bits = ours;
  z->dcfg.level = level;
  z->dcfg.mem_level = mem_level;
  z->dcfg.no_context_takeover =
      server ? agreed->server_no_context_takeover
             : agreed->client_no_context_takeover;
  z->dcfg.alloc = e->cfg.alloc;
  z->dcfg.alloc_ud = e->cfg.alloc_ud;
  z->icfg = z->dcfg;
  z->icfg.window_bits = theirs;
  z->icfg.no_context_takeover =
      server ? agreed->client_no_context_takeover
             : agreed->server_no_context_takeover;
  z->threshold = threshold;
  e->pmd = z;
  e->cfg.allowed_rsv |= 4;
  return 0;
}

void ws_engine_deflate_stats(const ws_engine *e, ws_deflate_stats *st) {
  if (e->pmd != NULL)
    *st = e->pmd->st;
  else
    memset(st, 0, sizeof *st);
}

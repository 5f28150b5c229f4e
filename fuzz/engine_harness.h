/*
 * The engine fuzz harness shared by fuzz_engine_server.c and
 * fuzz_engine_client.c; each defines LLVMFuzzerTestOneInput as one call
 * to engine_harness_run with its role.
 *
 * Input layout:
 *   byte 0  bits 0-1 max_message_size (default, 0, 5, 130)
 *           bits 2-3 max_fragments (default, 0, 2, 3)
 *           bit  4   auto_pong off
 *           bit  5   allowed_rsv = RSV1
 *           bits 6-7 before the feed: nothing, close(1000, "bye"),
 *                    close(0), or open a fragmented text send
 *   byte 1  bits 0-1 max_frame_size (default, 1, 4, 126)
 *           bit  2   the random source fails (matters for clients only)
 *           bits 3-4 fragment size of a send after the feed (0, 1, 7, 64)
 *           bits 5-7 largest chunk of the split feed (2 .. 257)
 *   byte 2  bits 0-4 seed of the split feed's chunk sizes
 *           bit  5   part mode (ws_engine_stream): the three runs get
 *                    parts, which are joined into messages as they are
 *                    logged, and a fifth run in whole mode, fed whole,
 *                    must log the same events (the same messages and the
 *                    same close event), return the same codes and queue
 *                    the same output
 *           bits 6-7 a fourth run whose allocator fails: none, or after
 *                    0, 1 or 2 allocations
 *   byte 3  bits 0-1 a violation still pending after the feed is acted on
 *                    by: nothing yet (the calls after the feed find it
 *                    pending), ws_engine_recv with len 0, ws_engine_recv
 *                    with the wire again, ws_engine_fail_pending
 *           bit  5   with 0 above: ws_engine_fail_pending after those
 *                    calls, before the end
 *           bits 2-4 how the connection ends: eof, a transport error named
 *                    "reset", one with no name, heartbeat timeout, close
 *                    timeout, aborted (6 and 7: eof)
 *           bits 6-7 permessage-deflate: off, on (windows 15, threshold
 *                    0, so every send is compressed), on without context
 *                    takeover, on with windows 8 and 9
 *   rest    bytes from the wire
 *
 * The wire bytes go to three engines set up alike: whole, one byte at a
 * time, and in chunks of pseudo-random size. Each chunk is an exact-size
 * heap copy (the engine unmasks in place, and ASan sees any over-read).
 * The three must report the same events, return the same codes to the
 * same calls afterwards, and queue the same output bytes. (The fourth
 * run, short of memory, is not compared: whole and split input allocate
 * differently. It gets every other check.) Along the way the harness
 * checks what the header promises: a close code is one a close event
 * may report, nothing follows a close event, ev->type NONE
 * means the input was used up, text is UTF-8 (by the reference
 * validator), limits hold, a violation is pending (state unchanged, calls
 * accepted) until the next call in acts on it, and ws_engine_end reports
 * exactly once, the pending violation first. Feeding stops once a
 * violation is pending, so that the three runs stand at the same point
 * (the rest of the input would be ignored anyway).
 * Finally the output must be well-formed frames (nothing after a close
 * frame) that an engine of the opposite role accepts without a protocol
 * error.
 */
#ifndef FUZZ_ENGINE_HARNESS_H
#define FUZZ_ENGINE_HARNESS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ref_utf8.h"
#include "ws.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

/* --------------------------------------------------------- randomness */

/* Deterministic so that runs reproduce and the three engines mask
 * alike. */
typedef struct {
  uint32_t s;
  int fail;
} det_rand;

static int det_rand_fn(void *ud, uint8_t *buf, size_t n) {
  det_rand *r = ud;
  size_t i;
  if (r->fail) return 1;
  for (i = 0; i < n; i++) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 17;
    r->s ^= r->s << 5;
    buf[i] = (uint8_t)(r->s >> 24);
  }
  return 0;
}

/* An allocator that gives out `left` (re)allocations, then fails. */
typedef struct {
  int left;
} budget;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget *b = ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (b->left <= 0) return NULL;
  b->left--;
  return realloc(ptr, nsize);
}

/* ------------------------------------------------------------- config */

typedef struct {
  ws_config cfg;
  int pre;             /* action before the feed, 0..3 */
  size_t send_fragment;
  unsigned chunk_max;  /* split feed: chunks of 1..chunk_max bytes */
  uint64_t chunk_seed;
  int alloc_budget;    /* -1: no run with a failing allocator */
  int act;             /* how a pending violation is acted on, 0..3 */
  int act_late;        /* act == 0: fail_pending before the end */
  int deflate;         /* 0 off; else the agreement in pmd */
  int stream;          /* part mode, with a whole-mode run to compare */
  ws_pmd_params pmd;
  ws_end end;          /* how the connection ends */
  const char *end_name;
} harness_opts;

static void decode_opts(harness_opts *o, ws_role role, const uint8_t c[4]) {
  static const ws_end ends[8] = {
      WS_END_EOF,           WS_END_TRANSPORT,     WS_END_TRANSPORT,
      WS_END_HEARTBEAT_TIMEOUT, WS_END_CLOSE_TIMEOUT, WS_END_ABORTED,
      WS_END_EOF,           WS_END_EOF};
  static const uint64_t msg_sizes[4] = {0, 0, 5, 130};
  static const size_t fragments[4] = {0, 0, 2, 3};
  static const uint64_t frame_sizes[4] = {0, 1, 4, 126};
  static const size_t send_frags[4] = {0, 1, 7, 64};
  static const unsigned chunk_max[8] = {2, 3, 4, 5, 8, 16, 64, 257};
  ws_config_init(&o->cfg, role);
  if (c[0] & 3) o->cfg.max_message_size = msg_sizes[c[0] & 3];
  if ((c[0] >> 2) & 3) o->cfg.max_fragments = fragments[(c[0] >> 2) & 3];
  o->cfg.auto_pong = !(c[0] & 0x10);
  o->cfg.allowed_rsv = (c[0] & 0x20) ? 4u : 0u;
  o->pre = c[0] >> 6;
  if (c[1] & 3) o->cfg.max_frame_size = frame_sizes[c[1] & 3];
  o->send_fragment = send_frags[(c[1] >> 3) & 3];
  o->chunk_max = chunk_max[c[1] >> 5];
  o->chunk_seed = c[2] & 0x1F;
  o->stream = (c[2] >> 5) & 1;
  o->alloc_budget = (int)(c[2] >> 6) - 1;
  o->act = c[3] & 3;
  o->act_late = (c[3] >> 5) & 1;
  o->end = ends[(c[3] >> 2) & 7];
  o->end_name = ((c[3] >> 2) & 7) == 1 ? "reset" : NULL;
  o->deflate = c[3] >> 6;
  o->pmd.server_no_context_takeover = o->pmd.client_no_context_takeover =
      o->deflate == 2;
  o->pmd.server_max_window_bits = o->deflate == 3 ? 8 : 15;
  o->pmd.client_max_window_bits = o->deflate == 3 ? 9 : 15;
}

/* ----------------------------------------------------------- events */

typedef struct {
  ws_event ev; /* scalars; the pointers below replace its own */
  uint8_t *data, *reason, *sent_reason;
} rec;

typedef struct {
  rec *v;
  size_t n, cap;
  int closed; /* a close event has been logged */
  /* part mode: the message being joined from its parts */
  uint8_t *part;
  size_t part_len, part_cap;
  int in_part;
  ws_opcode part_kind;
  unsigned part_rsv;
} evlog;

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *q = malloc(n ? n : 1);
  CHECK(q != NULL);
  if (n) {
    CHECK(p != NULL);
    memcpy(q, p, n);
  }
  return q;
}

/* Close codes a close event may report: the wire codes plus 1005 (no
 * status) and 1006 (abnormal); 1004 and 1015 are allowed here by the
 * brief's wider range but never expected. */
static int event_code_ok(int c) {
  return (c >= 1000 && c <= 1003) || (c >= 1005 && c <= 1015) ||
         (c >= 3000 && c <= 4999);
}

/* Check one event against the header's promises, then keep a copy. */
static void log_event(evlog *l, const ws_event *ev, const ws_config *cfg) {
  rec r;
  CHECK(!l->closed); /* nothing may follow a close event */
  switch (ev->type) {
    case WS_EV_PART: {
      /* Joined into the message whole mode would report; every part of
       * a message has its kind and rsv, and it stays within the limit
       * all along. */
      ws_event m;
      CHECK(ev->kind == WS_OP_TEXT || ev->kind == WS_OP_BINARY);
      CHECK(ev->fin == 0 || ev->fin == 1);
      CHECK(ev->data != NULL || ev->len == 0);
      if (l->in_part) {
        CHECK(ev->kind == l->part_kind && ev->rsv == l->part_rsv);
      } else {
        l->in_part = 1;
        l->part_kind = ev->kind;
        l->part_rsv = ev->rsv;
        l->part_len = 0;
      }
      if (l->part_len + ev->len > l->part_cap) {
        l->part_cap = 2 * (l->part_len + ev->len) + 16;
        l->part = realloc(l->part, l->part_cap);
        CHECK(l->part != NULL);
      }
      if (ev->len) memcpy(l->part + l->part_len, ev->data, ev->len);
      l->part_len += ev->len;
      CHECK((uint64_t)l->part_len <= cfg->max_message_size);
      if (!ev->fin) return;
      l->in_part = 0;
      m = *ev;
      m.type = WS_EV_MESSAGE;
      m.fin = 0;
      m.data = l->part;
      m.len = l->part_len;
      log_event(l, &m, cfg);
      return;
    }
    case WS_EV_MESSAGE:
      CHECK(ev->kind == WS_OP_TEXT || ev->kind == WS_OP_BINARY);
      CHECK((uint64_t)ev->len <= cfg->max_message_size);
      CHECK((ev->rsv & ~cfg->allowed_rsv) == 0);
      if (ev->kind == WS_OP_TEXT) CHECK(ref_utf8_valid(ev->data, ev->len));
      break;
    case WS_EV_PING:
    case WS_EV_PONG:
      CHECK(ev->len <= WS_CONTROL_MAX);
      break;
    case WS_EV_CLOSE:
      CHECK(event_code_ok(ev->code));
      CHECK(ev->reason != NULL || ev->reason_len == 0);
      CHECK(ev->reason_len <= WS_CONTROL_MAX - 2);
      CHECK(ref_utf8_valid(ev->reason, ev->reason_len));
      if (ev->error == WS_V_NONE && ev->end == WS_END_NONE) {
        CHECK(ev->clean == 1);
        CHECK(ev->error_name == NULL);
        if (ev->initiator == WS_BY_REMOTE) {
          CHECK(ev->code == ev->received_code);
        } else {
          CHECK(ev->initiator == WS_BY_LOCAL);
          CHECK(ev->code == ev->sent_code);
        }
      } else if (ev->error != WS_V_NONE) {
        CHECK(ev->error > WS_V_NONE && ev->error < WS_V__COUNT);
        CHECK(ev->end == WS_END_NONE);
        CHECK(ev->clean == 0);
        CHECK(ev->code == ws_violation_code(ev->error));
        CHECK(ev->initiator == WS_BY_LOCAL);
        CHECK(ev->error_name != NULL &&
              strcmp(ev->error_name, ws_violation_name(ev->error)) == 0);
      } else {
        CHECK(ev->end > WS_END_NONE && ev->end < WS_END_HANDSHAKE);
        CHECK(ev->clean == 0 && ev->reason_len == 0);
        CHECK(ev->code == ws_end_code(ev->end) && ev->code == 1006);
        CHECK(ev->initiator == ws_end_initiator(ev->end));
        CHECK(ev->error_name != NULL);
        if (ev->end != WS_END_TRANSPORT)
          CHECK(strcmp(ev->error_name, ws_end_name(ev->end)) == 0);
      }
      if (ev->sent_code) CHECK(event_code_ok(ev->sent_code));
      if (ev->received_code) CHECK(event_code_ok(ev->received_code));
      CHECK(ev->sent_reason != NULL && ev->received_reason != NULL);
      CHECK(ev->sent_reason_len <= WS_CONTROL_MAX - 2 &&
            ev->received_reason_len <= WS_CONTROL_MAX - 2);
      CHECK(ev->received_code != 0 || ev->received_reason_len == 0);
      CHECK(ref_utf8_valid(ev->received_reason, ev->received_reason_len));
      l->closed = 1;
      break;
    default:
      abort();
  }
  r.ev = *ev;
  r.data = dup_bytes(ev->data, ev->len);
  r.reason = ev->type == WS_EV_CLOSE
                 ? dup_bytes(ev->reason, ev->reason_len)
                 : dup_bytes(NULL, 0);
  r.sent_reason = ev->type == WS_EV_CLOSE
                      ? dup_bytes(ev->sent_reason, ev->sent_reason_len)
                      : dup_bytes(NULL, 0);
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 8;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    CHECK(l->v != NULL);
  }
  l->v[l->n++] = r;
}

static void log_free(evlog *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    free(l->v[i].data);
    free(l->v[i].reason);
    free(l->v[i].sent_reason);
  }
  free(l->v);
  free(l->part);
  memset(l, 0, sizeof *l);
}

static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
  return n == 0 || memcmp(a, b, n) == 0;
}

static void check_same_events(const evlog *a, const evlog *b) {
  size_t i;
  CHECK(a->n == b->n);
  for (i = 0; i < a->n; i++) {
    const ws_event *x = &a->v[i].ev, *y = &b->v[i].ev;
    CHECK(x->type == y->type);
    CHECK(x->kind == y->kind);
    CHECK(x->rsv == y->rsv);
    CHECK(x->len == y->len);
    CHECK(same_bytes(a->v[i].data, b->v[i].data, x->len));
    CHECK(x->code == y->code);
    CHECK(x->reason_len == y->reason_len);
    if (x->type == WS_EV_CLOSE) {
      CHECK(same_bytes(a->v[i].reason, b->v[i].reason, x->reason_len));
      CHECK(x->sent_reason_len == y->sent_reason_len);
      CHECK(same_bytes(a->v[i].sent_reason, b->v[i].sent_reason,
                       x->sent_reason_len));
    }
    CHECK(x->clean == y->clean);
    CHECK(x->initiator == y->initiator);
    CHECK(x->error == y->error);
    CHECK(x->end == y->end);
    CHECK((x->error_name == NULL) == (y->error_name == NULL));
    if (x->error_name) CHECK(strcmp(x->error_name, y->error_name) == 0);
    CHECK(x->sent_code == y->sent_code);
    CHECK(x->received_reason_len == y->received_reason_len);
    CHECK(x->received_code == y->received_code);
  }
}

/* ------------------------------------------------------------ feeding */

typedef struct {
  int mode; /* 0 whole, 1 one byte at a time, 2 pseudo-random chunks */
  uint64_t s;
  unsigned max;
} chunker;

static size_t next_chunk(chunker *c, size_t left) {
  size_t n;
  if (c->mode == 0) return left;
  if (c->mode == 1) return 1;
  c->s = c->s * 6364136223846793005ull + 1442695040888963407ull;
  n = 1 + (size_t)((c->s >> 33) % c->max);
  return n < left ? n : left;
}

/* Feed one chunk, an exact-size copy, taking every event out of it. */
static void feed_chunk(ws_engine *e, const uint8_t *p, size_t n, evlog *l,
                       const ws_config *cfg) {
  uint8_t *c = dup_bytes(p, n);
  size_t off = 0;
  while (off < n) {
    ws_event ev;
    size_t used = ws_engine_recv(e, c + off, n - off, &ev);
    CHECK(used <= n - off);
    off += used;
    if (ev.type == WS_EV_NONE)
      CHECK(off == n); /* NONE means the input was used up */
    else
      log_event(l, &ev, cfg);
  }
  free(c);
}

/* --------------------------------------------------------------- runs */

typedef struct {
  ws_engine e;
  det_rand rnd;
  budget mem;
  int short_of_memory; /* mem applies; WS_ENOMEM is a fine answer */
  int whole;           /* whole mode even when o->stream */
  evlog log;
  int rets[24];
  size_t nrets;
  uint8_t *out; /* every output byte, in order */
  size_t out_len;
} run;

static void ret(run *r, int v) {
  CHECK(r->nrets < sizeof r->rets / sizeof r->rets[0]);
  /* every code a call returns has a name and a message in the table */
  CHECK(v == 0 || strcmp(ws_errname(v), "unknown") != 0);
  CHECK(strcmp(ws_strerror(v), "unknown error") != 0);
  r->rets[r->nrets++] = v;
}

/* A violation pending now is acted on by `how` (see the input layout):
 * exactly one close event naming it, the state CLOSED, nothing pending. */
static void act_on_pending(run *r, int how, const uint8_t *wire, size_t len,
                           const ws_config *cfg) {
  ws_violation v = ws_engine_failing(&r->e);
  ws_event ev;
  uint8_t none[1] = {0};
  size_t used;
  switch (how) {
    case 1:
      used = ws_engine_recv(&r->e, none, 0, &ev);
      CHECK(used == 0);
      break;
    case 2: {
      uint8_t *c;
      if (v == WS_V_NONE) return; /* the wire would read on */
      c = dup_bytes(wire, len);
      used = ws_engine_recv(&r->e, c, len, &ev);
      CHECK(used == len); /* ignored */
      free(c);
      break;
    }
    case 3:
      CHECK(ws_engine_fail_pending(&r->e, &ev) == (v != WS_V_NONE));
      break;
    default:
      return;
  }
  if (v == WS_V_NONE) {
    CHECK(ev.type == WS_EV_NONE);
    return;
  }
  CHECK(ev.type == WS_EV_CLOSE && ev.error == v);
  CHECK(ws_engine_failing(&r->e) == WS_V_NONE);
  CHECK(ws_engine_state(&r->e) == WS_STATE_CLOSED);
  log_event(&r->log, &ev, cfg);
  CHECK(ws_engine_fail_pending(&r->e, &ev) == 0 && ev.type == WS_EV_NONE);
}

/* Consume up to n output bytes, keeping them. */
static void take_output(run *r, size_t n) {
  size_t have;
  const uint8_t *out = ws_engine_output(&r->e, &have);
  if (n > have) n = have;
  r->out = realloc(r->out, r->out_len + n + 1);
  CHECK(r->out != NULL);
  if (n) memcpy(r->out + r->out_len, out, n);
  r->out_len += n;
  ws_engine_output_consume(&r->e, n);
}

/* One byte over the limit for a close reason. */
static const uint8_t long_reason[WS_CONTROL_MAX - 1] = {0};

static void one_run(run *r, const harness_opts *o, const uint8_t *wire,
                    size_t len, int mode) {
  ws_config cfg = o->cfg;
  chunker ch;
  int rfail = cfg.role == WS_ROLE_CLIENT && r->rnd.fail;
  int ok = rfail ? WS_ERAND : 0, sending = 0, v;
  size_t off = 0, n;
  ws_event ev;
  const uint8_t *out;
  static const uint8_t big[WS_CONTROL_MAX + 1] = {0};

  cfg.rand = det_rand_fn;
  cfg.rand_ud = &r->rnd;
  if (r->short_of_memory) {
    cfg.alloc = budget_alloc;
    cfg.alloc_ud = &r->mem;
  }
  CHECK(ws_engine_init(&r->e, &cfg) == 0);
  if (o->stream && !r->whole) CHECK(ws_engine_stream(&r->e, 1) == 0);
  if (o->deflate) {
    v = ws_engine_deflate(&r->e, &o->pmd, -1, 8, 0);
    CHECK(v == 0 || (r->short_of_memory && v == WS_ENOMEM));
  }
  out = ws_engine_output(&r->e, &n);
  CHECK(out != NULL && n == 0);

  switch (o->pre) {
    case 1:
      ret(r, v = ws_engine_close(&r->e, 1000, (const uint8_t *)"bye", 3));
      CHECK(v == ok || (r->short_of_memory && v == WS_ENOMEM));
      CHECK(ws_engine_state(&r->e) ==
            (v == 0 ? WS_STATE_CLOSING : WS_STATE_OPEN));
      break;
    case 2:
      ret(r, v = ws_engine_close(&r->e, 0, NULL, 0));
      CHECK(v == ok || (r->short_of_memory && v == WS_ENOMEM));
      break;
    case 3:
      /* Half a character: the rest follows after the feed, and pongs
       * may be queued in between. */
      ret(r, v = ws_engine_send_part(&r->e, WS_OP_TEXT,
                                     (const uint8_t *)"\xC3", 1, 0));
      CHECK(v == ok || (r->short_of_memory && v == WS_ENOMEM));
      sending = v == 0;
      break;
    default:
      break;
  }

  ch.mode = mode;
  ch.s = o->chunk_seed;
  ch.max = o->chunk_max;
  while (off < len && ws_engine_failing(&r->e) == WS_V_NONE) {
    ws_state st = ws_engine_state(&r->e);
    n = next_chunk(&ch, len - off);
    feed_chunk(&r->e, wire + off, n, &r->log, &cfg);
    off += n;
    /* finding a violation changes nothing yet */
    if (ws_engine_failing(&r->e) != WS_V_NONE)
      CHECK(ws_engine_state(&r->e) == st && !r->log.closed);
  }
  act_on_pending(r, o->act, wire, len, &cfg);

  /* Calls after the feed: each result follows from the state the call
   * finds. */
#define EXPECT(call, want)                                              \
  do {                                                                  \
    int open_ = ws_engine_state(&r->e) == WS_STATE_OPEN;                \
    ret(r, v = (call));                                                 \
    CHECK(v == (open_ ? (want) : WS_ESTATE) ||                          \
          (open_ && r->short_of_memory && v == WS_ENOMEM));             \
  } while (0)
  /* Keep a byte of output back, so the next frames are queued behind
   * consumed space. */
  take_output(r, 1);
  ret(r, v = ws_engine_ping(&r->e, big, sizeof big));
  CHECK(v == WS_ECONTROL); /* checked before the state */
  EXPECT(ws_engine_ping(&r->e, (const uint8_t *)"p", 1), ok);
  EXPECT(ws_engine_pong(&r->e, (const uint8_t *)"q", 1), ok);
  if (sending) {
    EXPECT(ws_engine_send(&r->e, WS_OP_BINARY, NULL, 0, 0), WS_EFRAGMENT);
    EXPECT(ws_engine_send_part(&r->e, WS_OP_BINARY,
                               (const uint8_t *)"\xA9", 1, 1),
           ok);
    if (v == 0) sending = 0;
  }
  EXPECT(ws_engine_send(&r->e, WS_OP_TEXT, (const uint8_t *)"\xFF", 1, 0),
         sending ? WS_EFRAGMENT : WS_EUTF8);
  if (!sending) {
    /* Half a character that the last part leaves cut off. */
    EXPECT(ws_engine_send_part(&r->e, WS_OP_TEXT, (const uint8_t *)"\xE2\x82",
                               2, 1),
           WS_EUTF8);
  }
  EXPECT(ws_engine_send(&r->e, WS_OP_BINARY, wire, len < 300 ? len : 300,
                        o->send_fragment),
         sending ? WS_EFRAGMENT : ok);
  /* A fragment boundary inside a character is fine on the wire. */
  EXPECT(ws_engine_send(&r->e, WS_OP_TEXT, (const uint8_t *)"h\xC3\xA9llo",
                        6, 2),
         sending ? WS_EFRAGMENT : ok);
  /* Close arguments are checked before the state, and change nothing. */
  ret(r, v = ws_engine_close(&r->e, 1004, NULL, 0));
  CHECK(v == WS_ECODE);
  ret(r, v = ws_engine_close(&r->e, 1000, (const uint8_t *)"\xC3", 1));
  CHECK(v == WS_EREASON_UTF8);
  ret(r, v = ws_engine_close(&r->e, 0, (const uint8_t *)"x", 1));
  CHECK(v == WS_ENOCODE);
  ret(r, v = ws_engine_close(&r->e, 1000, long_reason, sizeof long_reason));
  CHECK(v == WS_EREASON);
  EXPECT(ws_engine_close(&r->e, 4000, (const uint8_t *)"bye", 3), ok);
  if (v == 0) {
    CHECK(ws_engine_state(&r->e) == WS_STATE_CLOSING);
    ret(r, v = ws_engine_send(&r->e, WS_OP_BINARY, (const uint8_t *)"x", 1,
                              0));
    CHECK(v == WS_ESTATE);
  }
#undef EXPECT

  if (o->act == 0 && o->act_late) act_on_pending(r, 3, wire, len, &cfg);

  /* The connection ends: one close event in all, from here or before;
   * a violation still pending is what it reports. */
  CHECK(ws_engine_end(&r->e, WS_END_NONE, NULL, &ev) == WS_EINVALID);
  CHECK(ws_engine_end(&r->e, WS_END_HANDSHAKE, "tls", &ev) == WS_EINVALID);
  CHECK(ws_engine_end(&r->e, (ws_end)99, NULL, &ev) == WS_EINVALID);
  {
    ws_violation pending = ws_engine_failing(&r->e);
    int was_open = ws_engine_state(&r->e) == WS_STATE_OPEN;
    v = ws_engine_end(&r->e, o->end, o->end_name, &ev);
    if (r->log.closed) {
      CHECK(pending == WS_V_NONE);
      CHECK(v == 0 && ev.type == WS_EV_NONE);
    } else if (pending != WS_V_NONE) {
      CHECK(v == 1 && ev.type == WS_EV_CLOSE && ev.error == pending);
      log_event(&r->log, &ev, &cfg);
    } else {
      CHECK(v == 1 && ev.type == WS_EV_CLOSE && ev.end == o->end);
      if (o->end == WS_END_TRANSPORT)
        CHECK(strcmp(ev.error_name, o->end_name ? o->end_name
                                                : "transport") == 0);
      if (o->end == WS_END_HEARTBEAT_TIMEOUT && was_open)
        CHECK((ev.sent_code == 1011 && ev.sent_reason_len == 17 &&
               memcmp(ev.sent_reason, "heartbeat timeout", 17) == 0) ||
              (ev.sent_code == 0 && (r->short_of_memory || rfail)));
      log_event(&r->log, &ev, &cfg);
    }
  }
  CHECK(ws_engine_failing(&r->e) == WS_V_NONE);
  v = ws_engine_end(&r->e, WS_END_ABORTED, NULL, &ev);
  CHECK(v == 0 && ev.type == WS_EV_NONE);
  v = ws_engine_eof(&r->e, &ev);
  CHECK(v == 0 && ev.type == WS_EV_NONE);
  CHECK(ws_engine_state(&r->e) == WS_STATE_CLOSED);
  CHECK(ws_engine_send(&r->e, WS_OP_BINARY, NULL, 0, 0) == WS_ESTATE);
  CHECK(ws_engine_close(&r->e, 1000, NULL, 0) == WS_ESTATE);
  if (len) {
    uint8_t *c = dup_bytes(wire, len);
    CHECK(ws_engine_recv(&r->e, c, len, &ev) == len);
    CHECK(ev.type == WS_EV_NONE);
    free(c);
  }

  /* Take the rest of the output in two pieces, asking for more than
   * is there the second time. */
  ws_engine_output(&r->e, &n);
  take_output(r, n / 2);
  ws_engine_output(&r->e, &off);
  CHECK(off == n - n / 2);
  ws_engine_output_consume(&r->e, 0);
  take_output(r, off);
  ws_engine_output_consume(&r->e, 1);
  ws_engine_output(&r->e, &off);
  CHECK(off == 0);
}

/* ------------------------------------------------------------ output */

/* The output, frame by frame: well-formed, masked by clients only, no
 * RSV bits, valid opcodes, short unfragmented control frames, valid close
 * payloads, and nothing after the close frame. */
static void check_frames(const uint8_t *p, size_t n, ws_role role,
                         int deflate) {
  size_t pos = 0;
  int closed = 0, in_msg = 0;
  while (pos < n) {
    ws_frame_header h;
    int hs = ws_frame_decode(p + pos, n - pos, &h);
    CHECK(hs > 0);
    CHECK(!closed);
    CHECK(h.masked == (role == WS_ROLE_CLIENT));
    /* RSV1 only on the first frame of a compressed message */
    CHECK(h.rsv == 0 || (deflate && h.rsv == 4 && h.opcode >= WS_OP_TEXT &&
                         h.opcode <= WS_OP_BINARY));
    CHECK(h.length <= n - pos - (size_t)hs);
    if (h.opcode & 8) {
      CHECK(h.opcode <= WS_OP_PONG);
      CHECK(h.fin && h.length <= WS_CONTROL_MAX);
      if (h.opcode == WS_OP_CLOSE) {
        uint8_t pl[WS_CONTROL_MAX];
        const uint8_t *reason;
        size_t rlen;
        int code;
        memcpy(pl, p + pos + hs, (size_t)h.length);
        if (h.masked) ws_mask(pl, (size_t)h.length, h.key, 0);
        CHECK(ws_close_parse(pl, (size_t)h.length, &code, &reason, &rlen) ==
              0);
        closed = 1;
      }
    } else {
      CHECK(h.opcode <= WS_OP_BINARY);
      CHECK(in_msg == (h.opcode == WS_OP_CONTINUATION));
      in_msg = !h.fin;
    }
    pos += (size_t)hs + (size_t)h.length;
  }
}

/* An engine of the other role must take the output without complaint. */
static void check_peer_accepts(const uint8_t *p, size_t n, ws_role role,
                               const harness_opts *o) {
  ws_engine peer;
  ws_config cfg;
  det_rand rnd = {0x9E3779B9u, 0};
  evlog l;
  memset(&l, 0, sizeof l);
  ws_config_init(&cfg, role == WS_ROLE_CLIENT ? WS_ROLE_SERVER
                                              : WS_ROLE_CLIENT);
  cfg.rand = det_rand_fn;
  cfg.rand_ud = &rnd;
  CHECK(ws_engine_init(&peer, &cfg) == 0);
  if (o->deflate) CHECK(ws_engine_deflate(&peer, &o->pmd, -1, 8, 0) == 0);
  if (n) feed_chunk(&peer, p, n, &l, &cfg);
  {
    size_t i;
    for (i = 0; i < l.n; i++) {
      CHECK(l.v[i].ev.error == WS_V_NONE);
      if (l.v[i].ev.type == WS_EV_CLOSE)
        CHECK(l.v[i].ev.initiator == WS_BY_REMOTE);
    }
  }
  log_free(&l);
  ws_engine_free(&peer);
}

/* ---------------------------------------------------------------- run */

static int engine_harness_run(ws_role role, const uint8_t *data,
                              size_t size) {
  harness_opts o;
  run runs[5];
  const uint8_t *wire;
  size_t len;
  int m, nruns;
  ws_engine tmp;
  ws_config bad;

  /* Set-up errors, and set-up without a config. */
  CHECK(ws_engine_init(&tmp, NULL) == 0 && tmp.cfg.role == WS_ROLE_CLIENT);
  ws_engine_free(&tmp);
  ws_engine_free(&tmp); /* twice is fine */
  ws_config_init(&bad, role);
  bad.role = (ws_role)7;
  CHECK(ws_engine_init(&tmp, &bad) == WS_EINVALID);

  /* A failed handshake's event needs no engine. */
  {
    ws_event ev;
    ws_hs_failed_event(&ev, "tls");
    CHECK(ev.type == WS_EV_CLOSE && ev.code == 1015 && ev.clean == 0 &&
          ev.initiator == WS_BY_TRANSPORT && ev.end == WS_END_HANDSHAKE &&
          strcmp(ev.error_name, "tls") == 0 && ev.reason_len == 0 &&
          ev.sent_code == 0 && ev.received_code == 0);
    ws_hs_failed_event(&ev, "refused");
    CHECK(ev.code == 1006 && strcmp(ev.error_name, "refused") == 0);
    ws_hs_failed_event(&ev, NULL);
    CHECK(ev.code == 1006 && strcmp(ev.error_name, "handshake") == 0);
  }

  if (size < 4) return 0;
  decode_opts(&o, role, data);
  wire = data + 4;
  len = size - 4;
  nruns = o.alloc_budget < 0 ? 3 : 4;
  memset(runs, 0, sizeof runs);
  for (m = 0; m < nruns; m++) {
    runs[m].rnd.s = 0x12345678u;
    runs[m].rnd.fail = (data[1] & 4) != 0;
    runs[m].short_of_memory = m == 3;
    runs[m].mem.left = o.alloc_budget;
    one_run(&runs[m], &o, wire, len, m == 3 ? 2 : m);
  }
  if (o.stream) {
    /* the reference: whole mode, fed whole */
    runs[4].rnd.s = 0x12345678u;
    runs[4].rnd.fail = (data[1] & 4) != 0;
    runs[4].whole = 1;
    one_run(&runs[4], &o, wire, len, 0);
  }
  for (m = 1; m < 5; m++) {
    if (m == 3 || (m == 4 && !o.stream)) continue;
    check_same_events(&runs[0].log, &runs[m].log);
    CHECK(runs[0].nrets == runs[m].nrets);
    CHECK(memcmp(runs[0].rets, runs[m].rets,
                 runs[0].nrets * sizeof runs[0].rets[0]) == 0);
    CHECK(runs[0].out_len == runs[m].out_len);
    CHECK(same_bytes(runs[0].out, runs[m].out, runs[0].out_len));
  }
  check_frames(runs[0].out, runs[0].out_len, role, o.deflate);
  check_peer_accepts(runs[0].out, runs[0].out_len, role, &o);
  if (nruns == 4) {
    check_frames(runs[3].out, runs[3].out_len, role, o.deflate);
    check_peer_accepts(runs[3].out, runs[3].out_len, role, &o);
  }
  for (m = 0; m < 5; m++) {
    log_free(&runs[m].log);
    free(runs[m].out);
    ws_engine_free(&runs[m].e);
  }
  return 0;
}

#endif

/*
 * loadgen: a WebSocket echo load generator built on the lua-ws C core.
 *
 * N client connections, one thread, non-blocking sockets and epoll. Each
 * connection keeps exactly one message in flight: send, wait for the
 * echo, check it, record the round trip, send the next. The protocol is
 * entirely ours: ws_hs_* for the opening handshake and one ws_engine
 * (client role) per connection for framing, masking and parsing, so this
 * also exercises the core against real servers.
 *
 * Phases, each with a deadline: open every connection (CONNECT_SECS),
 * then warm up, then measure for the duration, then send close 1000 on
 * every connection and wait for the replies (CLOSE_SECS). Only echoes
 * that complete inside the measured window are counted and timed.
 *
 * Every payload is a fixed pseudo-random pattern with an 8-byte stamp of
 * (connection, sequence number, position) written at offset 0, every
 * STAMP_EVERY bytes and at the end, so an echo of an older message, of
 * another connection's message or with chunks moved around differs from
 * what is expected. By default the whole echo is compared byte for byte.
 *
 * Latencies go into a preallocated log-linear histogram (64 sub-buckets
 * per power of two; a bucket's midpoint is within 1% of any value in it);
 * nothing is allocated per message here. The engine does allocate: its
 * output buffer grows once, and a reassembly buffer over 256 KiB is
 * dropped and regrown for each message that arrives in pieces.
 *
 * permessage-deflate (-z): every connection offers it ("permessage-deflate;
 * client_max_window_bits", plus both no_context_takeover parameters with
 * -Z), fails unless the server agrees, and compresses everything it sends
 * with zlib level -l (default 1, so that the load generator spends less
 * than the server it measures). The byte counts of both directions go
 * into the RESULT line: rx_wire/rx_raw is the server's compression ratio.
 *
 * Payloads (-f): "pattern" (the default) is the same pseudo-random
 * pattern for every message with only the stamps changing; "random" and
 * "json" are slices at a pseudo-random offset (a function of connection
 * and sequence number) of a 1 MiB pool of random bytes (printable for
 * text) or of JSON-like records with varying numbers, so that consecutive
 * messages differ as real traffic does and a compressor's window sees no
 * copy of the previous message. Stamps are written as above.
 *
 * Memory runs (-n): each connection sends n messages and then stops; once
 * every connection has had its n echoes the load generator prints
 * "HOLD <conns>" and holds every connection open until SIGUSR1 (or -h
 * seconds), then closes them and reports as usual.
 *
 * Usage: loadgen -p port [-H host] [-P path] [-c conns] [-s size]
 *                [-d secs] [-w secs] [-t binary|text] [-m | -M]
 *                [-f pattern|random|json] [-z [-Z] [-l level]]
 *                [-n msgs [-h secs]]
 * Prints one human line and one "RESULT key=value ..." line on stdout
 * (conns size echoes secs rate p50_us p99_us errors, then p90_us max_us,
 * the error counts by kind and cpu_s, our own CPU time, then deflate (0 or
 * 1) and the payload byte counts tx_raw tx_wire rx_wire rx_raw).
 * Exit status 0 on success; 1 if an echo mismatched, a connection failed
 * or did not close cleanly, or nothing was echoed; 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "ws.h"

#define CONNECT_SECS 10.0 /* all connections open and upgraded */
#define CLOSE_SECS 5.0    /* every close reply received */
#define MAX_CONNS 10000   /* the stamp holds 16 bits of connection id */
#define MAX_SIZE (16u * 1024u * 1024u) /* the engine's default limit */
#define STAMP 8
#define STAMP_EVERY 4096
#define READ_BUF (256u * 1024u)
#define REQ_MAX 1024
#define RESP_MAX 4096
#define RESP_HEADERS 32
#define MAX_EVENTS 256
#define MAX_DIAG 10 /* error lines printed before going quiet */
#define POOL_SIZE (1u << 20) /* -f random / json: the slices' source */

/* ---------------------------------------------------------- histogram */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_TOP_BIT 34 /* 2^34 ns = 17 s, beyond any deadline here */
#define HIST_BUCKETS ((HIST_TOP_BIT - SUB_BITS + 1) * SUB)

typedef struct {
  uint64_t count[HIST_BUCKETS];
  uint64_t n, sum, min, max; /* nanoseconds */
} histogram;

static unsigned msb64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return 63u - (unsigned)__builtin_clzll(v);
#else
  unsigned b = 0;
  while (v >>= 1) b++;
  return b;
#endif
}

/* Values below 2*SUB get a bucket each; above, each power of two is cut
 * into SUB equal buckets. */
static unsigned hist_bucket(uint64_t v) {
  unsigned shift;
  if (v >= (1ull << HIST_TOP_BIT)) v = (1ull << HIST_TOP_BIT) - 1;
  if (v < 2 * SUB) return (unsigned)v;
  shift = msb64(v) - SUB_BITS;
  return (shift + 1) * SUB + (unsigned)((v >> shift) & (SUB - 1));
}

/* The middle of bucket b, in the unit recorded. */
static double hist_value(unsigned b) {
  unsigned shift;
  uint64_t low;
  if (b < 2 * SUB) return (double)b;
  shift = b / SUB - 1;
  low = (uint64_t)(SUB + b % SUB) << shift;
  return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

static void hist_add(histogram *h, uint64_t v) {
  h->count[hist_bucket(v)]++;
  if (h->n == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->n++;
  h->sum += v;
}

/* The q-quantile (0..1): the bucket holding the ceil(q*n)-th value. */
static double hist_quantile(const histogram *h, double q) {
  uint64_t rank, seen = 0;
  unsigned b;
  if (h->n == 0) return 0;
  rank = (uint64_t)(q * (double)h->n);
  if ((double)rank < q * (double)h->n || rank == 0) rank++;
  for (b = 0; b < HIST_BUCKETS; b++) {
    seen += h->count[b];
    if (seen >= rank) return hist_value(b);
  }
  return (double)h->max;
}

/* ------------------------------------------------------------- state */

typedef struct {
  const char *host, *port, *path;
  long conns;
  size_t size;
  double duration, warmup;
  ws_opcode kind;
  int check_all; /* compare every byte, not just the stamps */
  enum { F_PATTERN, F_RANDOM, F_JSON } fill;
  int deflate;   /* offer permessage-deflate, require it */
  int no_context_takeover; /* offer both no_context_takeover parameters */
  int zlevel;    /* our compressor's level */
  long count;    /* messages per connection then hold; 0: no limit */
  double hold;   /* -n: longest hold before closing */
} options;

typedef enum {
  C_CONNECTING, /* TCP connect in progress */
  C_HANDSHAKE,  /* request being sent, response being read */
  C_OPEN,
  C_CLOSING, /* our close frame queued, waiting for the reply */
  C_DONE,    /* closed cleanly, socket released */
  C_FAILED   /* socket released */
} conn_phase;

typedef struct {
  int fd;
  unsigned id;
  conn_phase phase;
  int out_armed; /* EPOLLOUT is in the interest set */
  ws_engine e;
  char key[WS_KEY_LEN + 1];
  char req[REQ_MAX];
  size_t req_len, req_off;
  char resp[RESP_MAX];
  size_t resp_len;
  uint64_t seq;     /* sequence number of the message in flight */
  long echoed;      /* echoes received (for -n) */
  int in_flight;
  uint64_t sent_ns; /* when it was queued */
} conn;

typedef struct {
  options opt;
  int ep;
  conn *c;
  uint8_t *base;    /* the pattern every payload starts from */
  uint8_t *pool;    /* -f random / json: where payloads are cut from */
  size_t pool_len;
  uint8_t *scratch; /* base with the stamps of the last built message */
  uint8_t *rbuf;    /* one read buffer shared by all connections */
  histogram hist;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char host_header[300];
  int sending;      /* new messages may be started */
  uint64_t window_start, window_end;
  uint64_t echoes, sent;
  uint64_t mismatches, conn_errors, close_errors;
  long opened, finished; /* connections upgraded; done or failed */
  long counted;          /* -n: connections that had all their echoes */
  ws_pmd_config offer;   /* -z */
  char ext_header[WS_PMD_MAX_TEXT + 64];
  ws_deflate_stats z;    /* summed over released connections */
  long agreed;           /* connections that agreed permessage-deflate */
  int diag;
} loadgen;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL) {
    fprintf(stderr, "loadgen: out of memory\n");
    exit(2);
  }
  return p;
}

static void diag(loadgen *g, const char *fmt, ...) {
  va_list ap;
  if (g->diag++ >= MAX_DIAG) {
    if (g->diag == MAX_DIAG + 1)
      fprintf(stderr, "loadgen: (further errors not shown)\n");
    return;
  }
  fputs("loadgen: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ----------------------------------------------------------- payload */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Text payloads stay printable ASCII, so stamps can go anywhere without
 * splitting a UTF-8 sequence. */
static void fill_base(uint8_t *p, size_t n, int text) {
  uint64_t s = 0x6C75612D7773ull, r = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    if (i % 8 == 0) r = splitmix(&s);
    p[i] = text ? (uint8_t)(0x20 + (r & 0xFF) % 95) : (uint8_t)r;
    r >>= 8;
  }
}

/* Append the decimal digits of v. */
static size_t put_u(char *p, uint64_t v) {
  char t[20];
  size_t n = 0, i;
  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

static size_t put_s(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return n;
}

/* -f json: records of an order feed, one after another, every number
 * drawn afresh; about 150 bytes a record, deflate level 6 makes them
 * about a fifth of that. */
static void fill_json(uint8_t *out, size_t n) {
  static const char *const sym[] = {"BTC-USD", "ETH-USD", "SOL-USD",
                                    "DOGE-USD", "ADA-USD", "XRP-USD"};
  static const char *const side[] = {"buy", "sell"};
  static const char *const status[] = {"new", "partial", "filled",
                                       "cancelled"};
  uint64_t s = 0x6A736F6Eull, id = 4200000;
  uint64_t ts = 1733400000000ull;
  char rec[256];
  size_t pos = 0;
  while (pos < n) {
    uint64_t r = splitmix(&s), r2 = splitmix(&s);
    size_t k = 0, take;
    id += 1 + r % 7;
    ts += r2 % 250;
    k += put_s(rec + k, "{\"id\":");
    k += put_u(rec + k, id);
    k += put_s(rec + k, ",\"ts\":");
    k += put_u(rec + k, ts);
    k += put_s(rec + k, ",\"symbol\":\"");
    k += put_s(rec + k, sym[(r >> 8) % 6]);
    k += put_s(rec + k, "\",\"side\":\"");
    k += put_s(rec + k, side[(r >> 12) & 1]);
    k += put_s(rec + k, "\",\"price\":");
    k += put_u(rec + k, 100 + (r >> 16) % 90000);
    rec[k++] = '.';
    k += put_u(rec + k, 10 + (r >> 36) % 90);
    k += put_s(rec + k, ",\"qty\":");
    k += put_u(rec + k, 1 + (r2 >> 8) % 5000);
    k += put_s(rec + k, ",\"user\":\"u");
    k += put_u(rec + k, 10000 + (r2 >> 24) % 90000);
    k += put_s(rec + k, "\",\"status\":\"");
    k += put_s(rec + k, status[(r2 >> 48) % 4]);
    k += put_s(rec + k, "\",\"ok\":");
    k += put_s(rec + k, (r2 >> 52) & 1 ? "true" : "false");
    k += put_s(rec + k, "},\n");
    take = k < n - pos ? k : n - pos;
    memcpy(out + pos, rec, take);
    pos += take;
  }
}

/* Eight printable bytes for (connection, sequence, slot). Slot k is the
 * stamp at offset k * STAMP_EVERY, and the one at the end has a slot of
 * its own. The first stamp (slot 0) differs for every message that can
 * be in play at once; the others are that value scrambled (splitmix64),
 * so that a message's bytes do not follow its sequence number in a few
 * bits only. LuaJIT interns every string with a CRC32 hash, which is
 * linear: 16-byte messages whose stamps counted up in step (or were two
 * equal halves) fell into a few buckets of its string table, and a
 * server under LuaJIT spent most of its time comparing them (see
 * bench/README.md). */
static void stamp(uint8_t *dst, size_t n, unsigned id, uint64_t seq,
                  size_t slot) {
  uint64_t v = ((uint64_t)(id & 0xFFFF) << 32) | (seq & 0xFFFFFFFFu);
  uint8_t s[STAMP];
  unsigned i;
  if (slot > 0) {
    uint64_t st = v + (uint64_t)slot * 0x9E3779B97F4A7C15ull;
    v = splitmix(&st);
  }
  for (i = 0; i < STAMP; i++) s[i] = (uint8_t)(0x21 + ((v >> (6 * i)) & 0x3F));
  memcpy(dst, s, n < STAMP ? n : STAMP);
}

/* Write the stamps of message (id, seq) into g->scratch, which is base
 * everywhere else; the same positions are stamped for every message. */
static void build(loadgen *g, unsigned id, uint64_t seq) {
  size_t n = g->opt.size, pos;
  if (g->pool != NULL) {
    uint64_t h = ((uint64_t)id << 32) ^ seq;
    size_t off = (size_t)(splitmix(&h) % (g->pool_len - n + 1));
    memcpy(g->scratch, g->pool + off, n);
  }
  for (pos = 0; pos < n; pos += STAMP_EVERY)
    stamp(g->scratch + pos, n - pos, id, seq, pos / STAMP_EVERY);
  if (n > STAMP)
    stamp(g->scratch + n - STAMP, STAMP, id, seq, n / STAMP_EVERY + 1);
}

/* Offset of the first byte of the echo that differs from the stamps (or,
 * with check_all, from anything) of message (id, seq); -1 if none. */
static long verify(loadgen *g, unsigned id, uint64_t seq, const uint8_t *p) {
  size_t n = g->opt.size, pos, i;
  build(g, id, seq);
  if (g->opt.check_all) {
    if (memcmp(p, g->scratch, n) == 0) return -1;
    for (i = 0; p[i] == g->scratch[i]; i++) {
    }
    return (long)i;
  }
  for (pos = 0; pos < n; pos += STAMP_EVERY)
    for (i = pos; i < pos + STAMP && i < n; i++)
      if (p[i] != g->scratch[i]) return (long)i;
  for (i = n > STAMP ? n - STAMP : 0; i < n; i++)
    if (p[i] != g->scratch[i]) return (long)i;
  return -1;
}

/* ------------------------------------------------------- connections */

static void arm(loadgen *g, conn *c, int out) {
  struct epoll_event ev;
  if (c->out_armed == out) return;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.u32 = c->id;
  if (epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->out_armed = out;
}

static void release(loadgen *g, conn *c, conn_phase phase) {
  ws_deflate_stats st;
  if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
  /* All 0 without deflate, or once the engine was freed. */
  ws_engine_deflate_stats(&c->e, &st);
  g->z.tx_raw += st.tx_raw;
  g->z.tx_wire += st.tx_wire;
  g->z.rx_wire += st.rx_wire;
  g->z.rx_raw += st.rx_raw;
  c->fd = -1;
  c->phase = phase;
  c->in_flight = 0;
  ws_engine_free(&c->e);
}

/* The connection is lost; whether that counts against the run or only
 * against its close depends on when. */
static void conn_fail(loadgen *g, conn *c, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  if (c->phase == C_DONE || c->phase == C_FAILED) return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->phase == C_CLOSING) {
    g->close_errors++;
    diag(g, "connection %u: no clean close: %s", c->id, msg);
  } else {
    g->conn_errors++;
    diag(g, "connection %u: %s", c->id, msg);
  }
  release(g, c, C_FAILED);
  g->finished++;
}

/* Write what is pending (the request during the handshake, then the
 * engine's output) until done or the socket is full. -1 if the connection
 * was lost. */
static int flush(loadgen *g, conn *c) {
  for (;;) {
    const uint8_t *p;
    size_t n;
    ssize_t w;
    if (c->phase == C_HANDSHAKE) {
      p = (const uint8_t *)c->req + c->req_off;
      n = c->req_len - c->req_off;
    } else {
      p = ws_engine_output(&c->e, &n);
    }
    if (n == 0) break;
    w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        arm(g, c, 1);
        return 0;
      }
      conn_fail(g, c, "send: %s", strerror(errno));
      return -1;
    }
    if (c->phase == C_HANDSHAKE) c->req_off += (size_t)w;
    else ws_engine_output_consume(&c->e, (size_t)w);
  }
  arm(g, c, 0);
  return 0;
}

/* Queue the connection's next message; the caller flushes. */
static void send_next(loadgen *g, conn *c) {
  int r;
  c->seq++;
  build(g, c->id, c->seq);
  c->sent_ns = now_ns();
  r = ws_engine_send(&c->e, g->opt.kind, g->scratch, g->opt.size, 0);
  if (r != 0) {
    conn_fail(g, c, "ws_engine_send: %s", ws_strerror(r));
    return;
  }
  c->in_flight = 1;
  g->sent++;
}

static void on_message(loadgen *g, conn *c, const ws_event *ev,
                       uint64_t now) {
  long bad;
  if (c->phase != C_OPEN) return; /* an echo overtaken by our close */
  if (!c->in_flight) {
    g->mismatches++;
    diag(g, "connection %u: a message (%zu bytes) nobody sent", c->id,
         ev->len);
    return;
  }
  c->in_flight = 0;
  if (ev->kind != g->opt.kind || ev->len != g->opt.size) {
    g->mismatches++;
    diag(g, "connection %u message %llu: echo is %s of %zu bytes, sent %s "
         "of %zu", c->id, (unsigned long long)c->seq,
         ev->kind == WS_OP_TEXT ? "text" : "binary", ev->len,
         g->opt.kind == WS_OP_TEXT ? "text" : "binary", g->opt.size);
  } else if ((bad = verify(g, c->id, c->seq, ev->data)) >= 0) {
    g->mismatches++;
    diag(g, "connection %u message %llu: echo differs at byte %ld "
         "(0x%02x, expected 0x%02x)", c->id, (unsigned long long)c->seq,
         bad, ev->data[bad], g->scratch[bad]);
  } else if (now >= g->window_start && now < g->window_end) {
    g->echoes++;
    hist_add(&g->hist, now - c->sent_ns);
  }
  if (g->opt.count > 0 && ++c->echoed >= g->opt.count) {
    g->counted++;
    return;
  }
  if (g->sending) send_next(g, c);
}

static void on_event(loadgen *g, conn *c, const ws_event *ev, uint64_t now) {
  switch (ev->type) {
    case WS_EV_MESSAGE:
      on_message(g, c, ev, now);
      break;
    case WS_EV_CLOSE:
      if (c->phase == C_CLOSING && ev->clean && ev->initiator == WS_BY_LOCAL) {
        /* Done. The server should drop TCP first (RFC 6455 7.1.1), but
         * nothing is left to read, so there is no point waiting for it. */
        release(g, c, C_DONE);
        g->finished++;
      } else {
        conn_fail(g, c, "closed: code %d, initiator %s, error %s", ev->code,
                  ev->initiator == WS_BY_LOCAL    ? "local"
                  : ev->initiator == WS_BY_REMOTE ? "remote"
                                                  : "transport",
                  ev->error_name ? ev->error_name : "none");
      }
      break;
    default: /* pings are answered by the engine; pongs are not asked for */
      break;
  }
}

/* Feed bytes to the engine and act on every event they complete. */
static void feed(loadgen *g, conn *c, uint8_t *p, size_t n, uint64_t now) {
  size_t pos = 0;
  while (pos < n && (c->phase == C_OPEN || c->phase == C_CLOSING)) {
    ws_event ev;
    size_t used = ws_engine_recv(&c->e, p + pos, n - pos, &ev);
    pos += used;
    if (ev.type != WS_EV_NONE) on_event(g, c, &ev, now);
    else if (used == 0) break;
  }
  /* A violation in these bytes is pending (ws.h): nothing here answers
   * the messages before it, so fail the connection now. */
  if (c->phase == C_OPEN || c->phase == C_CLOSING) {
    ws_event ev;
    if (ws_engine_fail_pending(&c->e, &ev)) on_event(g, c, &ev, now);
  }
}

static void on_response(loadgen *g, conn *c, uint64_t now) {
  ws_header headers[RESP_HEADERS];
  ws_hs_response resp;
  ws_hs_limits lim;
  int r;
  memset(&resp, 0, sizeof resp);
  resp.headers = headers;
  resp.num_headers = RESP_HEADERS;
  lim.max_bytes = RESP_MAX;
  lim.max_headers = RESP_HEADERS;
  r = ws_hs_parse_response(c->resp, c->resp_len, &resp, c->key, WS_KEY_LEN,
                           NULL, g->opt.deflate ? "permessage-deflate" : NULL,
                           &lim);
  if (r == WS_EINCOMPLETE) {
    if (c->resp_len == RESP_MAX)
      conn_fail(g, c, "handshake response over %d bytes", RESP_MAX);
    return;
  }
  if (r < 0) {
    conn_fail(g, c, "handshake refused: %s (status %d)",
              ws_hs_error_name(resp.error), resp.status);
    return;
  }
  if (g->opt.deflate) {
    const ws_header *h =
        ws_hs_header(resp.headers, resp.num_headers, "sec-websocket-extensions");
    ws_pmd_result pr;
    int z;
    memset(&pr, 0, sizeof pr);
    z = ws_pmd_check_response(h ? h->value.p : NULL, h ? h->value.len : 0,
                              &g->offer, &pr);
    if (z != 1) {
      conn_fail(g, c, "permessage-deflate not agreed (%s)",
                z == 0 ? "no extension in the answer"
                       : ws_pmd_error_name(pr.error));
      return;
    }
    /* Threshold 0: whatever the size, our messages go compressed. */
    z = ws_engine_deflate(&c->e, &pr.params, g->opt.zlevel, 8, 0);
    if (z != 0) {
      conn_fail(g, c, "ws_engine_deflate: %s", ws_strerror(z));
      return;
    }
    g->agreed++;
  }
  c->phase = C_OPEN;
  g->opened++;
  /* Frames the server sent straight after its answer. */
  if ((size_t)r < c->resp_len)
    feed(g, c, (uint8_t *)c->resp + r, c->resp_len - (size_t)r, now);
  if (c->phase == C_OPEN) flush(g, c);
}

static void on_readable(loadgen *g, conn *c) {
  ssize_t r;
  uint64_t now;
  if (c->phase == C_HANDSHAKE)
    r = recv(c->fd, c->resp + c->resp_len, RESP_MAX - c->resp_len, 0);
  else
    r = recv(c->fd, g->rbuf, READ_BUF, 0);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    conn_fail(g, c, "recv: %s", strerror(errno));
    return;
  }
  if (r == 0) {
    ws_event ev;
    if (c->phase == C_HANDSHAKE) {
      conn_fail(g, c, "connection closed during the handshake");
      return;
    }
    if (ws_engine_eof(&c->e, &ev)) on_event(g, c, &ev, now_ns());
    if (c->phase != C_DONE) conn_fail(g, c, "connection closed");
    return;
  }
  now = now_ns();
  if (c->phase == C_HANDSHAKE) {
    c->resp_len += (size_t)r;
    on_response(g, c, now);
    return;
  }
  feed(g, c, g->rbuf, (size_t)r, now);
  if (c->phase == C_OPEN || c->phase == C_CLOSING) flush(g, c);
}

static void on_connected(loadgen *g, conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    conn_fail(g, c, "connect: %s", strerror(err));
    return;
  }
  c->phase = C_HANDSHAKE;
  flush(g, c);
}

static void start_conn(loadgen *g, conn *c) {
  struct epoll_event ev;
  ws_config cfg;
  int one = 1, r;

  ws_config_init(&cfg, WS_ROLE_CLIENT);
  if (ws_engine_init(&c->e, &cfg) != 0 ||
      (r = ws_hs_key(c->key, NULL, NULL)) != 0) {
    conn_fail(g, c, "cannot set up the engine or key");
    return;
  }
  r = ws_hs_build_request(c->req, sizeof c->req, g->host_header,
                          g->opt.path, c->key, NULL, NULL,
                          g->opt.deflate ? g->ext_header : NULL);
  if (r < 0) {
    conn_fail(g, c, "ws_hs_build_request: %s", ws_strerror(r));
    return;
  }
  c->req_len = (size_t)r;

  c->fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 0);
  if (c->fd < 0) {
    conn_fail(g, c, "socket: %s", strerror(errno));
    return;
  }
  /* One small message in flight: Nagle would only add delay. */
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = c->id;
  if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    conn_fail(g, c, "epoll_ctl: %s", strerror(errno));
    return;
  }
  c->out_armed = 1;
  if (connect(c->fd, (struct sockaddr *)&g->addr, g->addrlen) != 0 &&
      errno != EINPROGRESS) {
    conn_fail(g, c, "connect: %s", strerror(errno));
    return;
  }
}

/* Run the event loop until `until` (monotonic ns) or until done(g). */
static void run_until(loadgen *g, uint64_t until, int (*done)(loadgen *)) {
  struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    uint64_t now = now_ns();
    int n, i, ms;
    if (done != NULL && done(g)) return;
    if (now >= until) return;
    ms = (int)((until - now + 999999) / 1000000);
    if (ms > 1000) ms = 1000;
    n = epoll_wait(g->ep, evs, MAX_EVENTS, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("loadgen: epoll_wait");
      exit(2);
    }
    for (i = 0; i < n; i++) {
      conn *c = &g->c[evs[i].data.u32];
      uint32_t e = evs[i].events;
      if (c->fd < 0) continue; /* released earlier in this batch */
      if (c->phase == C_CONNECTING) {
        on_connected(g, c);
        continue;
      }
      if ((e & EPOLLOUT) && flush(g, c) < 0) continue;
      if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(g, c);
    }
  }
}

static int all_open(loadgen *g) {
  return g->opened + g->finished >= g->opt.conns;
}

static int all_finished(loadgen *g) { return g->finished >= g->opt.conns; }

static int all_counted(loadgen *g) {
  return g->counted + g->finished >= g->opt.conns;
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) {
  (void)sig;
  got_usr1 = 1;
}
static int usr1(loadgen *g) {
  (void)g;
  return got_usr1;
}

/* --------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen -p port [-H host] [-P path] [-c conns] [-s size]\n"
          "               [-d secs] [-w secs] [-t binary|text] [-m | -M]\n"
          "               [-f pattern|random|json] [-z [-Z] [-l level]]\n"
          "               [-n msgs [-h secs]]\n"
          "  -H host   server address (default 127.0.0.1)\n"
          "  -p port   server port (required)\n"
          "  -P path   request target (default /)\n"
          "  -c n      connections, each with one message in flight "
          "(default 1)\n"
          "  -s bytes  message size (default 16)\n"
          "  -d secs   measured duration (default 5)\n"
          "  -w secs   warm-up before measuring (default 1)\n"
          "  -t kind   binary (default) or text\n"
          "  -m        compare every echoed byte (default)\n"
          "  -M        compare only the stamps, length and type\n"
          "  -f fill   payload: pattern (default), random or json\n"
          "  -z        offer permessage-deflate and require it\n"
          "  -Z        with -z: also offer no context takeover both ways\n"
          "  -l level  with -z: our zlib level, -1..9 (default 1)\n"
          "  -n msgs   messages per connection, then hold (see -h)\n"
          "  -h secs   with -n: hold at most this long, or until SIGUSR1 "
          "(default 60)\n");
  exit(2);
}

static double parse_num(const char *s, double lo, double hi) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
    usage();
  return v;
}

static void parse_options(options *o, int argc, char **argv) {
  int ch;
  o->host = "127.0.0.1";
  o->port = NULL;
  o->path = "/";
  o->conns = 1;
  o->size = 16;
  o->duration = 5;
  o->warmup = 1;
  o->kind = WS_OP_BINARY;
  o->check_all = 1;
  o->fill = F_PATTERN;
  o->deflate = 0;
  o->no_context_takeover = 0;
  o->zlevel = 1;
  o->count = 0;
  o->hold = 60;
  while ((ch = getopt(argc, argv, "H:p:P:c:s:d:w:t:mMf:zZl:n:h:")) != -1) {
    switch (ch) {
      case 'H': o->host = optarg; break;
      case 'p': o->port = optarg; break;
      case 'P': o->path = optarg; break;
      case 'c': o->conns = (long)parse_num(optarg, 1, MAX_CONNS); break;
      case 's': o->size = (size_t)parse_num(optarg, 1, MAX_SIZE); break;
      case 'd': o->duration = parse_num(optarg, 0.01, 3600); break;
      case 'w': o->warmup = parse_num(optarg, 0, 3600); break;
      case 't':
        if (strcmp(optarg, "binary") == 0) o->kind = WS_OP_BINARY;
        else if (strcmp(optarg, "text") == 0) o->kind = WS_OP_TEXT;
        else usage();
        break;
      case 'm': o->check_all = 1; break;
      case 'M': o->check_all = 0; break;
      case 'f':
        if (strcmp(optarg, "pattern") == 0) o->fill = F_PATTERN;
        else if (strcmp(optarg, "random") == 0) o->fill = F_RANDOM;
        else if (strcmp(optarg, "json") == 0) o->fill = F_JSON;
        else usage();
        break;
      case 'z': o->deflate = 1; break;
      case 'Z': o->no_context_takeover = 1; break;
      case 'l': o->zlevel = (int)parse_num(optarg, -1, 9); break;
      case 'n': o->count = (long)parse_num(optarg, 1, 1e9); break;
      case 'h': o->hold = parse_num(optarg, 0, 3600); break;
      default: usage();
    }
  }
  if (optind != argc || o->port == NULL) usage();
  if (o->no_context_takeover && !o->deflate) usage();
}

static void resolve(loadgen *g) {
  struct addrinfo hints, *res;
  int r;
  const char *h = g->opt.host;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r = getaddrinfo(h, g->opt.port, &hints, &res);
  if (r != 0) {
    fprintf(stderr, "loadgen: %s:%s: %s\n", h, g->opt.port, gai_strerror(r));
    exit(2);
  }
  memcpy(&g->addr, res->ai_addr, res->ai_addrlen);
  g->addrlen = res->ai_addrlen;
  freeaddrinfo(res);
  snprintf(g->host_header, sizeof g->host_header,
           strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, g->opt.port);
}

int main(int argc, char **argv) {
  loadgen *g = xcalloc(1, sizeof *g);
  uint64_t t;
  long i;
  double secs, rate, mbs;
  uint64_t errors;
  int failed, r;
  struct rusage ru;
  double cpu;

  parse_options(&g->opt, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  resolve(g);
  g->c = xcalloc((size_t)g->opt.conns, sizeof *g->c);
  g->base = xcalloc(g->opt.size, 1);
  g->scratch = xcalloc(g->opt.size, 1);
  g->rbuf = xcalloc(READ_BUF, 1);
  fill_base(g->base, g->opt.size, g->opt.kind == WS_OP_TEXT);
  memcpy(g->scratch, g->base, g->opt.size);
  if (g->opt.fill != F_PATTERN) {
    g->pool_len = POOL_SIZE + g->opt.size;
    g->pool = xcalloc(g->pool_len, 1);
    if (g->opt.fill == F_JSON) fill_json(g->pool, g->pool_len);
    else fill_base(g->pool, g->pool_len, g->opt.kind == WS_OP_TEXT);
  }
  if (g->opt.deflate) {
    int n;
    memset(&g->offer, 0, sizeof g->offer);
    g->offer.client_max_window_bits = 0; /* offered without a value */
    g->offer.server_no_context_takeover = g->opt.no_context_takeover;
    g->offer.client_no_context_takeover = g->opt.no_context_takeover;
    n = snprintf(g->ext_header, sizeof g->ext_header,
                 "Sec-WebSocket-Extensions: ");
    r = ws_pmd_offer(g->ext_header + n, sizeof g->ext_header - (size_t)n - 3,
                     &g->offer);
    if (r < 0) {
      fprintf(stderr, "loadgen: ws_pmd_offer: %s\n", ws_strerror(r));
      return 2;
    }
    memcpy(g->ext_header + n + r, "\r\n", 3);
  }
  if (g->opt.count > 0) signal(SIGUSR1, on_usr1);
  g->ep = epoll_create1(EPOLL_CLOEXEC);
  if (g->ep < 0) {
    perror("loadgen: epoll_create1");
    return 2;
  }

  /* Open everything before any traffic, so the warm-up starts from the
   * full load. */
  for (i = 0; i < g->opt.conns; i++) {
    g->c[i].fd = -1;
    g->c[i].id = (unsigned)i;
    g->c[i].phase = C_CONNECTING;
  }
  for (i = 0; i < g->opt.conns; i++) start_conn(g, &g->c[i]);
  run_until(g, now_ns() + (uint64_t)(CONNECT_SECS * 1e9), all_open);
  for (i = 0; i < g->opt.conns; i++)
    if (g->c[i].phase == C_CONNECTING || g->c[i].phase == C_HANDSHAKE)
      conn_fail(g, &g->c[i], "not open after %.0f s", CONNECT_SECS);

  if (g->conn_errors == 0) {
    t = now_ns();
    g->window_start = t + (uint64_t)(g->opt.warmup * 1e9);
    g->window_end = g->window_start + (uint64_t)(g->opt.duration * 1e9);
    g->sending = 1;
    for (i = 0; i < g->opt.conns; i++) {
      conn *c = &g->c[i];
      if (c->phase != C_OPEN) continue;
      send_next(g, c);
      if (c->phase == C_OPEN) flush(g, c);
    }
    run_until(g, g->window_end, g->opt.count > 0 ? all_counted : NULL);
    g->sending = 0;
    if (g->opt.count > 0) {
      printf("HOLD %ld\n", g->counted);
      fflush(stdout);
      run_until(g, now_ns() + (uint64_t)(g->opt.hold * 1e9), usr1);
    }
  }

  for (i = 0; i < g->opt.conns; i++) {
    conn *c = &g->c[i];
    if (c->phase != C_OPEN) continue;
    if ((r = ws_engine_close(&c->e, WS_CLOSE_normal, NULL, 0)) != 0) {
      conn_fail(g, c, "ws_engine_close: %s", ws_strerror(r));
      continue;
    }
    c->phase = C_CLOSING;
    flush(g, c);
  }
  run_until(g, now_ns() + (uint64_t)(CLOSE_SECS * 1e9), all_finished);
  for (i = 0; i < g->opt.conns; i++)
    if (g->c[i].phase == C_CLOSING)
      conn_fail(g, &g->c[i], "no close reply within %.0f s", CLOSE_SECS);

  /* Our own CPU time, so a caller can tell whether the load generator
   * rather than the server was the bottleneck. */
  getrusage(RUSAGE_SELF, &ru);
  cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  secs = g->opt.duration;
  rate = (double)g->echoes / secs;
  mbs = rate * (double)g->opt.size / 1e6;
  errors = g->mismatches + g->conn_errors + g->close_errors;
  printf("loadgen: %ld conns x %zu B %s, %.2f s: %llu echoes, %.1f/s "
         "(%.2f MB/s each way); latency us p50 %.0f p90 %.0f p99 %.0f "
         "max %.0f; mismatches %llu, connection errors %llu, close errors "
         "%llu\n",
         g->opt.conns, g->opt.size,
         g->opt.kind == WS_OP_TEXT ? "text" : "binary", secs,
         (unsigned long long)g->echoes, rate, mbs,
         hist_quantile(&g->hist, 0.50) / 1e3,
         hist_quantile(&g->hist, 0.90) / 1e3,
         hist_quantile(&g->hist, 0.99) / 1e3, (double)g->hist.max / 1e3,
         (unsigned long long)g->mismatches,
         (unsigned long long)g->conn_errors,
         (unsigned long long)g->close_errors);
  printf("RESULT conns=%ld size=%zu echoes=%llu secs=%.2f rate=%.1f "
         "p50_us=%.0f p99_us=%.0f errors=%llu p90_us=%.0f max_us=%.0f "
         "mismatches=%llu conn_errors=%llu close_errors=%llu cpu_s=%.2f "
         "deflate=%d tx_raw=%llu tx_wire=%llu rx_wire=%llu rx_raw=%llu\n",
         g->opt.conns, g->opt.size, (unsigned long long)g->echoes, secs, rate,
         hist_quantile(&g->hist, 0.50) / 1e3,
         hist_quantile(&g->hist, 0.99) / 1e3, (unsigned long long)errors,
         hist_quantile(&g->hist, 0.90) / 1e3, (double)g->hist.max / 1e3,
         (unsigned long long)g->mismatches,
         (unsigned long long)g->conn_errors,
         (unsigned long long)g->close_errors, cpu, g->opt.deflate,
         (unsigned long long)g->z.tx_raw, (unsigned long long)g->z.tx_wire,
         (unsigned long long)g->z.rx_wire, (unsigned long long)g->z.rx_raw);
  fflush(stdout);

  failed = errors > 0 || g->echoes == 0;
  if (g->echoes == 0) fprintf(stderr, "loadgen: nothing was echoed\n");
  for (i = 0; i < g->opt.conns; i++) release(g, &g->c[i], g->c[i].phase);
  close(g->ep);
  free(g->c);
  free(g->base);
  free(g->pool);
  free(g->scratch);
  free(g->rbuf);
  free(g);
  return failed ? 1 : 0;
}

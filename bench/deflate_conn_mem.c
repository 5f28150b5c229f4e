/*
 * deflate_conn_mem: the heap one server engine holds with
 * permessage-deflate at ws.listen's defaults (windows 12, mem_level 5,
 * level 6, threshold 128) after it has received one compressed text
 * message and sent it back compressed, counted through the engine's
 * allocator (ws_config.alloc), which the engine and its zlib streams
 * share. RSS (bench/deflate_bench.sh, part 2) counts only the pages
 * touched so far; this counts every byte the connection keeps between
 * messages, which a long-running server's heap ends up backing.
 *
 *   deflate_conn_mem [size [nct]]   (size default 1024; nct: no context
 *                                    takeover either way)
 *
 * Prints every allocation still live at the end (size, and in which step
 * it was made) and "RESULT size=... live_bytes=... zlib_bytes=...". The
 * payload is JSON-like text. Both engines run in memory, no sockets.
 * Build: cc -O2 -Icsrc/core bench/deflate_conn_mem.c $(CORE_SRC) -lz -lcrypto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define MAX_BLOCKS 256

typedef struct {
  void *p[MAX_BLOCKS];
  size_t size[MAX_BLOCKS];
  const char *step[MAX_BLOCKS];
  int n;
  long live;
  const char *now; /* the step being run */
} tracker;

static int find(tracker *t, void *p) {
  int i;
  for (i = 0; i < t->n; i++)
    if (t->p[i] == p) return i;
  return -1;
}

static void *track_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  tracker *t = ud;
  void *q;
  int i = p ? find(t, p) : -1;
  if (p) t->live -= (long)osize;
  if (nsize == 0) {
    free(p);
    if (i >= 0) {
      t->n--;
      t->p[i] = t->p[t->n];
      t->size[i] = t->size[t->n];
      t->step[i] = t->step[t->n];
    }
    return NULL;
  }
  q = realloc(p, nsize);
  if (q == NULL) return NULL;
  t->live += (long)nsize;
  if (i < 0) {
    if (t->n == MAX_BLOCKS) {
      fprintf(stderr, "deflate_conn_mem: too many blocks\n");
      exit(2);
    }
    i = t->n++;
  }
  t->p[i] = q;
  t->size[i] = nsize;
  t->step[i] = t->now;
  return q;
}

/* Move everything `from` has queued into `to`; the first event. Returns
 * the bytes fed, for the caller to free once done with the event (whose
 * data may point into them). */
static uint8_t *pump(ws_engine *from, ws_engine *to, ws_event *ev) {
  size_t n, pos = 0;
  const uint8_t *o = ws_engine_output(from, &n);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) exit(2);
  memcpy(buf, o, n);
  ws_engine_output_consume(from, n);
  memset(ev, 0, sizeof *ev);
  while (pos < n) {
    pos += ws_engine_recv(to, buf + pos, n - pos, ev);
    if (ev->type != WS_EV_NONE) break;
  }
  return buf;
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? (size_t)atol(argv[1]) : 1024, i, k = 0;
  int nct = argc > 2 && strcmp(argv[2], "nct") == 0;
  tracker st, ct;
  ws_config scfg, ccfg;
  ws_engine s, c;
  ws_pmd_params p;
  ws_event ev;
  uint8_t *msg = malloc(size ? size : 1), *copy, *wire;
  long zlib = 0;
  int j;

  if (msg == NULL || size == 0) return 2;
  for (i = 0; i < size; i++) { /* {"id":1000,"qty":17,"ok":true}, ... */
    static char rec[64];
    if (k == 0 || rec[k] == '\0') {
      snprintf(rec, sizeof rec, "{\"id\":%zu,\"qty\":%zu,\"ok\":%s},",
               1000 + i, i * 7919 % 97, i % 3 ? "true" : "false");
      k = 0;
    }
    msg[i] = (uint8_t)rec[k++];
  }
  memset(&st, 0, sizeof st);
  memset(&ct, 0, sizeof ct);
  p.server_no_context_takeover = p.client_no_context_takeover = nct;
  p.server_max_window_bits = p.client_max_window_bits = 12;
  ws_config_init(&scfg, WS_ROLE_SERVER);
  scfg.alloc = track_alloc;
  scfg.alloc_ud = &st;
  ws_config_init(&ccfg, WS_ROLE_CLIENT);
  ccfg.alloc = track_alloc;
  ccfg.alloc_ud = &ct;
  st.now = "init";
  if (ws_engine_init(&s, &scfg) != 0 || ws_engine_init(&c, &ccfg) != 0 ||
      ws_engine_deflate(&s, &p, 6, 5, 128) != 0 ||
      ws_engine_deflate(&c, &p, 6, 8, 0) != 0)
    return 2;
  if (ws_engine_send(&c, WS_OP_TEXT, msg, size, 0) != 0) return 1;
  st.now = "receive";
  wire = pump(&c, &s, &ev);
  if (ev.type != WS_EV_MESSAGE || ev.len != size) return 1;
  copy = malloc(size);
  if (copy == NULL) return 2;
  memcpy(copy, ev.data, size);
  free(wire);
  st.now = "send";
  if (ws_engine_send(&s, WS_OP_TEXT, copy, size, 0) != 0) return 1;
  st.now = "flush";
  wire = pump(&s, &c, &ev);
  if (ev.type != WS_EV_MESSAGE || ev.len != size ||
      memcmp(ev.data, msg, size) != 0)
    return 1;
  free(wire);
  printf("server engine after one %zu-byte text message each way%s:\n",
         size, nct ? " (no context takeover)" : "");
  for (j = 0; j < st.n; j++) {
    printf("  %8zu bytes  made in %s\n", st.size[j], st.step[j]);
    /* zlib's own blocks come in through the same allocator; the engine's
     * message and output buffers are the powers of two from 16 KiB. */
    if (st.size[j] < 16384 || (st.size[j] & (st.size[j] - 1)) != 0)
      zlib += (long)st.size[j];
  }
  printf("RESULT size=%zu nct=%d live_bytes=%ld zlib_and_small_bytes=%ld "
         "buffers_bytes=%ld\n", size, nct, st.live, zlib, st.live - zlib);
  ws_engine_free(&s);
  ws_engine_free(&c);
  free(msg);
  free(copy);
  return 0;
}

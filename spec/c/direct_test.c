/*
 * ws_engine_send_direct / ws_engine_sent_direct: a server's message
 * written by the caller straight from its own memory. For every split of
 * the frame between "the transport took it" and "queued", the output must
 * hold exactly the frame's untaken suffix, the stream positions must count
 * the whole frame, and the bytes taken plus the output must be the frame
 * ws_engine_send makes. Also the cases that must fall back (client, output
 * not empty, compression) and the errors send has.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"
#include "check.h"


static void server(ws_engine *e) {
  ws_config cfg;
  ws_config_init(&cfg, WS_ROLE_SERVER);
  if (ws_engine_init(e, &cfg) != 0) {
    fprintf(stderr, "ws_engine_init failed\n");
    exit(1);
  }
}

/* The frame ws_engine_send makes for data: into ref (cap bytes), its size
 * returned. */
static size_t reference(ws_opcode kind, const uint8_t *data, size_t len,
                        uint8_t *ref, size_t cap) {
  ws_engine e;
  const uint8_t *out;
  size_t n;
  server(&e);
  if (ws_engine_send(&e, kind, data, len, 0) != 0) return 0;
  out = ws_engine_output(&e, &n);
  if (n > cap) n = 0;
  else memcpy(ref, out, n);
  ws_engine_free(&e);
  return n;
}

static void test_splits(size_t len) {
  static uint8_t data[70000], ref[70100], got[70100];
  size_t i, total, hlen, w;
  char what[160];
  for (i = 0; i < len; i++) data[i] = (uint8_t)(i * 7 + 3);
  total = reference(WS_OP_BINARY, data, len, ref, sizeof ref);
  for (w = 0; w <= total; w += (w < 20 || total - w < 20) ? 1 : 997) {
    ws_engine e;
    uint8_t hdr[WS_FRAME_MAX_HEADER];
    const uint8_t *out;
    size_t n;
    int ok;
    server(&e);
    ok = ws_engine_send_direct(&e, WS_OP_BINARY, data, len, hdr, &hlen) == 0;
    snprintf(what, sizeof what, "len %zu written %zu: direct", len, w);
    check(ok && hlen + len == total, what);
    if (!ok) {
      ws_engine_free(&e);
      continue;
    }
    /* what the transport took, then what the engine kept */
    memcpy(got, hdr, hlen);
    memcpy(got + hlen, data, len);
    ws_engine_sent_direct(&e, hdr, hlen, data, len, w);
    out = ws_engine_output(&e, &n);
    snprintf(what, sizeof what, "len %zu written %zu: output is the rest",
             len, w);
    check(n == total - w && memcmp(out, ref + w, n) == 0 &&
              memcmp(got, ref, total) == 0,
          what);
    snprintf(what, sizeof what, "len %zu written %zu: positions", len, w);
    check(ws_engine_queued(&e) == total && ws_engine_written(&e) == w, what);
    ws_engine_free(&e);
  }
}

static void test_fallbacks(void) {
  ws_engine e;
  ws_config cfg;
  uint8_t hdr[WS_FRAME_MAX_HEADER];
  size_t hlen = 0;
  /* a client masks every frame: through ws_engine_send */
  ws_config_init(&cfg, WS_ROLE_CLIENT);
  ws_engine_init(&e, &cfg);
  check(ws_engine_send_direct(&e, WS_OP_TEXT, (const uint8_t *)"hi", 2, hdr,
                              &hlen) == 1,
        "client falls back");
  ws_engine_free(&e);
  /* something waits in the output: the message goes behind it */
  server(&e);
  ws_engine_send(&e, WS_OP_TEXT, (const uint8_t *)"a", 1, 0);
  check(ws_engine_send_direct(&e, WS_OP_TEXT, (const uint8_t *)"hi", 2, hdr,
                              &hlen) == 1,
        "output not empty falls back");
  ws_engine_free(&e);
  /* the errors of send, before anything else */
  server(&e);
  check(ws_engine_send_direct(&e, WS_OP_TEXT, (const uint8_t *)"\xff", 1,
                              hdr, &hlen) == WS_EUTF8,
        "bad UTF-8");
  check(ws_engine_send_direct(&e, WS_OP_PING, (const uint8_t *)"x", 1, hdr,
                              &hlen) == WS_EINVALID,
        "not a data kind");
  check(ws_engine_send_part(&e, WS_OP_TEXT, (const uint8_t *)"a", 1, 0) == 0,
        "a part opens a message");
  ws_engine_output_consume(&e, 3);
  check(ws_engine_send_direct(&e, WS_OP_TEXT, (const uint8_t *)"b", 1, hdr,
                              &hlen) == WS_EFRAGMENT,
        "a message in parts is open");
  ws_engine_free(&e);
  server(&e);
  ws_engine_close(&e, 1000, NULL, 0);
  ws_engine_output_consume(&e, 4);
  check(ws_engine_send_direct(&e, WS_OP_TEXT, (const uint8_t *)"b", 1, hdr,
                              &hlen) == WS_ESTATE,
        "after our close");
  ws_engine_free(&e);
}

int main(void) {
  test_splits(0);
  test_splits(5);
  test_splits(125);
  test_splits(126);
  test_splits(65535);
  test_splits(65536);
  test_splits(70000);
  test_fallbacks();
  printf("direct_test: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}

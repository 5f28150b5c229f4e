/*
 * libFuzzer target for the client side of the opening handshake:
 * ws_hs_parse_response on arbitrary bytes for a fixed key, offering two
 * subprotocols and one extension, with the default limits and tiny ones.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/core \
 *     fuzz/fuzz_hs_response.c csrc/core/ws_handshake.c -lcrypto -o fuzz_hs_response
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                  \
      abort();                                                         \
    }                                                                  \
  } while (0)

#define CAPACITY 70
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define PROTOCOLS "chat, superchat"
#define EXTENSIONS "permessage-deflate; client_max_window_bits"

static void check_span(ws_span s, const char *buf, size_t n) {
  uintptr_t lo = (uintptr_t)buf, p = (uintptr_t)s.p;
  if (s.p == NULL) {
    CHECK(s.len == 0);
    return;
  }
  CHECK(p >= lo && p - lo <= n && s.len <= n - (p - lo));
}

static void check_response(const ws_hs_response *resp, const char *buf,
                           size_t n) {
  size_t i;
  check_span(resp->reason, buf, n);
  check_span(resp->protocol, buf, n);
  for (i = 0; i < resp->num_headers; i++) {
    check_span(resp->headers[i].name, buf, n);
    check_span(resp->headers[i].value, buf, n);
    CHECK(resp->headers[i].name.len > 0);
  }
}

static int parse(const char *buf, size_t size, ws_hs_response *resp,
                 const ws_hs_limits *lim) {
  return ws_hs_parse_response(buf, size, resp, KEY, sizeof KEY - 1,
                              PROTOCOLS, EXTENSIONS, lim);
}

/* Whatever subprotocol was accepted, the server side can say the same. */
static void rebuild(const ws_hs_response *resp) {
  char proto[64], out[512];
  ws_header h[8];
  ws_hs_response again;
  int n;
  CHECK(resp->protocol.len < sizeof proto);
  memcpy(proto, resp->protocol.p ? resp->protocol.p : "",
         resp->protocol.len);
  proto[resp->protocol.len] = '\0';
  n = ws_hs_build_response(out, sizeof out, KEY, sizeof KEY - 1, proto, NULL);
  CHECK(n > 0);
  again.headers = h;
  again.num_headers = 8;
  CHECK(parse(out, (size_t)n, &again, NULL) == n);
  CHECK(again.protocol.len == resp->protocol.len);
}

static void run(const char *buf, size_t size, const ws_hs_limits *lim,
                size_t capacity) {
  ws_header h[CAPACITY];
  ws_hs_response resp;
  int rc;
  resp.headers = h;
  resp.num_headers = capacity;
  rc = parse(buf, size, &resp, lim);
  if (rc == WS_EINCOMPLETE) {
    CHECK(resp.num_headers == capacity);
    return;
  }
  if (rc == WS_EHANDSHAKE) {
    CHECK(resp.error > WS_HS_NONE && resp.error < WS_HS__COUNT);
    CHECK(resp.num_headers <= capacity);
    CHECK(resp.error != WS_HS_STATUS || resp.status != 101);
    check_response(&resp, buf, size);
    return;
  }
  CHECK(rc > 0 && (size_t)rc <= size);
  CHECK(rc >= 4 && memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
  CHECK(resp.status == 101 && resp.error == WS_HS_NONE);
  CHECK(resp.num_headers <= capacity);
  check_response(&resp, buf, (size_t)rc);
  CHECK(resp.protocol.len == 0 ||
        (resp.protocol.len == 4 && memcmp(resp.protocol.p, "chat", 4) == 0) ||
        (resp.protocol.len == 9 &&
         memcmp(resp.protocol.p, "superchat", 9) == 0));
  rebuild(&resp);

  resp.num_headers = capacity;
  CHECK(parse(buf, (size_t)rc, &resp, lim) == rc);
  resp.num_headers = capacity;
  CHECK(parse(buf, (size_t)rc - 1, &resp, lim) == WS_EINCOMPLETE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const ws_hs_limits tiny = {64, 2};
  const char *buf = (const char *)data;
  run(buf, size, NULL, CAPACITY);
  run(buf, size, &tiny, CAPACITY);
  run(buf, size, NULL, 3);
  return 0;
}

/*
 * libFuzzer target for the server side of the opening handshake:
 * ws_hs_parse_request on arbitrary bytes, with the default limits and with
 * tiny ones, checking that every result stays inside the input and that an
 * accepted request can be answered.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/core \
 *     fuzz/fuzz_hs_request.c csrc/core/ws_handshake.c -lcrypto -o fuzz_hs_request
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

/* Not assert(): the checks must survive -DNDEBUG. */
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                  \
      abort();                                                         \
    }                                                                  \
  } while (0)

#define CAPACITY 70

/* s lies inside the first n bytes of buf (or is the empty NULL span). */
static void check_span(ws_span s, const char *buf, size_t n) {
  uintptr_t lo = (uintptr_t)buf, p = (uintptr_t)s.p;
  if (s.p == NULL) {
    CHECK(s.len == 0);
    return;
  }
  CHECK(p >= lo && p - lo <= n && s.len <= n - (p - lo));
}

static void check_request(const ws_hs_request *req, const char *buf,
                          size_t n) {
  size_t i;
  check_span(req->method, buf, n);
  check_span(req->target, buf, n);
  check_span(req->host, buf, n);
  check_span(req->key, buf, n);
  check_span(req->origin, buf, n);
  for (i = 0; i < req->num_headers; i++) {
    check_span(req->headers[i].name, buf, n);
    check_span(req->headers[i].value, buf, n);
    CHECK(req->headers[i].name.len > 0);
  }
}

/* An accepted request must be answerable, and the answer must satisfy our
 * own client. */
static void answer(const ws_hs_request *req) {
  char out[512];
  ws_header h[8];
  ws_hs_response resp;
  int n = ws_hs_build_response(out, sizeof out, req->key.p, req->key.len,
                               "chat", NULL);
  CHECK(n > 0 && (size_t)n < sizeof out);
  resp.headers = h;
  resp.num_headers = 8;
  CHECK(ws_hs_parse_response(out, (size_t)n, &resp, req->key.p,
                             req->key.len, "chat", NULL, NULL) == n);
  CHECK(resp.protocol.len == 4 && memcmp(resp.protocol.p, "chat", 4) == 0);
}

static void run(const char *buf, size_t size, const ws_hs_limits *lim,
                size_t capacity) {
  ws_header h[CAPACITY];
  ws_hs_request req;
  int rc;
  req.headers = h;
  req.num_headers = capacity;
  rc = ws_hs_parse_request(buf, size, &req, lim);
  if (rc == WS_EINCOMPLETE) {
    CHECK(req.num_headers == capacity);
    return;
  }
  if (rc == WS_EHANDSHAKE) {
    CHECK(req.error > WS_HS_NONE && req.error < WS_HS__COUNT);
    CHECK(req.num_headers <= capacity);
    check_request(&req, buf, size);
    return;
  }
  CHECK(rc > 0);
  CHECK((size_t)rc <= size);
  CHECK(rc >= 4 && memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
  CHECK(req.error == WS_HS_NONE);
  CHECK(req.num_headers <= capacity);
  check_request(&req, buf, (size_t)rc);
  CHECK(req.method.len == 3 && memcmp(req.method.p, "GET", 3) == 0);
  CHECK(req.version == 13 && req.key.len == WS_KEY_LEN && req.host.len > 0);
  answer(&req);

  /* The head delimits itself: the same bytes alone parse the same, and
   * one byte fewer is incomplete. */
  req.num_headers = capacity;
  CHECK(ws_hs_parse_request(buf, (size_t)rc, &req, lim) == rc);
  req.num_headers = capacity;
  CHECK(ws_hs_parse_request(buf, (size_t)rc - 1, &req, lim) ==
        WS_EINCOMPLETE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const ws_hs_limits tiny = {64, 2};
  const char *buf = (const char *)data;
  run(buf, size, NULL, CAPACITY);
  run(buf, size, &tiny, CAPACITY);
  /* A caller's array smaller than the limit caps the count. */
  run(buf, size, NULL, 3);
  return 0;
}

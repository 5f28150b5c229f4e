/*
 * Over-read check for every parser entry point: each input, and every
 * prefix of it, is placed so that its last byte is the last byte of a
 * readable page and the next page is PROT_NONE. Reading one byte too far
 * crashes the test instead of going unnoticed (ASan cannot see reads that
 * stay inside a larger heap buffer; this can).
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ws.h"

static uint8_t *region;
static size_t page;
static int passed, failed;

/* Copy n bytes so they end right at the guard page. */
static uint8_t *at_guard(const void *src, size_t n) {
  uint8_t *p = region + page - n;
  memcpy(p, src, n);
  return p;
}

static void check(int ok, const char *what, size_t n) {
  if (ok) {
    passed++;
  } else {
    failed++;
    fprintf(stderr, "FAIL: %s (length %zu)\n", what, n);
  }
}

static void engine_all(const uint8_t *in, size_t n, ws_role role) {
  ws_engine e;
  ws_config cfg;
  ws_event ev;
  size_t pos = 0, guard = 0;
  ws_config_init(&cfg, role);
  ws_engine_init(&e, &cfg);
  while (pos < n && guard++ < n + 8) {
    uint8_t *p = at_guard(in + pos, n - pos);
    pos += ws_engine_recv(&e, p, n - pos, &ev);
  }
  /* A violation found above is acted on by the next call, which reads
   * nothing (len 0, placed at the guard). */
  ws_engine_recv(&e, at_guard(in, 0), 0, &ev);
  ws_engine_eof(&e, &ev);
  ws_engine_free(&e);
  check(pos == n, role == WS_ROLE_SERVER ? "server engine consumes its input"
                                         : "client engine consumes its input",
        n);
}

static const char request[] =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static const char response[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n\r\n";

int main(void) {
  static const uint8_t frames[] = {
      /* masked "Hello" (RFC 6455 5.7), masked ping, a fragmented text
       * message, a masked close 1000 */
      0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
      0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
      0x01, 0x83, 0, 0, 0, 0, 'H', 'e', 'l',
      0x80, 0x82, 0, 0, 0, 0, 'l', 'o',
      0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2};
  static const uint8_t cframes[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o',
                                    0x82, 0x7e, 0x00, 0x03, 1, 2, 3,
                                    0x88, 0x02, 0x03, 0xe8};
  /* a message, then a reserved opcode (a violation, pending until the
   * next call), then bytes that must be ignored */
  static const uint8_t cbad[] = {0x81, 0x02, 'h', 'i', 0x83, 0x00,
                                 0x81, 0x02, 'h', 'i'};
  static const uint8_t text[] =
      "ASCII then \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 and more ASCII text";
  /* every prefix ends somewhere else: inside a name, a quoted value, an
   * escape, whitespace */
  static const char extensions[] =
      "x-foo; a=b, permessage-deflate ; client_max_window_bits=\"1\\2\"\t; "
      "server_no_context_takeover";
  size_t n;

  page = (size_t)sysconf(_SC_PAGESIZE);
  region = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED || mprotect(region + page, page, PROT_NONE)) {
    perror("mmap");
    return 2;
  }

  for (n = 0; n <= sizeof frames; n++) {
    ws_frame_header h;
    int r = ws_frame_decode(at_guard(frames, n), n, &h);
    check(r == WS_EINCOMPLETE || (r >= 2 && (size_t)r <= n),
          "frame header decode stays in bounds", n);
    engine_all(frames, n, WS_ROLE_SERVER);
  }
  for (n = 0; n <= sizeof cframes; n++) engine_all(cframes, n, WS_ROLE_CLIENT);
  for (n = 0; n <= sizeof cbad; n++) engine_all(cbad, n, WS_ROLE_CLIENT);

  for (n = 0; n < sizeof text; n++) {
    ws_utf8_state st = WS_UTF8_ACCEPT;
    int r = ws_utf8_validate(&st, at_guard(text, n), n, NULL);
    check(r == 0, "UTF-8 prefix validates", n);
  }
  for (n = 0; n < 64; n++) {
    uint8_t buf[64];
    memset(buf, 'a', sizeof buf);
    ws_mask(at_guard(buf, n), n, (const uint8_t *)"\1\2\3\4", (unsigned)n);
    check(1, "mask stays in bounds", n);
  }
  for (n = 0; n <= 4; n++) {
    int code;
    const uint8_t *reason;
    size_t rlen;
    int r = ws_close_parse(at_guard("\x03\xe8ok", n), n, &code, &reason,
                           &rlen);
    check(n == 1 ? r == WS_EINVALID : r == 0, "close payload parse", n);
  }
  for (n = 0; n <= sizeof request - 1; n++) {
    ws_header hs[16];
    ws_hs_request req;
    int r;
    memset(&req, 0, sizeof req);
    req.headers = hs;
    req.num_headers = 16;
    r = ws_hs_parse_request((const char *)at_guard(request, n), n, &req,
                            NULL);
    check(n == sizeof request - 1 ? r == (int)n : r == WS_EINCOMPLETE,
          "request parse: incomplete until the blank line", n);
  }
  for (n = 0; n <= sizeof response - 1; n++) {
    ws_header hs[16];
    ws_hs_response resp;
    int r;
    memset(&resp, 0, sizeof resp);
    resp.headers = hs;
    resp.num_headers = 16;
    r = ws_hs_parse_response((const char *)at_guard(response, n), n, &resp,
                             "dGhlIHNhbXBsZSBub25jZQ==", 24, "chat", NULL,
                             NULL);
    check(n == sizeof response - 1 ? r == (int)n : r == WS_EINCOMPLETE,
          "response parse: incomplete until the blank line", n);
  }

  for (n = 0; n <= sizeof extensions - 1; n++) {
    static const ws_pmd_config server = {0, 0, 0, 10, 0}, client = {0, 0, 0, 0, 0};
    const char *h = (const char *)at_guard(extensions, n);
    char out[WS_PMD_MAX_TEXT];
    ws_pmd_result res;
    int r = ws_pmd_accept(h, n, &server, &res, out, sizeof out);
    check(r >= 0 || r == WS_EEXTENSION, "permessage-deflate accept", n);
    r = ws_pmd_check_response(h, n, &client, &res);
    check(r == 0 || r == 1 || r == WS_EEXTENSION,
          "permessage-deflate response check", n);
  }

  printf("guard: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}

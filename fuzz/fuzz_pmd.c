/*
 * libFuzzer target for permessage-deflate negotiation: arbitrary bytes as
 * a Sec-WebSocket-Extensions value, given to the server's ws_pmd_accept
 * (under several configs) and to the client's ws_pmd_check_response
 * (under several offers). Checks that results stay in range and, as a
 * differential check, that every response the server builds is accepted
 * by the client that made the accepted offer, with the same parameters.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc/core \
 *     fuzz/fuzz_pmd.c csrc/core/ws_pmd.c csrc/core/ws_error.c -o fuzz_pmd
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

static void check_params(const ws_pmd_params *p) {
  CHECK(p->server_no_context_takeover == 0 ||
        p->server_no_context_takeover == 1);
  CHECK(p->client_no_context_takeover == 0 ||
        p->client_no_context_takeover == 1);
  CHECK(p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15);
  CHECK(p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15);
}

static const ws_pmd_config servers[] = {
    {0, 0, 0, 0, 0},
    {1, 1, 0, 0, 0},
    {0, 0, 10, 0, 0},
    {0, 0, 0, 9, 0},
    {1, 0, 8, 12, 0},
    {0, 0, 12, 12, 1}, /* ws.listen's defaults */
};

static const ws_pmd_config clients[] = {
    {0, 0, 0, 0, 0},
    {0, 0, 0, -1, 0},
    {1, 1, 10, 11, 0},
    {0, 1, 8, 8, 0},
};

static void server(const char *buf, size_t size, const ws_pmd_config *cfg) {
  char out[WS_PMD_MAX_TEXT];
  ws_pmd_result res, back;
  int n = ws_pmd_accept(buf, size, cfg, &res, out, sizeof out);
  if (n == WS_EEXTENSION) {
    CHECK(res.error == WS_PMD_SYNTAX || res.error == WS_PMD_TOO_LONG);
    return;
  }
  CHECK(n >= 0 && (size_t)n <= sizeof out);
  if (n == 0) {
    CHECK(res.error >= WS_PMD_NONE && res.error < WS_PMD__COUNT);
    return;
  }
  CHECK(res.error == WS_PMD_NONE);
  check_params(&res.params);
  CHECK(ws_pmd_config_check(&res.offer, 0) == 0);
  /* What the server agreed to meets its own limits. */
  if (cfg->server_max_window_bits)
    CHECK(res.params.server_max_window_bits <= cfg->server_max_window_bits);
  /* (an optional client limit binds only offers that carry the
   * parameter; the others keep their 15) */
  if (cfg->client_max_window_bits && res.offer.client_max_window_bits >= 0)
    CHECK(res.params.client_max_window_bits <= cfg->client_max_window_bits);
  if (cfg->client_max_window_bits && res.offer.client_max_window_bits < 0)
    CHECK(cfg->client_window_optional &&
          res.params.client_max_window_bits == 15);
  if (cfg->server_no_context_takeover)
    CHECK(res.params.server_no_context_takeover);
  if (cfg->client_no_context_takeover)
    CHECK(res.params.client_no_context_takeover);
  /* The client that sent the accepted offer takes the answer, and both
   * ends agree on every parameter. */
  CHECK(ws_pmd_check_response(out, (size_t)n, &res.offer, &back) == 1);
  CHECK(memcmp(&back.params, &res.params, sizeof res.params) == 0);
  /* Our own server accepts that client's offer the same way. */
  {
    char offer[WS_PMD_MAX_TEXT], out2[WS_PMD_MAX_TEXT];
    ws_pmd_result again;
    int m = ws_pmd_offer(offer, sizeof offer, &res.offer);
    CHECK(m > 0);
    CHECK(ws_pmd_accept(offer, (size_t)m, cfg, &again, out2, sizeof out2) ==
          n);
    CHECK(memcmp(out2, out, (size_t)n) == 0);
    CHECK(memcmp(&again.params, &res.params, sizeof res.params) == 0);
  }
}

static void client(const char *buf, size_t size, const ws_pmd_config *cfg) {
  ws_pmd_result res;
  int n = ws_pmd_check_response(buf, size, cfg, &res);
  if (n == WS_EEXTENSION) {
    CHECK(res.error > WS_PMD_NONE && res.error < WS_PMD__COUNT);
    return;
  }
  CHECK(n == 0 || n == 1);
  CHECK(res.error == WS_PMD_NONE);
  if (n == 0) return;
  check_params(&res.params);
  /* Never more than the client offered to take. */
  if (cfg->server_max_window_bits)
    CHECK(res.params.server_max_window_bits <= cfg->server_max_window_bits);
  if (cfg->client_max_window_bits > 0)
    CHECK(res.params.client_max_window_bits <= cfg->client_max_window_bits);
  if (cfg->server_no_context_takeover)
    CHECK(res.params.server_no_context_takeover);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  size_t i;
  for (i = 0; i < sizeof servers / sizeof servers[0]; i++)
    server(buf, size, &servers[i]);
  for (i = 0; i < sizeof clients / sizeof clients[0]; i++)
    client(buf, size, &clients[i]);
  return 0;
}

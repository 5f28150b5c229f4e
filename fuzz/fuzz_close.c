/*
 * Fuzz target: ws_close_parse on an arbitrary close frame payload.
 *
 * The result must match RFC 6455 5.5.1 as the header documents it: empty
 * means 1005; one byte, a code not allowed on the wire, or more than 125
 * bytes is an error; otherwise the code is valid and the reason is UTF-8
 * (checked with the reference validator, not the library's) lying inside
 * the payload. The payload sits in a heap block of exactly its size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ref_utf8.h"
#include "ws.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

/* The codes a close frame may carry, spelled out independently of
 * ws_code_valid. */
static int wire_code(int c) {
  if (c >= 3000 && c <= 4999) return 1;
  switch (c) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011: case 1012:
    case 1013: case 1014:
      return 1;
    default:
      return 0;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *p = malloc(size ? size : 1);
  const uint8_t *reason = NULL;
  size_t rlen = (size_t)-1;
  int code = -1, r, want;
  CHECK(p != NULL);
  if (size) memcpy(p, data, size);

  r = ws_close_parse(p, size, &code, &reason, &rlen);

  if (size > WS_CONTROL_MAX)
    want = WS_ECONTROL;
  else if (size == 1)
    want = WS_EINVALID;
  else if (size == 0)
    want = 0;
  else if (!wire_code((p[0] << 8) | p[1]))
    want = WS_EINVALID;
  else if (!ref_utf8_valid(p + 2, size - 2))
    want = WS_EUTF8;
  else
    want = 0;
  CHECK(r == want);

  if (r == 0) {
    CHECK(reason != NULL);
    CHECK(reason >= p && rlen <= size &&
          (size_t)(reason - p) <= size - rlen);
    CHECK(ref_utf8_valid(reason, rlen));
    if (size == 0) {
      CHECK(code == WS_CLOSE_no_status && rlen == 0);
    } else {
      CHECK(ws_code_valid(code) && wire_code(code));
      CHECK(code == ((p[0] << 8) | p[1]));
      CHECK(reason == p + 2 && rlen == size - 2);
    }
  }
  free(p);
  return 0;
}

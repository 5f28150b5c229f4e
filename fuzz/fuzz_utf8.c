/*
 * Differential fuzz target: ws_utf8_validate against the reference
 * validator in ref_utf8.h.
 *
 * Input: two bytes choosing a split point, then the text. The text is
 * validated whole, in two chunks split at that point (the state carried
 * across), one byte at a time, and by ws_utf8_valid. Each way must agree
 * with the reference on validity, on the offset of the first bad byte and
 * on whether the text ends inside a character, with each implementation
 * the CPU has (scalar and the SIMD ones: ws_utf8_use). Every chunk is copied to a
 * heap block of exactly its size, so a read past either end is an ASan
 * report.
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

static uint8_t *dup_exact(const uint8_t *p, size_t n) {
  uint8_t *q = malloc(n ? n : 1);
  CHECK(q != NULL);
  if (n) memcpy(q, p, n);
  return q;
}

/* Validate s[0..len) as one call starting from *st, on an exact-size
 * copy. Returns the result; *bad is set on failure. */
static int validate_copy(ws_utf8_state *st, const uint8_t *s, size_t len,
                         size_t *bad) {
  uint8_t *c = dup_exact(s, len);
  int r = ws_utf8_validate(st, c, len, bad);
  free(c);
  return r;
}

/* What the reference expects for text s[0..len): the first bad offset
 * (len if none) and whether the end is inside a character. */
typedef struct {
  size_t bad;
  int open;
} expect;

static expect ref(const uint8_t *s, size_t len) {
  expect x;
  x.bad = ref_utf8_scan(s, len, &x.open);
  return x;
}

static void check_whole(const uint8_t *s, size_t len, expect x) {
  ws_utf8_state st = WS_UTF8_ACCEPT;
  size_t bad = (size_t)-1;
  int r = validate_copy(&st, s, len, &bad);
  if (x.bad < len) {
    CHECK(r == WS_EUTF8);
    CHECK(bad == x.bad);
  } else {
    CHECK(r == 0);
    CHECK(ws_utf8_complete(st) == !x.open);
  }
  CHECK(ws_utf8_valid(s, len) == (x.bad == len && !x.open));
}

static void check_split(const uint8_t *s, size_t len, size_t k, expect x) {
  ws_utf8_state st = WS_UTF8_ACCEPT;
  size_t bad = (size_t)-1;
  int r = validate_copy(&st, s, k, &bad);
  expect head = ref(s, k);
  if (x.bad < k) {
    CHECK(r == WS_EUTF8);
    CHECK(bad == x.bad);
    return;
  }
  CHECK(r == 0);
  /* The state is 0 exactly at a character boundary. */
  CHECK(ws_utf8_complete(st) == !head.open);
  r = validate_copy(&st, s + k, len - k, &bad);
  if (x.bad < len) {
    CHECK(r == WS_EUTF8);
    CHECK(bad + k == x.bad);
  } else {
    CHECK(r == 0);
    CHECK(ws_utf8_complete(st) == !x.open);
  }
}

static void check_bytewise(const uint8_t *s, size_t len, expect x) {
  ws_utf8_state st = WS_UTF8_ACCEPT;
  size_t i;
  for (i = 0; i < len; i++) {
    size_t bad = (size_t)-1;
    int r = validate_copy(&st, s + i, 1, &bad);
    if (i == x.bad) {
      CHECK(r == WS_EUTF8 && bad == 0);
      return;
    }
    CHECK(r == 0);
  }
  CHECK(x.bad == len);
  CHECK(ws_utf8_complete(st) == !x.open);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *s;
  static const char *const impls[] = {"scalar", "sse4.1", "avx2"};
  size_t len, split, k, pad;
  uint8_t *padded;
  expect x, px;
  if (size < 2) return 0;
  s = data + 2;
  len = size - 2;
  split = ((size_t)data[0] | ((size_t)data[1] << 8)) % (len + 1);
  x = ref(s, len);
  /* Every implementation this CPU has (scalar, SSE4.1, AVX2) must agree
   * with the reference, on the text and on the text behind 0..79 bytes
   * of ASCII, which moves it across the vector blocks. */
  for (k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (ws_utf8_use(impls[k]) != 0) continue;
    check_whole(s, len, x);
    check_split(s, len, split, x);
    pad = data[0] % 80;
    padded = malloc(pad + len + 1);
    CHECK(padded != NULL);
    memset(padded, 'a', pad);
    if (len) memcpy(padded + pad, s, len);
    px = x;
    px.bad += pad;
    check_whole(padded, pad + len, px);
    check_split(padded, pad + len, (split + pad) % (pad + len + 1), px);
    free(padded);
  }
  ws_utf8_use(NULL);
  if (len <= 1024) check_bytewise(s, len, x);
  return 0;
}

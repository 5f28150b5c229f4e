/*
 * Masking (RFC 6455 5.3): payload XOR a repeating 4-byte key.
 *
 * The key is first rotated to the chunk's phase and widened to 8 (or 16)
 * bytes, so the loop is a plain wide XOR over the buffer with no per-byte
 * index arithmetic; only the tail (< 8 bytes) goes byte by byte.
 */
#include <string.h>

#include "ws.h"

#if defined(__GNUC__)
typedef uint64_t ws_v2u64 __attribute__((vector_size(16)));
#define WS_HAVE_VECTOR 1
#endif

unsigned ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t key[4], unsigned phase) {
  uint8_t k[8];
  uint64_t k64;
  size_t i = 0;
  unsigned j;

  phase &= 3;
  for (j = 0; j < 8; j++) k[j] = key[(phase + j) & 3];
  memcpy(&k64, k, 8);

#ifdef WS_HAVE_VECTOR
  {
    ws_v2u64 kv = {k64, k64};
    for (; i + 64 <= len; i += 64) {
      ws_v2u64 a, b, c, d;
      memcpy(&a, src + i, 16);
      memcpy(&b, src + i + 16, 16);
      memcpy(&c, src + i + 32, 16);
      memcpy(&d, src + i + 48, 16);
      a ^= kv;
      b ^= kv;
      c ^= kv;
      d ^= kv;
      memcpy(dst + i, &a, 16);
      memcpy(dst + i + 16, &b, 16);
      memcpy(dst + i + 32, &c, 16);
      memcpy(dst + i + 48, &d, 16);
    }
  }
#endif
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k64;
    memcpy(dst + i, &w, 8);
  }
  /* i is a multiple of 8 here, so the tail starts at key byte k[0]. */
  for (j = 0; i < len; i++, j++) dst[i] = src[i] ^ k[j];
  return (unsigned)((phase + len) & 3);
}

unsigned ws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                 unsigned phase) {
  return ws_mask_copy(buf, buf, len, key, phase);
}

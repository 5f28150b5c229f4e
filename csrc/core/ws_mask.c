/*
 * Masking (RFC 6455 5.3): payload XOR a repeating 4-byte key.
 *
 * The key is first rotated to the chunk's phase and widened to 8 (or 16)
 * bytes, so the loop is a plain wide XOR over the buffer with no per-byte
 * index arithmetic; only the tail (< 8 bytes) goes byte by byte.
 *
 * The rotation is done on a 32-bit word rather than by assembling the key
 * byte by byte: eight byte stores followed by one 8-byte load defeat
 * store-to-load forwarding, and that stall cost as much as masking a
 * small frame's whole payload.
 */
#include <string.h>

#include "ws.h"

#if defined(__GNUC__)
typedef uint64_t ws_v2u64 __attribute__((vector_size(16)));
#define WS_HAVE_VECTOR 1
#endif

/* The key starting at byte `phase`, repeated twice, in memory order. */
static inline uint64_t widen_key(const uint8_t key[4], unsigned phase) {
  uint32_t k;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&k, key, 4);
  if (phase) k = (k >> (8 * phase)) | (k << (32 - 8 * phase));
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  memcpy(&k, key, 4);
  if (phase) k = (k << (8 * phase)) | (k >> (32 - 8 * phase));
#else
  uint8_t r[4];
  unsigned j;
  for (j = 0; j < 4; j++) r[j] = key[(phase + j) & 3];
  memcpy(&k, r, 4);
#endif
  /* Both halves are the same word, so this is right for either byte
   * order. */
  return ((uint64_t)k << 32) | k;
}

unsigned ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t key[4], unsigned phase) {
  uint8_t k[8];
  uint64_t k64;
  size_t i = 0;
  unsigned j;

  phase &= 3;
  k64 = widen_key(key, phase);

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
    for (; i + 16 <= len; i += 16) {
      ws_v2u64 a;
      memcpy(&a, src + i, 16);
      a ^= kv;
      memcpy(dst + i, &a, 16);
    }
  }
#endif
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k64;
    memcpy(dst + i, &w, 8);
  }
  /* i is a multiple of 8 here, so the tail starts at key byte k[0]. One
   * 8-byte store, then byte loads inside it, forwards fine. */
  memcpy(k, &k64, 8);
  for (j = 0; i < len; i++, j++) dst[i] = src[i] ^ k[j];
  return (unsigned)((phase + len) & 3);
}

unsigned ws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                 unsigned phase) {
  return ws_mask_copy(buf, buf, len, key, phase);
}

/*
 * Incremental UTF-8 validation (RFC 3629 table 4, as RFC 6455 8.1 needs).
 *
 * The common case, ASCII, is checked 16 bytes per step. A multi-byte
 * sequence that lies wholly inside the buffer is checked in one go; only a
 * sequence cut by the end of a chunk goes through the saved state, so the
 * state machine runs at most three bytes per call.
 *
 * State word: 0 at a character boundary, else
 *   bits 16..17  continuation bytes still owed (1..3)
 *   bits  8..15  lowest allowed value of the next byte
 *   bits  0..7   highest allowed value of the next byte
 */
#include <string.h>

#include "ws.h"

#define HIGH_BITS 0x8080808080808080ull

static inline uint32_t make_state(unsigned need, unsigned lo, unsigned hi) {
  return ((uint32_t)need << 16) | ((uint32_t)lo << 8) | (uint32_t)hi;
}

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Index of the first byte with its top bit set in a word read by memcpy;
 * the word must have at least one such byte. */
static inline size_t first_high_byte(uint64_t m) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return (size_t)__builtin_ctzll(m) >> 3;
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (size_t)__builtin_clzll(m) >> 3;
#else
  uint8_t b[8];
  size_t i = 0;
  memcpy(b, &m, 8);
  while (!(b[i] & 0x80)) i++;
  return i;
#endif
}

/* For a lead byte: how many continuation bytes follow and the allowed
 * range of the first of them. Returns 0 need for an invalid lead. The
 * narrowed ranges exclude overlongs (E0, F0), surrogates (ED) and code
 * points above U+10FFFF (F4). */
static inline unsigned lead_info(unsigned c, unsigned *lo, unsigned *hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return 1;
  if (c < 0xF0) {
    if (c == 0xE0) *lo = 0xA0;
    else if (c == 0xED) *hi = 0x9F;
    return 2;
  }
  if (c < 0xF5) {
    if (c == 0xF0) *lo = 0x90;
    else if (c == 0xF4) *hi = 0x8F;
    return 3;
  }
  return 0;
}

int ws_utf8_validate(ws_utf8_state *state, const uint8_t *buf, size_t len,
                     size_t *bad) {
  size_t i = 0;
  uint32_t st = *state;

  /* Finish a sequence left open by the previous chunk. */
  while (st != WS_UTF8_ACCEPT && i < len) {
    unsigned need = st >> 16, lo = (st >> 8) & 0xFF, hi = st & 0xFF;
    unsigned c = buf[i];
    if (c < lo || c > hi) goto fail;
    i++;
    st = need > 1 ? make_state(need - 1, 0x80, 0xBF) : WS_UTF8_ACCEPT;
  }

  while (i < len) {
    unsigned c, need, lo, hi;
    if (buf[i] < 0x80) {
      /* ASCII run: skip 16, then 8 bytes at a time, then locate the
       * first high byte inside the word that stopped the run. */
      while (i + 16 <= len) {
        uint64_t m = (load64(buf + i) | load64(buf + i + 8)) & HIGH_BITS;
        if (m) break;
        i += 16;
      }
      while (i + 8 <= len) {
        uint64_t m = load64(buf + i) & HIGH_BITS;
        if (m) {
          i += first_high_byte(m);
          break;
        }
        i += 8;
      }
      if (i + 8 > len) {
        while (i < len && buf[i] < 0x80) i++;
      }
      if (i >= len) break;
      if (buf[i] < 0x80) continue;
    }
    c = buf[i];
    need = lead_info(c, &lo, &hi);
    if (need == 0) goto fail;
    if (i + need < len) {
      /* Whole sequence present. */
      unsigned c1 = buf[i + 1];
      if (c1 < lo || c1 > hi) {
        i += 1;
        goto fail;
      }
      if (need >= 2 && (buf[i + 2] & 0xC0) != 0x80) {
        i += 2;
        goto fail;
      }
      if (need == 3 && (buf[i + 3] & 0xC0) != 0x80) {
        i += 3;
        goto fail;
      }
      i += need + 1;
      continue;
    }
    /* The sequence runs past the end of this chunk: check what is here
     * and carry the rest in the state. */
    i++;
    st = make_state(need, lo, hi);
    while (i < len) {
      unsigned n = st >> 16, l = (st >> 8) & 0xFF, h = st & 0xFF;
      unsigned b = buf[i];
      if (b < l || b > h) goto fail;
      i++;
      st = make_state(n - 1, 0x80, 0xBF); /* n > 1 here: the sequence
                                             did not fit */
    }
    break;
  }
  *state = st;
  return 0;

fail:
  if (bad) *bad = i;
  return WS_EUTF8;
}

int ws_utf8_valid(const uint8_t *buf, size_t len) {
  ws_utf8_state st = WS_UTF8_ACCEPT;
  return ws_utf8_validate(&st, buf, len, NULL) == 0 && ws_utf8_complete(st);
}

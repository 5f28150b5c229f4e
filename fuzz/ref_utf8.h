/*
 * A reference UTF-8 validator for the fuzz targets: slow, and written to
 * be checked by reading rather than to be fast.
 *
 * It works from RFC 3629 directly. A lead byte fixes the sequence length
 * n and some high bits of the code point; every continuation byte read so
 * far fixes six more. The code points still reachable from a prefix are a
 * contiguous range, [bits << 6r, ((bits + 1) << 6r) - 1] with r bytes
 * still to come. The prefix can still become a valid character iff that
 * range meets the values n bytes may encode (no overlongs, nothing above
 * U+10FFFF) somewhere outside the surrogates D800-DFFF. Table 4 of the RFC
 * (the E0/ED/F0/F4 rows and so on) falls out of this; it is not written
 * down here, so this does not share a mistake with a table-driven
 * validator.
 *
 * The "first bad offset" is the offset of the first byte at which the
 * input stops being a prefix of some valid UTF-8 text.
 */
#ifndef FUZZ_REF_UTF8_H
#define FUZZ_REF_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Can a code point in [lo, hi] that is encoded in n bytes be valid? */
static inline int ref_reachable(uint32_t lo, uint32_t hi, unsigned n) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  static const uint32_t max_cp[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
  if (lo < min_cp[n]) lo = min_cp[n];
  if (hi > max_cp[n]) hi = max_cp[n];
  if (lo > hi) return 0;
  /* Some of [lo, hi] must be outside the surrogate block. */
  return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Scan s[0..len). Returns the first bad offset, or len if there is none;
 * then *open is 1 if the text ends inside a character, else 0. */
static inline size_t ref_utf8_scan(const uint8_t *s, size_t len, int *open) {
  size_t i = 0;
  *open = 0;
  while (i < len) {
    unsigned c = s[i], n, k;
    uint32_t bits;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      n = 2;
      bits = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      bits = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      bits = c & 0x07;
    } else {
      return i; /* a continuation byte, or F8..FF */
    }
    for (k = 1;; k++) {
      unsigned rest = n - k; /* continuation bytes after this prefix */
      uint32_t lo = bits << (6 * rest);
      uint32_t hi = ((bits + 1) << (6 * rest)) - 1;
      if (!ref_reachable(lo, hi, n)) return i + k - 1;
      if (rest == 0) break;
      if (i + k >= len) {
        *open = 1;
        return len;
      }
      if ((s[i + k] & 0xC0) != 0x80) return i + k;
      bits = (bits << 6) | (s[i + k] & 0x3F);
    }
    i += n;
  }
  return len;
}

/* 1 if s[0..len) is complete, valid UTF-8. */
static inline int ref_utf8_valid(const uint8_t *s, size_t len) {
  int open;
  return ref_utf8_scan(s, len, &open) == len && !open;
}

#endif

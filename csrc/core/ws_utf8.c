/*
 * Incremental UTF-8 validation (RFC 3629 table 4, as RFC 6455 8.1 needs).
 *
 * Long runs go through a SIMD validator when the CPU has one (AVX2 or
 * SSE4.1 on x86, chosen at run time from cpuid; see "SIMD" below): it
 * checks 64 bytes per step and hands back a prefix that ends at a
 * character boundary, and the scalar code below does the rest (the tail,
 * and the exact offset of an error). The scalar code checks ASCII 16 bytes
 * per step. A multi-byte sequence that lies wholly inside the buffer is
 * checked in one go; only a sequence cut by the end of a chunk goes
 * through the saved state, so the state machine runs at most three bytes
 * per call.
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

/* ---------------------------------------------------------------- SIMD */

/* The vector validator classifies every pair of adjacent bytes (b1, b2)
 * with three 16-entry tables, indexed by b1's high nibble, b1's low nibble
 * and b2's high nibble; each entry is a set of error kinds (one bit each)
 * the nibble is consistent with, and a pair is an error when one kind is
 * in all three sets (the method of Keiser and Lemire, "Validating UTF-8 in
 * less than one instruction per byte", 2021). The kinds:
 *   TOO_SHORT  a lead byte not followed by a continuation byte
 *   TOO_LONG   a continuation byte after an ASCII byte
 *   OVER3      E0 80..9F (overlong 3-byte form)
 *   TOO_LARGE  F4 90..BF, F5..FF 90..BF (above U+10FFFF)
 *   SURR       ED A0..BF (UTF-16 surrogates)
 *   OVER2      C0, C1 followed by a continuation (overlong 2-byte form)
 *   F_80       F0 80..8F (overlong 4-byte form), F5..FF 80..8F
 *   TWO_CONTS  two continuation bytes: valid only as the 3rd or 4th byte
 *              of a sequence, which the bytes two and three back decide
 * A text cut inside a sequence at the end of the region is left to the
 * scalar code, which carries it in the state. */
#define K_TOO_SHORT 0x01
#define K_TOO_LONG 0x02
#define K_OVER3 0x04
#define K_TOO_LARGE 0x08
#define K_SURR 0x10
#define K_OVER2 0x20
#define K_F_80 0x40
#define K_TWO_CONTS 0x80

#define K_ANY (K_TOO_SHORT | K_TOO_LONG | K_TWO_CONTS)
#define K_LARGE_LEAD (K_ANY | K_TOO_LARGE | K_F_80)

/* b1's high nibble */
#define T1_ENTRIES                                                        \
  B(K_TOO_LONG), B(K_TOO_LONG), B(K_TOO_LONG), B(K_TOO_LONG),            \
      B(K_TOO_LONG), B(K_TOO_LONG), B(K_TOO_LONG), B(K_TOO_LONG),        \
      B(K_TWO_CONTS), B(K_TWO_CONTS), B(K_TWO_CONTS), B(K_TWO_CONTS),    \
      B(K_TOO_SHORT | K_OVER2), B(K_TOO_SHORT),                          \
      B(K_TOO_SHORT | K_OVER3 | K_SURR),                                 \
      B(K_TOO_SHORT | K_TOO_LARGE | K_F_80)
/* b1's low nibble */
#define T2_ENTRIES                                                        \
  B(K_ANY | K_OVER2 | K_OVER3 | K_F_80), B(K_ANY | K_OVER2), B(K_ANY),   \
      B(K_ANY), B(K_ANY | K_TOO_LARGE), B(K_LARGE_LEAD),                 \
      B(K_LARGE_LEAD), B(K_LARGE_LEAD), B(K_LARGE_LEAD), B(K_LARGE_LEAD), \
      B(K_LARGE_LEAD), B(K_LARGE_LEAD), B(K_LARGE_LEAD),                 \
      B(K_LARGE_LEAD | K_SURR), B(K_LARGE_LEAD), B(K_LARGE_LEAD)
/* b2's high nibble */
#define T3_CONT (K_TOO_LONG | K_TWO_CONTS | K_OVER2)
#define T3_ENTRIES                                                        \
  B(K_TOO_SHORT), B(K_TOO_SHORT), B(K_TOO_SHORT), B(K_TOO_SHORT),        \
      B(K_TOO_SHORT), B(K_TOO_SHORT), B(K_TOO_SHORT), B(K_TOO_SHORT),    \
      B(T3_CONT | K_OVER3 | K_F_80), B(T3_CONT | K_OVER3 | K_TOO_LARGE), \
      B(T3_CONT | K_SURR | K_TOO_LARGE),                                 \
      B(T3_CONT | K_SURR | K_TOO_LARGE), B(K_TOO_SHORT), B(K_TOO_SHORT), \
      B(K_TOO_SHORT), B(K_TOO_SHORT)
/* a table byte as the intrinsics take it */
#define B(x) ((char)(x))

/* Where the scalar code takes over from a vector prefix buf[0..p), valid
 * except that its last character may be cut at p: at that character's
 * lead byte if it is cut, else at p. */
static inline size_t resume_at(const uint8_t *buf, size_t p) {
  if (p >= 1 && buf[p - 1] >= 0xC0) return p - 1;
  if (p >= 2 && buf[p - 2] >= 0xE0) return p - 2;
  if (p >= 3 && buf[p - 3] >= 0xF0) return p - 3;
  return p;
}

#if (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define WS_UTF8_X86 1
#include <immintrin.h>

#define SSE_TARGET __attribute__((target("ssse3,sse4.1")))
#define AVX2_TARGET __attribute__((target("avx2")))

/* Error kinds of every byte of x given the 16 bytes before it. */
SSE_TARGET static inline __m128i sse_check(__m128i x, __m128i prev) {
  const __m128i t1 = _mm_setr_epi8(T1_ENTRIES);
  const __m128i t2 = _mm_setr_epi8(T2_ENTRIES);
  const __m128i t3 = _mm_setr_epi8(T3_ENTRIES);
  const __m128i nib = _mm_set1_epi8(0x0F);
  __m128i p1 = _mm_alignr_epi8(x, prev, 15);
  __m128i p2 = _mm_alignr_epi8(x, prev, 14);
  __m128i p3 = _mm_alignr_epi8(x, prev, 13);
  __m128i k = _mm_and_si128(
      _mm_and_si128(
          _mm_shuffle_epi8(t1, _mm_and_si128(_mm_srli_epi16(p1, 4), nib)),
          _mm_shuffle_epi8(t2, _mm_and_si128(p1, nib))),
      _mm_shuffle_epi8(t3, _mm_and_si128(_mm_srli_epi16(x, 4), nib)));
  /* 0x80 where the byte must be a 3rd or 4th byte */
  __m128i third = _mm_subs_epu8(p2, _mm_set1_epi8((char)0xDF));
  __m128i fourth = _mm_subs_epu8(p3, _mm_set1_epi8((char)0xEF));
  __m128i must = _mm_and_si128(
      _mm_cmpgt_epi8(_mm_or_si128(third, fourth), _mm_setzero_si128()),
      _mm_set1_epi8((char)0x80));
  return _mm_xor_si128(k, must);
}

/* Nonzero where x's last bytes start a sequence x does not finish. */
SSE_TARGET static inline __m128i sse_open_end(__m128i x) {
  const __m128i max = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                    -1, -1, -1, (char)0xEF, (char)0xDF,
                                    (char)0xBF);
  return _mm_subs_epu8(x, max);
}

/* A prefix of buf (len > 64) that this validator finds valid and that
 * ends at a character boundary before len: it stops at the first 64-byte
 * group with an error, or when fewer than 65 bytes are left. */
SSE_TARGET static size_t prefix_sse41(const uint8_t *buf, size_t len) {
  __m128i prev = _mm_setzero_si128(), open = _mm_setzero_si128();
  size_t i = 0;
  for (; i + 64 < len; i += 64) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
    __m128i b =
        _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 16));
    __m128i c =
        _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 32));
    __m128i d =
        _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 48));
    __m128i all = _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d));
    __m128i err;
    if (_mm_movemask_epi8(all) == 0) {
      /* ASCII: an error only if the bytes before left a sequence open */
      if (!_mm_testz_si128(open, open)) break;
      prev = d;
      continue;
    }
    err = _mm_or_si128(sse_check(a, prev), sse_check(b, a));
    err = _mm_or_si128(err, _mm_or_si128(sse_check(c, b), sse_check(d, c)));
    if (!_mm_testz_si128(err, err)) break;
    prev = d;
    open = sse_open_end(d);
  }
  return resume_at(buf, i);
}

/* The same for AVX2, 32 bytes a vector (the tables in both lanes). */
AVX2_TARGET static inline __m256i avx2_check(__m256i x, __m256i prev) {
  const __m256i t1 = _mm256_setr_epi8(T1_ENTRIES, T1_ENTRIES);
  const __m256i t2 = _mm256_setr_epi8(T2_ENTRIES, T2_ENTRIES);
  const __m256i t3 = _mm256_setr_epi8(T3_ENTRIES, T3_ENTRIES);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  /* prev's high lane then x's low lane: what comes before each lane */
  __m256i before = _mm256_permute2x128_si256(prev, x, 0x21);
  __m256i p1 = _mm256_alignr_epi8(x, before, 15);
  __m256i p2 = _mm256_alignr_epi8(x, before, 14);
  __m256i p3 = _mm256_alignr_epi8(x, before, 13);
  __m256i k = _mm256_and_si256(
      _mm256_and_si256(
          _mm256_shuffle_epi8(t1,
                              _mm256_and_si256(_mm256_srli_epi16(p1, 4), nib)),
          _mm256_shuffle_epi8(t2, _mm256_and_si256(p1, nib))),
      _mm256_shuffle_epi8(t3, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib)));
  __m256i third = _mm256_subs_epu8(p2, _mm256_set1_epi8((char)0xDF));
  __m256i fourth = _mm256_subs_epu8(p3, _mm256_set1_epi8((char)0xEF));
  __m256i must = _mm256_and_si256(
      _mm256_cmpgt_epi8(_mm256_or_si256(third, fourth),
                        _mm256_setzero_si256()),
      _mm256_set1_epi8((char)0x80));
  return _mm256_xor_si256(k, must);
}

AVX2_TARGET static inline __m256i avx2_open_end(__m256i x) {
  const __m256i max = _mm256_setr_epi8(
      -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
      -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, (char)0xEF, (char)0xDF,
      (char)0xBF);
  return _mm256_subs_epu8(x, max);
}

AVX2_TARGET static size_t prefix_avx2(const uint8_t *buf, size_t len) {
  __m256i prev = _mm256_setzero_si256(), open = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 64 < len; i += 64) {
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i));
    __m256i b =
        _mm256_loadu_si256((const __m256i *)(const void *)(buf + i + 32));
    __m256i err;
    if (_mm256_movemask_epi8(_mm256_or_si256(a, b)) == 0) {
      if (!_mm256_testz_si256(open, open)) break;
      prev = b;
      continue;
    }
    err = _mm256_or_si256(avx2_check(a, prev), avx2_check(b, a));
    if (!_mm256_testz_si256(err, err)) break;
    prev = b;
    open = avx2_open_end(b);
  }
  return resume_at(buf, i);
}
#endif /* WS_UTF8_X86 */

typedef size_t (*prefix_fn)(const uint8_t *buf, size_t len);

static const struct {
  const char *name;
  prefix_fn fn;
} impls[] = {
    {"scalar", NULL},
#ifdef WS_UTF8_X86
    {"sse4.1", prefix_sse41},
    {"avx2", prefix_avx2},
#endif
};
#define N_IMPLS (sizeof impls / sizeof impls[0])

static int cpu_has(size_t k) {
#ifdef WS_UTF8_X86
  __builtin_cpu_init();
  if (impls[k].fn == prefix_sse41)
    return __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("sse4.1");
  if (impls[k].fn == prefix_avx2) return __builtin_cpu_supports("avx2");
#endif
  return k == 0;
}

/* The implementation in use: index into impls + 1, 0 until chosen. The
 * choice is a pure function of the CPU, so threads racing to make it
 * store the same value; an atomic keeps that defined. */
static _Atomic unsigned chosen;

static unsigned choose(void) {
  unsigned c = chosen;
  if (c == 0) {
    size_t k = N_IMPLS;
    while (k > 1 && !cpu_has(k - 1)) k--;
    c = (unsigned)k; /* the widest the CPU has; 1 = scalar */
    chosen = c;
  }
  return c - 1;
}

const char *ws_utf8_impl(void) { return impls[choose()].name; }

int ws_utf8_use(const char *name) {
  size_t k;
  if (name == NULL) {
    chosen = 0;
    choose();
    return 0;
  }
  for (k = 0; k < N_IMPLS; k++) {
    if (strcmp(impls[k].name, name) == 0) {
      if (!cpu_has(k)) return WS_EINVALID;
      chosen = (unsigned)k + 1;
      return 0;
    }
  }
  return WS_EINVALID;
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

  /* A long run: the vector validator takes what it can, from a character
   * boundary to a character boundary. */
  if (st == WS_UTF8_ACCEPT && len - i > 64) {
    prefix_fn fn = impls[choose()].fn;
    if (fn) i += fn(buf + i, len - i);
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

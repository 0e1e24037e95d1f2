/*
 * scan.h -- the first of two given bytes in a short run, shared by the SSE
 * parser (CR or LF: sse.c) and the JSON decoder ('"' or '\\': ljson.c). With
 * SSE2, 16 bytes at a time; elsewhere a plain loop. Both callers spend most
 * of their scanning on runs of a few dozen bytes, where one pass for both
 * bytes costs less than a memchr call for each. Also the comparison of two
 * short runs (event types: levents.c; object keys: ljson.c) without a call.
 * Its always-inline marker, SCAN_INLINE, serves those files' hot helpers too.
 */
#ifndef AGENTRUNS_SCAN_H
#define AGENTRUNS_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define SCAN_INLINE static inline __attribute__((always_inline))
#else
#define SCAN_INLINE static inline
#endif

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

/* The index of the first a or b in s[0..n), or n when there is none. */
SCAN_INLINE size_t scan_either(const char *s, size_t n, char a, char b) {
  size_t i = 0;
#if defined(__SSE2__) && defined(__GNUC__)
  const __m128i va = _mm_set1_epi8(a), vb = _mm_set1_epi8(b);
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb)));
    if (m) return i + (size_t)__builtin_ctz((unsigned)m);
  }
#endif
  for (; i < n; i++)
    if (s[i] == a || s[i] == b) return i;
  return n;
}

/* The first and the last w bytes (w <= n, at most 8) of the n at a against
   those at b, XOR-ed and OR-ed together: 0 when both pairs are the same. */
SCAN_INLINE uint64_t ends_xor(const char *a, const char *b, size_t n, size_t w) {
  uint64_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
  memcpy(&a0, a, w);
  memcpy(&b0, b, w);
  memcpy(&a1, a + n - w, w);
  memcpy(&b1, b + n - w, w);
  return (a0 ^ b0) | (a1 ^ b1);
}

/* True when the n bytes at a and at b are the same: up to 16 bytes are
   compared as two words that may overlap, longer runs with memcmp. */
SCAN_INLINE int same_short(const char *a, const char *b, size_t n) {
  if (n >= 8 && n <= 16) return ends_xor(a, b, n, 8) == 0;
  if (n >= 4 && n < 8) return ends_xor(a, b, n, 4) == 0;
  return memcmp(a, b, n) == 0;
}

#endif

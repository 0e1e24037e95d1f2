/*
 * sse_fuzz.c -- libFuzzer target for the SSE parser (src/sse.c).
 *
 * Byte 0 of an input chooses how the stream is cut into chunks (byte by byte,
 * or random lengths up to 8, 64 or 1024, sometimes empty, from a generator
 * seeded by the input), byte 1 chooses max_event_size (none, or 1..224
 * bytes, or 16 times that); the rest is the stream. It is parsed four ways:
 *
 *   1. whole, in one sse_feed;
 *   2. in chunks, each copied to a buffer of its own that is freed after its
 *      feed -- the events (hashed in order), the result code, the last
 *      event ID and the retry time must equal those of 1;
 *   3. that parser again after sse_reset, fed the stream in other chunks --
 *      it must behave like a fresh parser that only learnt the same last
 *      event ID and retry time (primed with "id:" and "retry:" lines, then
 *      reset);
 *   4. in chunks with a callback that asks to stop after k events -- it must
 *      see exactly the first k events of 1 and return SSE_ECALLBACK.
 *
 * Every event is checked as it is dispatched: no part longer than
 * max_event_size, no CR in data, no CR or LF in the type, no NUL, CR or LF
 * in the ID. After every successful feed the pending buffers are within
 * max_event_size; errors stick until sse_reset. A violation calls
 * __builtin_trap(). Everything is freed, so the leak checker sees any loss.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
  do { \
    if (!(cond)) __builtin_trap(); \
  } while (0)

/* What one parse saw. */
typedef struct record {
  size_t max;        /* max_event_size asked for, 0 for none */
  uint64_t hash;     /* FNV-1a over every event, length-prefixed parts */
  size_t count;      /* events seen */
  size_t mark;       /* remember the hash after this many events ... */
  uint64_t hash_at_mark;
  size_t stop_after; /* ask the parser to stop after this many; 0 = never */
} record;

static void record_init(record *r, size_t max) {
  memset(r, 0, sizeof *r);
  r->max = max;
  r->hash = 14695981039346656037ULL;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static uint64_t hash_part(uint64_t h, const char *s, size_t n) {
  h = hash_bytes(h, &n, sizeof n);
  return hash_bytes(h, s, n);
}

static int has_byte(const char *s, size_t n, char c) {
  return n > 0 && memchr(s, c, n) != NULL;
}

/* Parser callback: check the event, fold it into the record. */
static int on_event(void *ud, const sse_event *ev) {
  record *r = ud;
  CHECK(ev->type != NULL && ev->type_len > 0);
  CHECK(ev->data != NULL || ev->data_len == 0);
  CHECK(ev->id != NULL || ev->id_len == 0);
  if (r->max) {
    CHECK(ev->data_len <= r->max);
    CHECK(ev->id_len <= r->max);
    CHECK(ev->type_len <= r->max || (ev->type_len == 7 && memcmp(ev->type, "message", 7) == 0));
  }
  CHECK(!has_byte(ev->data, ev->data_len, '\r'));
  CHECK(!has_byte(ev->type, ev->type_len, '\r') && !has_byte(ev->type, ev->type_len, '\n'));
  CHECK(!has_byte(ev->id, ev->id_len, '\0'));
  CHECK(!has_byte(ev->id, ev->id_len, '\r') && !has_byte(ev->id, ev->id_len, '\n'));
  r->hash = hash_part(r->hash, ev->type, ev->type_len);
  r->hash = hash_part(r->hash, ev->data, ev->data_len);
  r->hash = hash_part(r->hash, ev->id, ev->id_len);
  r->count++;
  if (r->count == r->mark) r->hash_at_mark = r->hash;
  return r->stop_after && r->count >= r->stop_after;
}

/* A small deterministic generator for chunk lengths. */
static uint32_t next_random(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

/* The buffers a healthy parser holds stay within max_event_size. */
static void check_bounded(const sse_parser *p, size_t max) {
  if (max == 0) return;
  CHECK(p->line.len <= max);
  CHECK(p->data.len <= max);
  CHECK(p->type.len <= max);
  CHECK(p->id.len <= max);
  CHECK(p->event_bytes <= max);
  CHECK(p->held.len <= max);
}

/* Feed s[0..n) in chunks of the given mode; returns the first error (or SSE_OK). */
static int feed_chunked(sse_parser *p, const char *s, size_t n, unsigned mode, uint32_t seed, size_t max) {
  static const size_t longest[4] = { 1, 8, 64, 1024 };
  uint32_t state = seed ? seed : 0x9e3779b9u;
  size_t i = 0;
  int rc = SSE_OK;
  while (i < n) {
    size_t len = 1;
    int r;
    if (mode & 3) {
      len = next_random(&state) % (longest[mode & 3] + 1); /* 0 sometimes: an empty feed */
      if (len > n - i) len = n - i;
    }
    {
      /* each chunk in a buffer of its own, freed once fed: the parser may
         keep nothing pointing into the caller's bytes (ASan sees it) */
      char *chunk = malloc(len ? len : 1);
      CHECK(chunk != NULL);
      memcpy(chunk, s + i, len);
      r = sse_feed(p, chunk, len);
      memset(chunk, 0xA5, len);
      free(chunk);
    }
    if (rc != SSE_OK) {
      CHECK(r == rc); /* errors stick */
    } else {
      rc = r;
      if (rc == SSE_OK) check_bounded(p, max);
    }
    i += len;
  }
  return rc;
}

static int same_last_id(const sse_parser *a, const sse_parser *b) {
  return a->last_id.len == b->last_id.len &&
         (a->last_id.len == 0 || memcmp(a->last_id.p, b->last_id.p, a->last_id.len) == 0);
}

static int same_record(const record *a, const record *b) {
  return a->count == b->count && a->hash == b->hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sse_parser whole, chunked, fresh, stopping;
  record r_whole, r_chunked, r_again, r_fresh, r_stop;
  const char *s;
  size_t n, max, k;
  unsigned mode;
  uint32_t seed;
  int rc_whole, rc_chunked, rc;
  char *prime;
  size_t prime_len;

  if (size < 2) return 0;
  mode = data[0];
  max = data[1] < 32 ? 0 : (size_t)(data[1] - 31) * ((mode & 4) ? 16 : 1);
  seed = ((uint32_t)data[0] << 24) ^ ((uint32_t)data[1] << 16) ^ (uint32_t)size;
  s = (const char *)data + 2;
  n = size - 2;
  k = 1 + (mode >> 3) % 4;

  /* 1. whole */
  record_init(&r_whole, max);
  r_whole.mark = k;
  sse_init(&whole, max, on_event, &r_whole);
  rc_whole = sse_feed(&whole, s, n);
  CHECK(rc_whole == SSE_OK || rc_whole == SSE_ETOOBIG);
  CHECK(rc_whole != SSE_ETOOBIG || max != 0);
  if (rc_whole == SSE_OK) check_bounded(&whole, max);
  else CHECK(sse_feed(&whole, "data: x\n\n", 9) == rc_whole);

  /* 2. chunked: the same events, result, last event ID and retry */
  record_init(&r_chunked, max);
  sse_init(&chunked, max, on_event, &r_chunked);
  rc_chunked = feed_chunked(&chunked, s, n, mode, seed, max);
  CHECK(rc_chunked == rc_whole);
  CHECK(same_record(&r_whole, &r_chunked));
  CHECK(same_last_id(&whole, &chunked));
  CHECK(whole.retry == chunked.retry);

  /* 3. after a reset: like a fresh parser that knows only the last event ID and retry */
  prime = malloc(chunked.last_id.len + 48);
  CHECK(prime != NULL);
  memcpy(prime, "id: ", 4);
  if (chunked.last_id.len) memcpy(prime + 4, chunked.last_id.p, chunked.last_id.len);
  prime_len = 4 + chunked.last_id.len;
  prime[prime_len++] = '\n';
  if (chunked.retry >= 0) prime_len += (size_t)snprintf(prime + prime_len, 40, "retry: %ld\n", chunked.retry);
  prime[prime_len++] = '\n';
  record_init(&r_fresh, max);
  sse_init(&fresh, 0, on_event, &r_fresh);
  CHECK(sse_feed(&fresh, prime, prime_len) == SSE_OK);
  CHECK(r_fresh.count == 0 && same_last_id(&fresh, &chunked) && fresh.retry == chunked.retry);
  free(prime);
  sse_reset(&fresh);
  fresh.max_event_size = chunked.max_event_size; /* priming ran without a limit */
  rc = sse_feed(&fresh, s, n);

  record_init(&r_again, max);
  chunked.ud = &r_again;
  sse_reset(&chunked);
  CHECK(feed_chunked(&chunked, s, n, mode + 1, seed ^ 0x5bd1e995u, max) == rc);
  CHECK(same_record(&r_fresh, &r_again));
  CHECK(same_last_id(&fresh, &chunked));
  CHECK(fresh.retry == chunked.retry);

  /* 4. a callback that stops after k events sees exactly the first k */
  record_init(&r_stop, max);
  r_stop.stop_after = k;
  sse_init(&stopping, max, on_event, &r_stop);
  rc = feed_chunked(&stopping, s, n, mode + 2, seed ^ 0x27d4eb2fu, max);
  if (r_whole.count >= k) {
    CHECK(rc == SSE_ECALLBACK);
    CHECK(r_stop.count == k && r_stop.hash == r_whole.hash_at_mark);
    CHECK(sse_feed(&stopping, "data: x\n\n", 9) == SSE_ECALLBACK);
    /* a reset clears the stop; the parser works again */
    r_stop.stop_after = 0;
    sse_reset(&stopping);
    /* "data\n" is 5 bytes, within any max_event_size that let an event through */
    CHECK(sse_feed(&stopping, "\n\ndata\n\n", 8) == SSE_OK);
    CHECK(r_stop.count == k + 1);
  } else {
    CHECK(rc == rc_whole);
    CHECK(same_record(&r_whole, &r_stop));
  }

  sse_free(&whole);
  sse_free(&chunked);
  sse_free(&fresh);
  sse_free(&stopping);
  return 0;
}

/*
 * buf.c -- sse_buf, the growable byte buffer of the parser (sse.c) and of
 * transfers (transfer.c). Built into both C modules.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

int sse_buf_reserve(sse_buf *b, size_t extra) {
  size_t need, cap;
  char *np;
  if (extra <= b->cap - b->len) return SSE_OK;
  if (extra > (size_t)-1 - b->len) return SSE_ENOMEM;
  need = b->len + extra;
  cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > (size_t)-1 / 2 ? need : cap * 2;
  np = realloc(b->p, cap);
  if (np == NULL) return SSE_ENOMEM;
  b->p = np;
  b->cap = cap;
  return SSE_OK;
}

int sse_buf_append(sse_buf *b, const char *s, size_t n) {
  if (n == 0) return SSE_OK;
  if (sse_buf_reserve(b, n) != SSE_OK) return SSE_ENOMEM;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return SSE_OK;
}

void sse_buf_free(sse_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/*
 * sse.c -- Server-Sent Events parser (WHATWG HTML, "event stream
 * interpretation").
 *
 * How it works: sse_feed scans each chunk for line ends (CR, LF or CRLF)
 * with memchr.
 * A line found whole inside the chunk is interpreted in place, without a
 * copy; only the unfinished tail of a chunk is kept in p->line, so the work
 * done is linear in the input however it is split. A CR that ends a chunk
 * sets skip_lf so that an LF opening the next chunk is not read as a second
 * line end. The UTF-8 BOM is matched byte by byte at stream start, so it too
 * may arrive split. Field lines feed the data, type and id buffers; a blank
 * line dispatches the event through the callback.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#define RETRY_MAX 0x7fffffffL

static const unsigned char BOM[3] = { 0xEF, 0xBB, 0xBF };

static int buf_set(sse_buf *b, const char *s, size_t n) {
  b->len = 0;
  return sse_buf_append(b, s, n);
}


void sse_init(sse_parser *p, size_t max_event_size, sse_event_fn fn, void *ud) {
  memset(p, 0, sizeof *p);
  p->on_event = fn;
  p->ud = ud;
  p->max_event_size = max_event_size ? max_event_size : (size_t)-1;
  p->retry = -1;
}

void sse_free(sse_parser *p) {
  sse_buf_free(&p->line);
  sse_buf_free(&p->data);
  sse_buf_free(&p->type);
  sse_buf_free(&p->id);
  sse_buf_free(&p->last_id);
}

void sse_reset(sse_parser *p) {
  p->line.len = p->data.len = p->type.len = 0;
  p->event_bytes = 0;
  p->error = SSE_OK;
  p->bom = 0;
  p->skip_lf = 0;
  p->id_own = 0;
  /* An id field of the dropped partial event never took effect. Copying the
     string back into the buffer cannot fail: the buffer held at least as much
     before, or last_id is empty. */
  if (buf_set(&p->id, p->last_id.p, p->last_id.len) != SSE_OK) p->id.len = 0;
}

/* A blank line: publish the last event ID, then dispatch if there is data. */
static int dispatch(sse_parser *p) {
  sse_event ev;
  int rc = SSE_OK;
  p->event_bytes = 0;
  if (p->id.len != p->last_id.len ||
      (p->id.len && memcmp(p->id.p, p->last_id.p, p->id.len) != 0)) {
    if (buf_set(&p->last_id, p->id.p, p->id.len) != SSE_OK) return SSE_ENOMEM;
  }
  ev.id_own = p->id_own;
  p->id_own = 0;
  if (p->data.len == 0) {
    p->type.len = 0;
    return SSE_OK;
  }
  p->data.len--; /* every data line appended an LF; drop the last one */
  if (p->type.len) {
    ev.type = p->type.p;
    ev.type_len = p->type.len;
  } else {
    ev.type = "message";
    ev.type_len = 7;
  }
  ev.data = p->data.p;
  ev.data_len = p->data.len;
  ev.id = p->last_id.len ? p->last_id.p : "";
  ev.id_len = p->last_id.len;
  if (p->on_event && p->on_event(p->ud, &ev) != 0) rc = SSE_ECALLBACK;
  p->data.len = 0;
  p->type.len = 0;
  return rc;
}

/* True when the n bytes of s are all ASCII digits (and there is at least one). */
static int all_digits(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* Interpret one line (without its line end). */
static int process_line(sse_parser *p, const char *s, size_t n) {
  const char *colon, *value;
  size_t name_len, value_len;
  if (n == 0) return dispatch(p);
  if (n > p->max_event_size) return SSE_ETOOBIG;
  if (s[0] == ':') return SSE_OK; /* comment */
  p->event_bytes += n + 1;
  if (p->event_bytes > p->max_event_size) return SSE_ETOOBIG;
  colon = memchr(s, ':', n);
  if (colon) {
    name_len = (size_t)(colon - s);
    value = colon + 1;
    value_len = n - name_len - 1;
    if (value_len && *value == ' ') {
      value++;
      value_len--;
    }
  } else {
    name_len = n;
    value = s + n;
    value_len = 0;
  }
  switch (name_len) {
  case 2:
    if (memcmp(s, "id", 2) == 0 && memchr(value, '\0', value_len) == NULL)
    {
      p->id_own = 1;
      return buf_set(&p->id, value, value_len);
    }
    break;
  case 4:
    if (memcmp(s, "data", 4) == 0) {
      if (sse_buf_reserve(&p->data, value_len + 1) != SSE_OK) return SSE_ENOMEM;
      memcpy(p->data.p + p->data.len, value, value_len);
      p->data.len += value_len;
      p->data.p[p->data.len++] = '\n';
    }
    break;
  case 5:
    if (memcmp(s, "event", 5) == 0) return buf_set(&p->type, value, value_len);
    if (memcmp(s, "retry", 5) == 0 && all_digits(value, value_len)) {
      long r = 0;
      size_t i;
      for (i = 0; i < value_len; i++) { /* saturates instead of overflowing */
        long digit = value[i] - '0';
        if (r > (RETRY_MAX - digit) / 10) {
          r = RETRY_MAX;
          break;
        }
        r = r * 10 + digit;
      }
      p->retry = r;
    }
    break;
  default:
    break;
  }
  return SSE_OK;
}

/* Finish a line whose start is in p->line and whose rest is s[0..n). */
static int finish_buffered_line(sse_parser *p, const char *s, size_t n) {
  int rc;
  if (n > p->max_event_size || p->line.len > p->max_event_size - n) return SSE_ETOOBIG;
  if (sse_buf_append(&p->line, s, n) != SSE_OK) return SSE_ENOMEM;
  rc = process_line(p, p->line.p, p->line.len);
  p->line.len = 0;
  return rc;
}

int sse_feed(sse_parser *p, const char *bytes, size_t n) {
  size_t i = 0, lf = 0;
  int lf_known = 0; /* lf: where the next LF at or after i is (n: none) */
  int rc;
  if (p->error) return p->error;
  while (p->bom < 3 && i < n) {
    if ((unsigned char)bytes[i] == BOM[p->bom]) {
      p->bom++;
      i++;
    } else {
      /* Not a BOM after all: the bytes matched so far start the first line. */
      if (p->bom && sse_buf_append(&p->line, (const char *)BOM, p->bom) != SSE_OK) {
        rc = SSE_ENOMEM;
        goto fail;
      }
      p->bom = 3;
    }
  }
  if (p->skip_lf && i < n) {
    p->skip_lf = 0;
    if (bytes[i] == '\n') i++;
  }
  while (i < n) {
    /* The next line end is the first CR before the next LF, else that LF.
       memchr finds both fast; the LF position is reused until passed, so a
       stream of CR-only line ends is still scanned once. */
    size_t eol;
    const char *cr;
    if (!lf_known || lf < i) {
      const char *q = memchr(bytes + i, '\n', n - i);
      lf = q ? (size_t)(q - bytes) : n;
      lf_known = 1;
    }
    cr = memchr(bytes + i, '\r', lf - i);
    eol = cr ? (size_t)(cr - bytes) : lf;
    if (eol == n) { /* unfinished line: keep it for the next chunk */
      if (p->line.len > p->max_event_size || n - i > p->max_event_size - p->line.len) {
        rc = SSE_ETOOBIG;
        goto fail;
      }
      if (sse_buf_append(&p->line, bytes + i, n - i) != SSE_OK) {
        rc = SSE_ENOMEM;
        goto fail;
      }
      break;
    }
    if (p->line.len)
      rc = finish_buffered_line(p, bytes + i, eol - i);
    else
      rc = process_line(p, bytes + i, eol - i);
    if (rc != SSE_OK) goto fail;
    i = eol + 1;
    if (bytes[eol] == '\r') {
      if (i == n)
        p->skip_lf = 1;
      else if (bytes[i] == '\n')
        i++;
    }
  }
  return SSE_OK;
fail:
  p->error = rc;
  p->line.len = 0;
  return rc;
}

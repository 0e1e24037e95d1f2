/*
 * sse.c -- Server-Sent Events parser (WHATWG HTML, "event stream
 * interpretation").
 *
 * How it works: sse_feed scans each chunk for line ends (CR, LF or CRLF):
 * a line's first 16 bytes at once, the rest of a longer one with memchr (or,
 * while where the chunk's next CR is is not known, 240 more bytes the same
 * way first: a CRLF line would otherwise cost two memchr calls, one for each).
 * A line found whole inside the chunk is interpreted in place, without a
 * copy; only the unfinished tail of a chunk is kept in p->line, so the work
 * done is linear in the input however it is split. The first data line of
 * an event is not copied either (data_ref): most events have one data line,
 * and an event dispatched in the chunk that carried it reaches the callback
 * straight from the caller's bytes. A second data line, or the end of the
 * chunk, copies it into p->data. A line completed from p->line moves to
 * p->held instead of being copied, so a long event split over many chunks is
 * copied once on its way in, not twice. A CR that ends a chunk
 * sets skip_lf so that an LF opening the next chunk is not read as a second
 * line end. The blank line that ends an event, right after a line ended the
 * same way (LF LF, CRLF CRLF), dispatches it there, without a search. The
 * UTF-8 BOM is matched byte by byte at stream start, so it too may arrive
 * split. Field lines feed the data, type and id buffers; a blank
 * line dispatches the event through the callback.
 */
#include "sse.h"
#include "scan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MAX 0x7fffffffL

/* The per-line functions are inlined into sse_feed's loop, where most lines go. */
#if defined(__GNUC__)
#define SSE_INLINE static inline __attribute__((always_inline))
#else
#define SSE_INLINE static inline
#endif

static const unsigned char BOM[3] = { 0xEF, 0xBB, 0xBF };

/* Copy n <= 16 bytes from s to d, which do not overlap, without a call:
   two fixed-size copies that overlap each other in the middle. */
SSE_INLINE void copy_short(char *d, const char *s, size_t n) {
  if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    memcpy(d, &a, 4);
    memcpy(d + n - 4, &b, 4);
  } else if (n) {
    d[0] = s[0];
    d[n / 2] = s[n / 2];
    d[n - 1] = s[n - 1];
  }
}

/* Make b hold exactly the n bytes at s. Field values are short and the
   buffers keep their memory, so the copy is done here, not through
   sse_buf_append, whenever it fits. */
SSE_INLINE int buf_set(sse_buf *b, const char *s, size_t n) {
  if (n <= b->cap) {
    if (n <= 16)
      copy_short(b->p, s, n);
    else
      memcpy(b->p, s, n);
    b->len = n;
    return SSE_OK;
  }
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
  sse_buf_free(&p->held);
}

void sse_reset(sse_parser *p) {
  p->line.len = p->data.len = p->type.len = 0;
  p->data_ref = NULL;
  p->ref_held = 0;
  p->event_bytes = 0;
  p->error = SSE_OK;
  p->bom = 0;
  p->skip_lf = 0;
  p->id_own = 0; /* an id field of the dropped partial event never takes effect */
}

/* Copy a data line still in the caller's chunk into p->data, with its LF. */
static int keep_data_ref(sse_parser *p) {
  const char *ref = p->data_ref;
  size_t n = p->data_ref_len;
  if (ref == NULL) return SSE_OK;
  p->data_ref = NULL;
  p->ref_held = 0;
  if (sse_buf_reserve(&p->data, n + 1) != SSE_OK) return SSE_ENOMEM;
  memcpy(p->data.p, ref, n);
  p->data.p[n] = '\n';
  p->data.len = n + 1;
  return SSE_OK;
}

/* A blank line: publish the last event ID, then dispatch if there is data. */
SSE_INLINE int dispatch(sse_parser *p) {
  sse_event ev;
  int rc = SSE_OK;
  p->event_bytes = 0;
  ev.id_own = p->id_own;
  if (p->id_own) { /* the id field's value becomes the last event ID: swap, no copy */
    sse_buf t = p->last_id;
    p->last_id = p->id;
    p->id = t;
    p->id_own = 0;
  }
  if (p->data_ref) {
    ev.data = p->data_ref;
    ev.data_len = p->data_ref_len;
  } else if (p->data.len == 0) {
    p->type.len = 0;
    return SSE_OK;
  } else {
    ev.data = p->data.p;
    ev.data_len = p->data.len - 1; /* every data line appended an LF; drop the last one */
  }
  if (p->type.len) {
    ev.type = p->type.p;
    ev.type_len = p->type.len;
  } else {
    ev.type = "message";
    ev.type_len = 7;
  }
  ev.id = p->last_id.len ? p->last_id.p : "";
  ev.id_len = p->last_id.len;
  if (p->on_event && p->on_event(p->ud, &ev) != 0) rc = SSE_ECALLBACK;
  p->data.len = 0;
  p->type.len = 0;
  p->data_ref = NULL;
  if (p->ref_held && p->held.cap > 1024 * 1024) sse_buf_free(&p->held); /* give a long event's memory back */
  p->ref_held = 0;
  return rc;
}

/* The first CR or LF among the first bytes of s[0..n), or n: most lines are
   short (ids, event types, blank lines, small data). */
SSE_INLINE size_t find_eol_short(const char *s, size_t n) {
  return scan_either(s, n, '\n', '\r');
}
#define SHORT_LINE 16 /* bytes looked at by find_eol_short first */
#define MEDIUM_LINE 240 /* bytes after them looked at the same way before memchr takes over */

/* The first c in s[from..n), or n. */
SSE_INLINE size_t find_from(const char *s, size_t n, size_t from, char c) {
  const char *q = memchr(s + from, c, n - from);
  return q ? (size_t)(q - s) : n;
}

/* True when the word v holds a zero byte (8 bytes; 4 for the 32-bit one). */
#define HAS_ZERO64(v) ((((v)-0x0101010101010101ULL) & ~(v)&0x8080808080808080ULL) != 0)
#define HAS_ZERO32(v) ((((v)-0x01010101U) & ~(v)&0x80808080U) != 0)

/* True when the n bytes of s hold a NUL. IDs are short: up to 16 bytes are
   looked at as two words that may overlap, longer ones with memchr. */
SSE_INLINE int has_nul(const char *s, size_t n) {
  if (n > 16) return memchr(s, '\0', n) != NULL;
  if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + n - 8, 8);
    return HAS_ZERO64(a) || HAS_ZERO64(b);
  }
  if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    return HAS_ZERO32(a) || HAS_ZERO32(b);
  }
  return n && (s[0] == '\0' || s[n / 2] == '\0' || s[n - 1] == '\0');
}

/* True when the n bytes of s are all ASCII digits (and there is at least one). */
static int all_digits(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* An id field's value: it becomes the event's ID, unless it holds a NUL. */
SSE_INLINE int field_id(sse_parser *p, const char *value, size_t value_len) {
  if (has_nul(value, value_len)) return SSE_OK;
  p->id_own = 1;
  return buf_set(&p->id, value, value_len);
}

/* A data field's value; where as for process_line. */
SSE_INLINE int field_data(sse_parser *p, const char *value, size_t value_len, int where) {
  if (where && p->data.len == 0 && p->data_ref == NULL) {
    p->data_ref = value;
    p->data_ref_len = value_len;
    p->ref_held = where == 2;
    return SSE_OK;
  }
  if (keep_data_ref(p) != SSE_OK) return SSE_ENOMEM;
  if (sse_buf_reserve(&p->data, value_len + 1) != SSE_OK) return SSE_ENOMEM;
  memcpy(p->data.p + p->data.len, value, value_len);
  p->data.len += value_len;
  p->data.p[p->data.len++] = '\n';
  return SSE_OK;
}

/* A retry field's value: a reconnection time in ms when it is all digits. */
static void field_retry(sse_parser *p, const char *value, size_t value_len) {
  long r = 0;
  size_t i;
  if (!all_digits(value, value_len)) return;
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

/* Interpret one line (without its line end). where: 0 s is copied if kept,
   1 s lies in the caller's chunk (valid until sse_feed returns), 2 s lies in
   p->held (valid until the next line is held). */
SSE_INLINE int process_line(sse_parser *p, const char *s, size_t n, int where) {
  const char *value;
  size_t name_len, value_len;
  if (n == 0) return dispatch(p);
  if (s[0] == ':') return n > p->max_event_size ? SSE_ETOOBIG : SSE_OK; /* comment */
  /* A field line counts toward the event, and so is never longer than it may be. */
  p->event_bytes += n + 1;
  if (p->event_bytes > p->max_event_size) return SSE_ETOOBIG;
  /* Only the names data, event, id and retry mean anything: the first byte
     says which one the line may be, and the name must end at a colon or at
     the end of the line. Any other line is a field we do not know. Written
     as servers write them, with one space after the colon, the three that
     most lines use are told by their first bytes alone. */
  switch (s[0]) {
  case 'd':
    if (n >= 6 && memcmp(s, "data: ", 6) == 0) return field_data(p, s + 6, n - 6, where);
    name_len = 4;
    break;
  case 'i':
    if (n >= 4 && memcmp(s, "id: ", 4) == 0) return field_id(p, s + 4, n - 4);
    name_len = 2;
    break;
  case 'e':
    if (n >= 7 && memcmp(s, "event: ", 7) == 0) return buf_set(&p->type, s + 7, n - 7);
    name_len = 5;
    break;
  case 'r': name_len = 5; break;
  default: return SSE_OK;
  }
  if (n < name_len || (n > name_len && s[name_len] != ':')) return SSE_OK;
  if (n > name_len) {
    value = s + name_len + 1;
    value_len = n - name_len - 1;
    if (value_len && *value == ' ') {
      value++;
      value_len--;
    }
  } else {
    value = s + n;
    value_len = 0;
  }
  switch (name_len) {
  case 2:
    if (memcmp(s, "id", 2) == 0) return field_id(p, value, value_len);
    break;
  case 4:
    if (memcmp(s, "data", 4) == 0) return field_data(p, value, value_len, where);
    break;
  case 5:
    if (memcmp(s, "event", 5) == 0) return buf_set(&p->type, value, value_len);
    if (memcmp(s, "retry", 5) == 0) field_retry(p, value, value_len);
    break;
  default:
    break;
  }
  return SSE_OK;
}

/* Finish a line whose start is in p->line and whose rest is s[0..n). */
static int finish_buffered_line(sse_parser *p, const char *s, size_t n) {
  sse_buf held;
  int rc;
  if (n > p->max_event_size || p->line.len > p->max_event_size - n) return SSE_ETOOBIG;
  if (sse_buf_append(&p->line, s, n) != SSE_OK) return SSE_ENOMEM;
  if (p->ref_held && keep_data_ref(p) != SSE_OK) return SSE_ENOMEM; /* held is about to change */
  held = p->held; /* swap: the line moves to held, held's memory serves the next line */
  p->held = p->line;
  p->line = held;
  p->line.len = 0;
  rc = process_line(p, p->held.p, p->held.len, 2);
  return rc;
}

int sse_feed(sse_parser *p, const char *bytes, size_t n) {
  /* lf, cr: where the next LF, CR is (n: none), as last looked for; before
     a long line's start (0 at first) means not known */
  size_t i = 0, lf = 0, cr = 0;
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
    /* The next line end is the first CR or LF. The line's first 16 bytes
       are looked at for both at once; past them memchr finds each fast, and
       each position is reused until passed: a chunk of long lines with no CR
       at all is searched for one once, and a stream of long CR-only lines is
       still scanned once for LF. */
    size_t eol;
    if (n - i <= SHORT_LINE) { /* the chunk's last bytes */
      eol = i + find_eol_short(bytes + i, n - i);
    } else if ((eol = i + find_eol_short(bytes + i, SHORT_LINE)) == i + SHORT_LINE) {
      /* a long line: past its first bytes, memchr */
      size_t from = i + SHORT_LINE; /* no CR or LF before it */
      if (cr < from && p->line.len == 0) {
        /* Where the next CR is is not known (not looked for yet, or passed):
           lines may well end in CRLF. The next bytes are looked at for both
           at once, which costs less than a memchr for each; an LF line then
           finds out where the next CR is, for the lines after it. Not for
           the rest of a line begun in an earlier chunk: that one is long. */
        size_t near = n - from < MEDIUM_LINE ? n - from : MEDIUM_LINE;
        eol = from + scan_either(bytes + from, near, '\n', '\r');
        if (eol < from + near || eol == n) {
          if (eol < n && bytes[eol] == '\n') cr = find_from(bytes, n, eol, '\r'); /* an LF line */
          goto found;
        }
        from = eol;
      }
      if (lf < from) lf = find_from(bytes, n, from, '\n');
      if (cr < from) cr = find_from(bytes, n, from, '\r');
      eol = cr < lf ? cr : lf;
    }
  found:
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
      rc = process_line(p, bytes + i, eol - i, 1);
    if (rc != SSE_OK) goto fail;
    i = eol + 1;
    if (bytes[eol] == '\r') {
      if (i == n) {
        p->skip_lf = 1;
      } else if (bytes[i] == '\n') {
        i++;
        if (n - i >= 2 && bytes[i] == '\r' && bytes[i + 1] == '\n') { /* CRLF CRLF: the same */
          rc = dispatch(p);
          if (rc != SSE_OK) goto fail;
          i += 2;
        }
      }
    } else if (i < n && bytes[i] == '\n') { /* LF LF: the blank line that ends an event */
      rc = dispatch(p);
      if (rc != SSE_OK) goto fail;
      i++;
    }
  }
  if (p->data_ref && !p->ref_held && keep_data_ref(p) != SSE_OK) { /* the chunk is the caller's only until we return */
    rc = SSE_ENOMEM;
    goto fail;
  }
  return SSE_OK;
fail:
  p->error = rc;
  p->line.len = 0;
  p->data_ref = NULL;
  p->ref_held = 0;
  return rc;
}

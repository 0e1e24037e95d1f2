/*
 * sse.h -- a Server-Sent Events parser in plain C (no Lua).
 *
 * Implements the "event stream interpretation" of the WHATWG HTML standard.
 * Bytes are fed in chunks of any size; every event completed by a chunk is
 * reported through a callback, in order. The parser owns all its memory and
 * never holds more than about max_event_size bytes of pending input.
 */
#ifndef AGENTRUNS_SSE_H
#define AGENTRUNS_SSE_H

#include <stddef.h>

/* One dispatched event. Pointers are valid only during the callback. */
typedef struct sse_event {
  const char *type;   /* "message" unless the stream set an event type */
  size_t type_len;
  const char *data;   /* data lines joined with LF, no trailing LF */
  size_t data_len;
  const char *id;     /* the last event ID at dispatch; id_len 0 when none */
  size_t id_len;
  int id_own;         /* the event's own lines set the ID (else it carried over) */
} sse_event;

/* Return 0 to go on, non-zero to stop: sse_feed then returns SSE_ECALLBACK. */
typedef int (*sse_event_fn)(void *ud, const sse_event *ev);

enum {
  SSE_OK = 0,
  SSE_ETOOBIG = 1,    /* a line or an event grew past max_event_size */
  SSE_ENOMEM = 2,     /* allocation failed */
  SSE_ECALLBACK = 3   /* the callback asked to stop */
};

/* Growable byte buffer shared by the parser and its users. */
typedef struct sse_buf {
  char *p;
  size_t len, cap;
} sse_buf;

typedef struct sse_parser {
  sse_event_fn on_event;
  void *ud;
  size_t max_event_size;
  sse_buf line;       /* an incomplete line carried over from the last chunk */
  sse_buf data;       /* data buffer of the event being built */
  sse_buf type;       /* event type buffer */
  sse_buf id;         /* the value of this event's id field, while id_own (the WHATWG
                         "last event ID buffer" is this while id_own, else last_id) */
  sse_buf last_id;    /* last event ID string: the buffer as of the last blank line */
  sse_buf held;       /* the last line completed from p->line, kept while data_ref points in it */
  const char *data_ref; /* the event's only data line so far, not yet copied to data: */
  size_t data_ref_len;  /* non-NULL while data is empty, and then it stands for data */
  unsigned char ref_held; /* data_ref points into held (else into the caller's chunk) */
  size_t event_bytes; /* bytes of field lines received for the event being built */
  long retry;         /* reconnection time in ms, -1 while never set */
  int error;          /* sticky error code, SSE_OK while healthy */
  unsigned char bom;  /* bytes of a leading UTF-8 BOM matched so far; 3 = done */
  unsigned char skip_lf; /* the previous chunk ended on CR */
  unsigned char id_own;  /* an id field came since the last blank line */
} sse_parser;

/*
 * Initialise p. max_event_size bounds one event as received: the bytes of its
 * field lines with their line ends, up to the blank line that ends it. Any
 * single line (comments too) is bounded by the same figure. 0 means no limit.
 * Never fails.
 */
void sse_init(sse_parser *p, size_t max_event_size, sse_event_fn fn, void *ud);

/* Free everything p owns; p may be initialised again afterwards. */
void sse_free(sse_parser *p);

/*
 * Parse n bytes. Returns SSE_OK, or an error code that also sticks: later
 * calls return it at once until sse_reset.
 */
int sse_feed(sse_parser *p, const char *bytes, size_t n);

/*
 * Start a new connection: drop the pending line and event, clear the error,
 * expect a BOM again. The last event ID and the retry time are kept, as a
 * reconnecting client needs them.
 */
void sse_reset(sse_parser *p);

/* Buffer helpers (return 0 on success, SSE_ENOMEM on failure). */
int sse_buf_reserve(sse_buf *b, size_t extra);
int sse_buf_append(sse_buf *b, const char *s, size_t n);
void sse_buf_free(sse_buf *b);

#endif

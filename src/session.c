/*
 * session.c -- HTTP over libcurl: agentruns.Session and agentruns.Transfer.
 *
 * A Session is one curl multi handle plus one share handle (connections,
 * DNS, TLS sessions), so every transfer made through it reuses what earlier
 * ones opened. A Transfer is one request on one easy handle. It is either
 * buffered (status, headers and body are collected) or streaming: the body
 * goes straight into an SSEParser userdata and the Lua side pulls completed
 * events with transfer:events(). A streaming response whose status is not
 * 2xx falls back to buffering, so its error body can be read.
 *
 * Nothing in here calls Lua from a libcurl callback: callbacks only copy
 * bytes into C buffers owned by the Transfer userdata, and record failures
 * in it. Lua runs only in the methods, between calls into libcurl. A
 * streaming transfer whose undelivered events pass PAUSE_AT bytes is paused
 * (CURL_WRITEFUNC_PAUSE) until events() drains them, so a fast server cannot
 * fill memory with events the caller has not read.
 *
 * session:perform(wait) drives every transfer of the session: it does the
 * work that is ready and, when nothing finished, waits for activity once,
 * at most `wait` seconds. Blocking callers loop on it; schedulers and host
 * event loops call it with wait = 0.
 *
 * Lifetimes: a Transfer keeps its Session and its parser alive through its
 * user value. The Session keeps a list of its attached transfers so that
 * closing it detaches them first; a transfer's close is idempotent and serves
 * close, __gc and __close.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "agentruns.h"

#define PAUSE_AT (1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define MAX_HEADER_BYTES (256u * 1024u)

enum { T_RUNNING, T_DONE, T_CLOSED };

/* Failures our own callbacks cause, told apart from curl's. */
enum { F_NONE, F_BODY_LIMIT, F_HEADER_LIMIT, F_EVENT_LIMIT, F_MEMORY, F_IDLE, F_CLOSED };

typedef struct agr_session agr_session;

typedef struct agr_transfer {
  CURL *easy;
  agr_session *session;          /* NULL once detached */
  struct agr_transfer *prev, *next;
  struct curl_slist *req_headers;
  agr_parser *parser;            /* streaming transfers only */
  sse_buf body;
  sse_buf headers;               /* "name\0value\0" pairs, names lower-cased */
  size_t max_body;
  long status;                   /* 0 until a final header block arrived */
  double idle_timeout;           /* seconds, 0 = none */
  double last_activity;          /* monotonic seconds */
  CURLcode code;
  int state;
  int failure;
  unsigned char headers_done, sent, paused, events_mode;
  char errbuf[CURL_ERROR_SIZE];
} agr_transfer;

/* A change to the set of sockets a host event loop must watch. */
typedef struct agr_watch {
  curl_socket_t fd;
  int what;                      /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} agr_watch;

struct agr_session {
  CURLM *multi;
  CURLSH *share;
  agr_transfer *head;            /* attached transfers */
  int attached;
  /* Event-loop mode (use_callbacks): what curl asked for since take_watches. */
  int callbacks;
  agr_watch *watches;
  size_t nwatches, capwatches;
  long timer_ms;                 /* the latest timer request; -1 = none */
  int timer_changed;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- libcurl callbacks (no Lua in here) ------------------------------- */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  agr_transfer *t = ud;
  size_t n = size * nmemb;
  t->last_activity = now_seconds();
  if (t->events_mode) {
    int rc;
    if (agr_parser_pending(t->parser) >= PAUSE_AT) {
      t->paused = 1;
      return CURL_WRITEFUNC_PAUSE;
    }
    rc = agr_parser_feed(t->parser, ptr, n);
    if (rc == SSE_OK) return n;
    t->failure = rc == SSE_ETOOBIG ? F_EVENT_LIMIT : F_MEMORY;
    return 0;
  }
  if (n > t->max_body - t->body.len) {
    t->failure = F_BODY_LIMIT;
    return 0;
  }
  if (sse_buf_append(&t->body, ptr, n) != SSE_OK) {
    t->failure = F_MEMORY;
    return 0;
  }
  return n;
}

/* Store a lower-cased header, or note the end of a header block. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  agr_transfer *t = ud;
  size_t n = size * nmemb, name_len, value_len, i;
  const char *name, *value;
  t->last_activity = now_seconds();
  if (agr_status_line(ptr, n)) { /* a new response: forget interim headers */
    t->headers.len = 0;
    t->headers_done = 0;
    return n;
  }
  if (n <= 2 && (n == 0 || ptr[0] == '\r' || ptr[0] == '\n')) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 || status == 0) {
      t->status = status;
      t->headers_done = 1;
      t->events_mode = t->parser != NULL && status >= 200 && status < 300;
    }
    return n;
  }
  if (!agr_header_split(ptr, n, &name, &name_len, &value, &value_len)) return n;
  if (t->headers.len + name_len + value_len + 2 > MAX_HEADER_BYTES) {
    t->failure = F_HEADER_LIMIT;
    return 0;
  }
  if (sse_buf_reserve(&t->headers, name_len + value_len + 2) != SSE_OK) {
    t->failure = F_MEMORY;
    return 0;
  }
  for (i = 0; i < name_len; i++) {
    char c = name[i];
    t->headers.p[t->headers.len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
  }
  t->headers.p[t->headers.len++] = '\0';
  memcpy(t->headers.p + t->headers.len, value, value_len);
  t->headers.len += value_len;
  t->headers.p[t->headers.len++] = '\0';
  return n;
}

/* Called just before the request goes out: from here on it may be seen. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port) {
  agr_transfer *t = ud;
  (void)conn_primary_ip;
  (void)conn_local_ip;
  (void)conn_primary_port;
  (void)conn_local_port;
  t->sent = 1;
  return CURL_PREREQFUNC_OK;
}

/* CURLMOPT_SOCKETFUNCTION: queue the change for take_watches. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  agr_session *s = userp;
  (void)e;
  (void)socketp;
  if (s->nwatches == s->capwatches) {
    size_t cap = s->capwatches ? s->capwatches * 2 : 16;
    agr_watch *nw = realloc(s->watches, cap * sizeof *nw);
    if (nw == NULL) return -1;
    s->watches = nw;
    s->capwatches = cap;
  }
  s->watches[s->nwatches].fd = fd;
  s->watches[s->nwatches].what = what;
  s->nwatches++;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember the latest request. */
static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  agr_session *s = userp;
  (void)m;
  s->timer_ms = timeout_ms;
  s->timer_changed = 1;
  return 0;
}

/* ---- attaching and detaching --------------------------------------------- */

static void unlink_transfer(agr_transfer *t) {
  agr_session *s = t->session;
  if (s == NULL) return;
  curl_multi_remove_handle(s->multi, t->easy);
  /* The share handle may be cleaned up before this easy handle is. */
  curl_easy_setopt(t->easy, CURLOPT_SHARE, NULL);
  if (t->prev) t->prev->next = t->next;
  else s->head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->session = NULL;
  s->attached--;
  if (t->parser) t->parser->owned = 0;
}

/* Mark t finished (curl code or our own failure) and detach it. */
static void finish(agr_transfer *t, CURLcode code) {
  if (t->state != T_RUNNING) return;
  t->code = code;
  t->state = T_DONE;
  unlink_transfer(t);
}

/* Free everything the transfer owns. Idempotent. */
static void transfer_release(agr_transfer *t) {
  if (t->state == T_RUNNING && t->failure == F_NONE) t->failure = F_CLOSED;
  unlink_transfer(t);
  t->state = T_CLOSED;
  if (t->easy) {
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
  }
  curl_slist_free_all(t->req_headers);
  t->req_headers = NULL;
  sse_buf_free(&t->body);
  sse_buf_free(&t->headers);
  t->parser = NULL;
}

/* Collect finished transfers from the multi handle; returns how many. */
static int collect_done(agr_session *s) {
  CURLMsg *msg;
  int left, done = 0;
  while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
    agr_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t) {
      if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
      finish(t, msg->data.result);
      done++;
    }
  }
  return done;
}

/* End transfers that received nothing for longer than their idle timeout. */
static int expire_idle(agr_session *s, double now, double *next_deadline) {
  agr_transfer *t = s->head, *next;
  int done = 0;
  for (; t != NULL; t = next) {
    next = t->next;
    if (t->idle_timeout <= 0 || t->paused) continue;
    if (now - t->last_activity >= t->idle_timeout) {
      t->failure = F_IDLE;
      finish(t, CURLE_OPERATION_TIMEDOUT);
      done++;
    } else if (t->last_activity + t->idle_timeout < *next_deadline) {
      *next_deadline = t->last_activity + t->idle_timeout;
    }
  }
  return done;
}

/* Events parsed but not yet taken, over the session's streaming transfers. */
static size_t events_waiting(const agr_session *s) {
  const agr_transfer *t;
  size_t n = 0;
  for (t = s->head; t != NULL; t = t->next)
    if (t->parser) n += t->parser->batch.n;
  return n;
}

/* ---- Session --------------------------------------------------------------- */

static agr_session *check_session(lua_State *L, int idx) {
  agr_session *s = luaL_checkudata(L, idx, AGR_SESSION_MT);
  if (s->multi == NULL) luaL_argerror(L, idx, "session is closed");
  return s;
}

/* core.session() -> session */
static int session_new(lua_State *L) {
  agr_session *s;
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  s = compat_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, AGR_SESSION_MT); /* born closed: __gc is safe from here */
  s->share = curl_share_init();
  s->multi = curl_multi_init();
  if (s->share == NULL || s->multi == NULL) {
    if (s->multi) curl_multi_cleanup(s->multi);
    if (s->share) curl_share_cleanup(s->share);
    s->multi = NULL;
    s->share = NULL;
    return luaL_error(L, "agentruns: cannot create a curl session");
  }
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return 1;
}

/* Close the session: cancel and detach every transfer, free the handles. */
static int session_close(lua_State *L) {
  agr_session *s = luaL_checkudata(L, 1, AGR_SESSION_MT);
  while (s->head) {
    agr_transfer *t = s->head;
    t->failure = F_CLOSED;
    finish(t, CURLE_ABORTED_BY_CALLBACK);
  }
  if (s->multi) {
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
  }
  if (s->share) {
    curl_share_cleanup(s->share);
    s->share = NULL;
  }
  free(s->watches);
  s->watches = NULL;
  s->nwatches = s->capwatches = 0;
  return 0;
}

/*
 * session:perform([wait]) -> number of transfers still in flight.
 * Does the ready work; if no transfer finished, waits once for activity
 * (at most wait seconds, default 0) and does the work that brought. With
 * no transfer in flight it simply waits, so callers never spin.
 */
static int session_perform(lua_State *L) {
  agr_session *s = check_session(L, 1);
  double wait = luaL_optnumber(L, 2, 0), now, deadline;
  int running = 0, done;
  size_t events;
  CURLMcode mc;
  luaL_argcheck(L, wait >= 0 && wait == wait, 2, "wait must be a non-negative number");
  if (s->callbacks) { /* the host loop waits; here only the due work is done */
    mc = curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    collect_done(s);
    deadline = HUGE_VAL;
    expire_idle(s, now_seconds(), &deadline);
    lua_pushinteger(L, s->attached);
    return 1;
  }
  events = events_waiting(s);
  mc = curl_multi_perform(s->multi, &running);
  if (mc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mc));
  done = collect_done(s);
  now = now_seconds();
  deadline = now + wait;
  done += expire_idle(s, now, &deadline);
  /* Do not wait when this round finished a transfer or parsed new events:
     the caller has work, and a stream paused for its unread events has no
     socket that would end the wait. With nothing attached this just waits. */
  if (done == 0 && wait > 0 && events_waiting(s) == events) {
    double ms = ceil((deadline - now) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 3600000) ms = 3600000;
    mc = curl_multi_poll(s->multi, NULL, 0, (int)ms, NULL);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mc));
    mc = curl_multi_perform(s->multi, &running);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mc));
    collect_done(s);
    deadline = HUGE_VAL;
    expire_idle(s, now_seconds(), &deadline);
  }
  lua_pushinteger(L, s->attached);
  return 1;
}

/*
 * session:use_callbacks(): from now on a host event loop drives the session.
 * curl reports the sockets to watch and the timeouts to keep through
 * take_watches(); the loop calls socket_action() when a socket is ready or
 * the timer fires. perform() then only does due work and never waits.
 */
static int session_use_callbacks(lua_State *L) {
  agr_session *s = check_session(L, 1);
  if (!s->callbacks) {
    if (s->attached > 0)
      return luaL_error(L, "use_callbacks() must come before the session's first transfer");
    s->callbacks = 1;
    s->timer_ms = -1;
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  }
  return 0;
}

/*
 * session:socket_action([fd, events]) -> transfers in flight.
 * fd nil (or absent) means the timer fired. events is a string holding
 * "r" and/or "w" (as luv reports them), or curl's CURL_CSELECT_* bits.
 */
static int session_socket_action(lua_State *L) {
  agr_session *s = check_session(L, 1);
  curl_socket_t fd = CURL_SOCKET_TIMEOUT;
  int mask = 0, running = 0;
  double deadline = HUGE_VAL;
  CURLMcode mc;
  if (!s->callbacks) return luaL_error(L, "socket_action() needs use_callbacks() first");
  if (!lua_isnoneornil(L, 2)) {
    fd = (curl_socket_t)luaL_checkinteger(L, 2);
    if (lua_type(L, 3) == LUA_TSTRING) {
      const char *ev = lua_tostring(L, 3);
      if (strchr(ev, 'r')) mask |= CURL_CSELECT_IN;
      if (strchr(ev, 'w')) mask |= CURL_CSELECT_OUT;
    } else {
      mask = (int)luaL_optinteger(L, 3, 0);
    }
  }
  mc = curl_multi_socket_action(s->multi, fd, mask, &running);
  if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
  collect_done(s);
  expire_idle(s, now_seconds(), &deadline);
  lua_pushinteger(L, s->attached);
  return 1;
}

/*
 * session:take_watches() -> changes, timer_ms
 * changes: array of { fd, "in" | "out" | "inout" | "remove" } in the order
 * curl asked; timer_ms: the newest timer request (-1: stop the timer) or nil
 * when it did not change. Both are consumed.
 */
static int session_take_watches(lua_State *L) {
  agr_session *s = check_session(L, 1);
  static const char *const names[] = { "none", "in", "out", "inout", "remove" };
  size_t i;
  lua_createtable(L, (int)s->nwatches, 0);
  for (i = 0; i < s->nwatches; i++) {
    int what = s->watches[i].what;
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)s->watches[i].fd);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, names[what >= 0 && what <= 4 ? what : 0]);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  s->nwatches = 0;
  if (s->timer_changed) {
    s->timer_changed = 0;
    lua_pushinteger(L, (lua_Integer)s->timer_ms);
  } else {
    lua_pushnil(L);
  }
  return 2;
}

/* session:pending() -> number of transfers in flight */
static int session_pending(lua_State *L) {
  agr_session *s = check_session(L, 1);
  lua_pushinteger(L, s->attached);
  return 1;
}

static int session_tostring(lua_State *L) {
  agr_session *s = luaL_checkudata(L, 1, AGR_SESSION_MT);
  if (s->multi == NULL)
    lua_pushfstring(L, "%s (closed)", AGR_SESSION_MT);
  else
    lua_pushfstring(L, "%s: %p", AGR_SESSION_MT, (void *)s);
  return 1;
}

/* ---- building a request ------------------------------------------------ */

static double opt_seconds(lua_State *L, int idx, const char *field) {
  double v = 0;
  lua_getfield(L, idx, field);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "bad argument #1 to 'request' (%s must be a number)", field);
    v = lua_tonumber(L, -1);
    if (!(v >= 0 && v <= 1e9))
      luaL_error(L, "bad argument #1 to 'request' (%s must be a non-negative number)", field);
  }
  lua_pop(L, 1);
  return v;
}

/* Seconds as whole milliseconds, clamped to what a long holds. */
static long ms_long(double seconds) {
  double ms = ceil(seconds * 1000);
  return ms >= (double)LONG_MAX ? LONG_MAX : (long)ms;
}

/* Method names are upper-case tokens: GET, POST, PUT, DELETE, ... */
static int valid_method(const char *m) {
  size_t i;
  for (i = 0; m[i]; i++)
    if (m[i] < 'A' || m[i] > 'Z') return 0;
  return i > 0 && i <= 16;
}

/* "Name: value" with a token name and no CR, LF or NUL anywhere. */
static int valid_header(const char *h, size_t n) {
  const char *name, *value;
  size_t nl, vl;
  if (memchr(h, '\r', n) || memchr(h, '\n', n) || memchr(h, '\0', n)) return 0;
  return agr_header_split(h, n, &name, &nl, &value, &vl);
}

/* True when the list already names a Content-Type. */
static int has_content_type(const struct curl_slist *h) {
  for (; h != NULL; h = h->next)
    if (curl_strnequal(h->data, "content-type:", 13)) return 1;
  return 0;
}

static void set_headers(lua_State *L, agr_transfer *t, int has_body, int empty_post) {
  lua_getfield(L, 1, "headers");
  if (!lua_isnil(L, -1)) {
    int i, n;
    if (!lua_istable(L, -1)) luaL_error(L, "bad argument #1 to 'request' (headers must be a table)");
    n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *h;
      struct curl_slist *nl;
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "bad argument #1 to 'request' (headers[%d] must be a string)", i);
      h = lua_tolstring(L, -1, &len);
      if (!valid_header(h, len))
        luaL_error(L, "bad argument #1 to 'request' (headers[%d] is not a valid header line)", i);
      nl = curl_slist_append(t->req_headers, h);
      if (nl == NULL) luaL_error(L, "agentruns: out of memory");
      t->req_headers = nl;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (has_body) { /* no 100-continue round trip: the APIs never ask for it */
    struct curl_slist *nl = curl_slist_append(t->req_headers, "Expect:");
    if (nl == NULL) luaL_error(L, "agentruns: out of memory");
    t->req_headers = nl;
  } else if (empty_post && !has_content_type(t->req_headers)) {
    /* an empty POST body is sent as "" and curl would call it a form */
    struct curl_slist *nl = curl_slist_append(t->req_headers, "Content-Type:");
    if (nl == NULL) luaL_error(L, "agentruns: out of memory");
    t->req_headers = nl;
  }
}

/*
 * session:request{ url =, method =, headers = {"Name: value", ...}, body =,
 *                  timeout =, connect_timeout =, idle_timeout =,
 *                  max_body_size =, stream = <SSEParser>,
 *                  fresh_connect = <boolean> } -> transfer
 * The transfer starts with the session's next perform.
 */
static int session_request(lua_State *L) {
  agr_session *s = check_session(L, 1);
  agr_transfer *t;
  const char *url, *method = "GET", *body = NULL;
  size_t body_len = 0;
  double timeout, connect_timeout, max_body = DEFAULT_MAX_BODY;
  CURL *e;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_insert(L, 1); /* the options table at 1, the session at 2 */

  lua_getfield(L, 1, "url");
  url = lua_tostring(L, -1);
  if (lua_type(L, -1) != LUA_TSTRING ||
      (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
      strpbrk(url, "\r\n ") != NULL)
    return luaL_error(L, "bad argument #1 to 'request' (url must be an http:// or https:// URL)");
  lua_getfield(L, 1, "method");
  if (!lua_isnil(L, -1)) {
    method = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || !valid_method(method))
      return luaL_error(L, "bad argument #1 to 'request' (method must be an upper-case HTTP method)");
  }
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "bad argument #1 to 'request' (body must be a string)");
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
      return luaL_error(L, "bad argument #1 to 'request' (a %s request has no body)", method);
    body = lua_tolstring(L, -1, &body_len);
  }
  timeout = opt_seconds(L, 1, "timeout");
  connect_timeout = opt_seconds(L, 1, "connect_timeout");
  lua_getfield(L, 1, "max_body_size");
  if (!lua_isnil(L, -1)) {
    max_body = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(max_body >= 0 && max_body <= 1e15))
      return luaL_error(L, "bad argument #1 to 'request' (max_body_size must be a non-negative number)");
  }
  lua_pop(L, 1);

  /* Born closed: whatever fails below, __gc frees what was made. */
  t = compat_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = T_CLOSED;
  luaL_setmetatable(L, AGR_TRANSFER_MT);
  lua_createtable(L, 2, 0); /* user value: keeps session and parser alive */
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 1);
  lua_getfield(L, 1, "stream");
  if (!lua_isnil(L, -1)) {
    if (luaL_testudata(L, -1, AGR_PARSER_MT) == NULL)
      return luaL_error(L, "bad argument #1 to 'request' (stream must be an SSE parser)");
    if (((agr_parser *)lua_touserdata(L, -1))->owned)
      return luaL_error(L, "bad argument #1 to 'request' (the parser is in use by a running transfer)");
    t->parser = lua_touserdata(L, -1);
  }
  lua_rawseti(L, -2, 2);
  compat_setuservalue(L, -2);

  t->max_body = (size_t)max_body;
  t->idle_timeout = opt_seconds(L, 1, "idle_timeout");
  set_headers(L, t, body != NULL, body == NULL && strcmp(method, "POST") == 0);
  t->easy = e = curl_easy_init();
  if (e == NULL) return luaL_error(L, "agentruns: cannot create a curl handle");

  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->req_headers);
  lua_getfield(L, 1, "fresh_connect");
  if (lua_toboolean(L, -1)) {
    /* libcurl silently re-sends a request whose reused connection closed
       without answering; for a request that must not run twice, only a new
       connection rules that out. */
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  }
  lua_pop(L, 1);
  if (t->parser) {
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body);
  }
  if (timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms_long(timeout));
  if (connect_timeout > 0) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms_long(connect_timeout));
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)
      return luaL_error(L, "agentruns: out of memory");
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
  }

  /* the share handle last: an easy handle that holds it must reach the multi */
  curl_easy_setopt(e, CURLOPT_SHARE, s->share);
  if (curl_multi_add_handle(s->multi, e) != CURLM_OK) {
    curl_easy_setopt(e, CURLOPT_SHARE, NULL);
    return luaL_error(L, "agentruns: cannot start the transfer");
  }
  if (t->parser) t->parser->owned = 1;
  t->state = T_RUNNING;
  t->session = s;
  t->next = s->head;
  if (s->head) s->head->prev = t;
  s->head = t;
  s->attached++;
  t->last_activity = now_seconds();
  return 1;
}

/* ---- Transfer ---------------------------------------------------------- */

static agr_transfer *check_transfer(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, AGR_TRANSFER_MT);
}

/* Push the response headers as a table; repeated names are joined by ", ". */
static void push_headers(lua_State *L, const agr_transfer *t) {
  size_t off = 0;
  lua_newtable(L);
  while (off < t->headers.len) {
    const char *name = t->headers.p + off;
    size_t nl = strlen(name);
    const char *value = name + nl + 1;
    size_t vl = strlen(value);
    off += nl + vl + 2;
    lua_pushlstring(L, name, nl);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, value, vl);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, value, vl);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

/* The kind and message of a failed transfer. */
static const char *failure_kind(const agr_transfer *t) {
  switch (t->failure) {
  case F_BODY_LIMIT: case F_HEADER_LIMIT: case F_EVENT_LIMIT: return "limit";
  case F_MEMORY: return "memory";
  case F_IDLE: return "timeout";
  case F_CLOSED: return "canceled";
  default: break;
  }
  switch (t->code) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_FILESIZE_EXCEEDED: return "limit";
  case CURLE_ABORTED_BY_CALLBACK: return "canceled";
  default: return "network";
  }
}

static void push_failure(lua_State *L, agr_transfer *t) {
  char msg[CURL_ERROR_SIZE + 160];
  switch (t->failure) {
  case F_BODY_LIMIT:
    snprintf(msg, sizeof msg, "response body exceeds max_body_size (%.0f bytes)", (double)t->max_body);
    break;
  case F_HEADER_LIMIT:
    snprintf(msg, sizeof msg, "response headers exceed %u bytes", MAX_HEADER_BYTES);
    break;
  case F_EVENT_LIMIT:
    snprintf(msg, sizeof msg, "%s (%.0f bytes)", agr_sse_strerror(SSE_ETOOBIG),
             t->parser ? (double)t->parser->p.max_event_size : 0.0);
    break;
  case F_MEMORY:
    snprintf(msg, sizeof msg, "out of memory while receiving the response");
    break;
  case F_IDLE:
    snprintf(msg, sizeof msg, "no data received for %g seconds (idle_timeout)", t->idle_timeout);
    break;
  case F_CLOSED:
    snprintf(msg, sizeof msg, "transfer canceled");
    break;
  default:
    if (t->code == CURLE_FILESIZE_EXCEEDED)
      snprintf(msg, sizeof msg, "response body exceeds max_body_size (%.0f bytes)", (double)t->max_body);
    else if (t->errbuf[0])
      snprintf(msg, sizeof msg, "%s (%s)", curl_easy_strerror(t->code), t->errbuf);
    else
      snprintf(msg, sizeof msg, "%s", curl_easy_strerror(t->code));
    break;
  }
  agr_new_error(L, failure_kind(t), msg);
  lua_pushinteger(L, (lua_Integer)t->code);
  lua_setfield(L, -2, "curl_code");
  lua_pushboolean(L, t->sent);
  lua_setfield(L, -2, "sent");
  if (t->status) {
    lua_pushinteger(L, (lua_Integer)t->status);
    lua_setfield(L, -2, "status");
  }
}

/* transfer:done() -> boolean */
static int transfer_done(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  lua_pushboolean(L, t->state != T_RUNNING);
  return 1;
}

/* transfer:status() -> HTTP status once the headers arrived, else nil */
static int transfer_status(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->headers_done && t->status) lua_pushinteger(L, (lua_Integer)t->status);
  else lua_pushnil(L);
  return 1;
}

/* transfer:headers() -> table once the headers arrived, else nil */
static int transfer_headers(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->headers_done) push_headers(L, t);
  else lua_pushnil(L);
  return 1;
}

/*
 * transfer:result() -> { status =, headers =, body = } | nil, err
 * Only for a finished transfer; a stream's body is empty unless its status
 * was not 2xx.
 */
static int transfer_result(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->state == T_RUNNING) return luaL_error(L, "transfer is still running");
  if (t->state == T_CLOSED && t->failure == F_NONE)
    return luaL_error(L, "transfer is closed");
  lua_pushnil(L);
  if (t->failure != F_NONE || t->code != CURLE_OK) {
    push_failure(L, t);
    return 2;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)t->status);
  lua_setfield(L, -2, "status");
  push_headers(L, t);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, t->body.len ? t->body.p : "", t->body.len);
  lua_setfield(L, -2, "body");
  return 1;
}

/* transfer:events() -> array of the events completed so far (streams) */
static int transfer_events(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->parser == NULL || t->state == T_CLOSED) {
    lua_newtable(L);
    return 1;
  }
  agr_push_events(L, t->parser);
  if (t->paused && t->state == T_RUNNING) {
    CURLcode rc;
    t->paused = 0;
    t->last_activity = now_seconds();
    rc = curl_easy_pause(t->easy, CURLPAUSE_CONT); /* may deliver data right away */
    if (rc != CURLE_OK) finish(t, rc);                /* e.g. that data broke a cap */
  }
  return 1;
}

/* transfer:info() -> { connects =, sent =, total_time =, paused = } */
static int transfer_info(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  long connects = 0;
  double total = 0;
  lua_createtable(L, 0, 4);
  if (t->easy) {
    curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
  }
  lua_pushinteger(L, connects);
  lua_setfield(L, -2, "connects");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "total_time");
  lua_pushboolean(L, t->sent);
  lua_setfield(L, -2, "sent");
  lua_pushboolean(L, t->paused);
  lua_setfield(L, -2, "paused");
  return 1;
}

/* transfer:wait() -> result(): drive the session until this one is done. */
static int transfer_wait(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->parser) return luaL_error(L, "wait() is for buffered transfers; read a stream with events()");
  if (t->session && t->session->callbacks)
    return luaL_error(L, "wait() cannot drive a session that a host event loop drives (use_callbacks)");
  while (t->state == T_RUNNING) {
    lua_settop(L, 1);
    compat_getuservalue(L, 1);
    lua_rawgeti(L, -1, 1);
    lua_pushcfunction(L, session_perform);
    lua_insert(L, -2);
    lua_pushnumber(L, 1.0);
    lua_call(L, 2, 0);
  }
  lua_settop(L, 1);
  return transfer_result(L);
}

/* transfer:close(): cancel if running, free everything. Idempotent. */
static int transfer_close(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  transfer_release(t);
  return 0;
}

static int transfer_tostring(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->easy == NULL)
    lua_pushfstring(L, "%s (closed)", AGR_TRANSFER_MT);
  else
    lua_pushfstring(L, "%s: %p", AGR_TRANSFER_MT, (void *)t);
  return 1;
}

static const luaL_Reg session_methods[] = {
  { "request", session_request },
  { "perform", session_perform },
  { "use_callbacks", session_use_callbacks },
  { "socket_action", session_socket_action },
  { "take_watches", session_take_watches },
  { "pending", session_pending },
  { "close", session_close },
  { NULL, NULL }
};

static const luaL_Reg session_meta[] = {
  { "__gc", session_close },
  { "__close", session_close },
  { "__tostring", session_tostring },
  { NULL, NULL }
};

static const luaL_Reg transfer_methods[] = {
  { "done", transfer_done },
  { "status", transfer_status },
  { "headers", transfer_headers },
  { "result", transfer_result },
  { "events", transfer_events },
  { "info", transfer_info },
  { "wait", transfer_wait },
  { "close", transfer_close },
  { NULL, NULL }
};

static const luaL_Reg transfer_meta[] = {
  { "__gc", transfer_close },
  { "__close", transfer_close },
  { "__tostring", transfer_tostring },
  { NULL, NULL }
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* Register both classes and put core.session in the table on top. */
void agr_open_session(lua_State *L) {
  new_class(L, AGR_SESSION_MT, session_meta, session_methods);
  new_class(L, AGR_TRANSFER_MT, transfer_meta, transfer_methods);
  lua_pushcfunction(L, session_new);
  lua_setfield(L, -2, "session");
}

/*
 * transfer.c -- agentruns.Transfer: one request on one easy handle.
 *
 * A Transfer is either buffered (status, headers and body are collected) or
 * streaming: the body goes straight into an SSEParser userdata (from
 * agentruns.sse) and the Lua side pulls completed events with
 * transfer:events(). A streaming response whose status is not 2xx falls back
 * to buffering, so its error body can be read.
 *
 * Nothing in here calls Lua from a libcurl callback: callbacks only copy
 * bytes into C buffers owned by the Transfer userdata, and record failures
 * in it. Lua runs only in the methods, between calls into libcurl. A
 * streaming transfer whose undelivered events pass PAUSE_AT bytes is paused
 * (CURL_WRITEFUNC_PAUSE) until events() drains them, so a fast server cannot
 * fill memory with events the caller has not read.
 *
 * Lifetimes: a Transfer keeps its Session and its parser alive through its
 * user value; its close is idempotent and serves close, __gc and __close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_int.h"

/* ---- libcurl callbacks (no Lua in here) ------------------------------- */

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
  agr_transfer *t = ud;
  size_t n = size * nmemb;
  t->last_activity = agr_now();
  agr_transfer_changed(t);
  if (t->events_mode) {
    int rc;
    if (agr_sse->pending(t->parser) >= PAUSE_AT) {
      t->paused = 1;
      return CURL_WRITEFUNC_PAUSE;
    }
    rc = agr_sse->feed(t->parser, ptr, n);
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
  t->last_activity = agr_now();
  if (agr_status_line(ptr, n)) { /* a new response: forget interim headers */
    t->headers.len = 0;
    t->nheaders = 0;
    t->headers_done = 0;
    return n;
  }
  if (n <= 2 && (n == 0 || ptr[0] == '\r' || ptr[0] == '\n')) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 || status == 0) {
      t->status = status;
      t->headers_done = 1;
      agr_transfer_changed(t);
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
  t->nheaders++;
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

/* Set the libcurl callbacks that fill t. */
void agr_transfer_wire(agr_transfer *t) {
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
}

/* ---- attaching and detaching --------------------------------------------- */

static void unlink_transfer(agr_transfer *t) {
  agr_session *s = t->session;
  if (s == NULL) return;
  curl_multi_remove_handle(s->multi, t->easy);
  /* The share handle may be cleaned up before this easy handle is. */
  curl_easy_setopt(t->easy, CURLOPT_SHARE, (CURLSH *)NULL);
  if (t->prev) t->prev->next = t->next;
  else s->head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  t->session = NULL;
  s->attached--;
  if (t->parser) t->parser->owned = 0;
}

/* Note t in its session's changed list, once a round (take_changed ends one).
   When the list cannot grow, or holds far more than the transfers in flight
   (nobody takes it: no tasks wait), the session says everything changed
   instead, and the list stops growing. */
void agr_transfer_changed(agr_transfer *t) {
  agr_session *s = t->session;
  if (s == NULL) return;
  s->activity++;
  if (s->changed_lost || t->changed_round == s->round) return;
  if (s->nchanged >= 2 * (size_t)s->attached + 64) {
    s->changed_lost = 1;
    s->nchanged = 0;
    return;
  }
  if (s->nchanged == s->capchanged) {
    size_t cap = s->capchanged ? s->capchanged * 2 : 64;
    void **nc = realloc(s->changed, cap * sizeof *nc);
    if (nc == NULL) {
      s->changed_lost = 1;
      return;
    }
    s->changed = nc;
    s->capchanged = cap;
  }
  s->changed[s->nchanged++] = t;
  t->changed_round = s->round;
}

/* Mark t finished (curl code or our own failure) and detach it. */
void agr_transfer_finish(agr_transfer *t, CURLcode code) {
  if (t->state != T_RUNNING) return;
  agr_transfer_changed(t);
  t->code = code;
  t->state = T_DONE;
  unlink_transfer(t);
}

/* Free everything the transfer owns. Idempotent. */
static void transfer_release(agr_transfer *t) {
  if (t->state == T_RUNNING && t->failure == F_NONE) t->failure = F_CLOSED;
  if (t->state == T_RUNNING) agr_transfer_changed(t); /* a task may wait on it */
  unlink_transfer(t);
  t->state = T_CLOSED;
  if (t->easy) {
    agr_session_give_easy(t->owner, t->easy, t->parser != NULL);
    t->easy = NULL;
  }
  t->owner = NULL;
  curl_slist_free_all(t->req_headers);
  t->req_headers = NULL;
  sse_buf_free(&t->body);
  sse_buf_free(&t->headers);
  t->parser = NULL;
}

/* Link a started transfer into its session's list. */
void agr_transfer_attach(agr_session *s, agr_transfer *t) {
  if (t->parser) t->parser->owned = 1;
  t->state = T_RUNNING;
  t->session = s;
  t->next = s->head;
  if (s->head) s->head->prev = t;
  s->head = t;
  s->attached++;
  t->last_activity = agr_now();
  s->idle_next = 0; /* its idle deadline is not in the session's yet */
}

static agr_transfer *check_transfer(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, AGR_TRANSFER_MT);
}

/* Push the response headers as a table; repeated names are joined by ", ". */
static void push_headers(lua_State *L, const agr_transfer *t) {
  size_t off = 0;
  /* sized once: filling a table that grows rehashes it at every power of two */
  lua_createtable(L, 0, t->nheaders < 1024 ? (int)t->nheaders : 1024);
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
    snprintf(msg, sizeof msg, "%s (%.0f bytes)", agr_sse->strerror(SSE_ETOOBIG),
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
  agr_sse->push_events(L, t->parser);
  if (t->paused && t->state == T_RUNNING) {
    CURLcode rc;
    t->paused = 0;
    t->last_activity = agr_now();
    if (t->session) t->session->idle_next = 0; /* idle again from now */
    rc = curl_easy_pause(t->easy, CURLPAUSE_CONT); /* may deliver data right away */
    if (rc != CURLE_OK) agr_transfer_finish(t, rc);                /* e.g. that data broke a cap */
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
    lua_pushcfunction(L, agr_session_perform);
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

/* transfer:key() -> light userdata: what session:take_changed() lists for it. */
static int transfer_key(lua_State *L) {
  lua_pushlightuserdata(L, check_transfer(L, 1));
  return 1;
}

static int transfer_tostring(lua_State *L) {
  agr_transfer *t = check_transfer(L, 1);
  if (t->easy == NULL)
    lua_pushfstring(L, "%s (closed)", AGR_TRANSFER_MT);
  else
    lua_pushfstring(L, "%s: %p", AGR_TRANSFER_MT, (void *)t);
  return 1;
}

static const luaL_Reg transfer_methods[] = {
  { "done", transfer_done },
  { "status", transfer_status },
  { "headers", transfer_headers },
  { "result", transfer_result },
  { "events", transfer_events },
  { "info", transfer_info },
  { "wait", transfer_wait },
  { "key", transfer_key },
  { "close", transfer_close },
  { NULL, NULL }
};

static const luaL_Reg transfer_meta[] = {
  { "__gc", transfer_close },
  { "__close", transfer_close },
  { "__tostring", transfer_tostring },
  { NULL, NULL }
};

void agr_open_transfer_class(lua_State *L) {
  agr_new_class(L, AGR_TRANSFER_MT, transfer_meta, transfer_methods);
}

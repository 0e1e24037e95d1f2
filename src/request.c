/*
 * request.c -- session:request(options): check the options, make the easy
 * handle, start the Transfer. Every problem with the options is reported as
 * "bad argument #1 to 'request' (...)" before anything is sent.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "curl_int.h"

#define OPTS 2 /* the options table: session:request(opts) */

/* Raise "bad argument #1 to 'request' (<message>)": the options are wrong. */
static int bad_option(lua_State *L, const char *fmt, const char *detail) {
  return luaL_argerror(L, OPTS, lua_pushfstring(L, fmt, detail));
}

static double opt_seconds(lua_State *L, const char *field) {
  double v = 0;
  lua_getfield(L, OPTS, field);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER) bad_option(L, "%s must be a number", field);
    v = lua_tonumber(L, -1);
    if (!(v >= 0 && v <= 1e9)) bad_option(L, "%s must be a non-negative number", field);
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
  lua_getfield(L, OPTS, "headers");
  if (!lua_isnil(L, -1)) {
    int i, n;
    if (!lua_istable(L, -1)) bad_option(L, "%s must be a table", "headers");
    n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      size_t len;
      const char *h;
      struct curl_slist *nl;
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, OPTS, lua_pushfstring(L, "headers[%d] must be a string", i));
      h = lua_tolstring(L, -1, &len);
      if (!valid_header(h, len))
        luaL_argerror(L, OPTS, lua_pushfstring(L, "headers[%d] is not a valid header line", i));
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
 *                  fresh_connect = <boolean>, idempotent = <boolean> } -> transfer
 * The transfer starts with the session's next perform. idempotent = false
 * means fresh_connect, so that a request table of the library's request layer
 * can be passed as it is.
 */
int agr_session_request(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  agr_transfer *t;
  const char *url, *method = "GET", *body = NULL;
  size_t body_len = 0;
  double timeout, connect_timeout, max_body = DEFAULT_MAX_BODY;
  CURL *e;
  luaL_checktype(L, OPTS, LUA_TTABLE);
  lua_settop(L, OPTS);

  lua_getfield(L, OPTS, "url");
  url = lua_tostring(L, -1);
  if (lua_type(L, -1) != LUA_TSTRING ||
      (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
      strpbrk(url, "\r\n ") != NULL)
    return bad_option(L, "%s must be an http:// or https:// URL", "url");
  lua_getfield(L, OPTS, "method");
  if (!lua_isnil(L, -1)) {
    method = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || !valid_method(method))
      return bad_option(L, "%s must be an upper-case HTTP method", "method");
  }
  lua_getfield(L, OPTS, "body");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) return bad_option(L, "%s must be a string", "body");
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
      return bad_option(L, "a %s request has no body", method);
    body = lua_tolstring(L, -1, &body_len);
  }
  timeout = opt_seconds(L, "timeout");
  connect_timeout = opt_seconds(L, "connect_timeout");
  lua_getfield(L, OPTS, "max_body_size");
  if (!lua_isnil(L, -1)) {
    max_body = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(max_body >= 0 && max_body <= 1e15))
      return bad_option(L, "%s must be a non-negative number", "max_body_size");
  }
  lua_pop(L, 1);

  /* Born closed: whatever fails below, __gc frees what was made. */
  t = compat_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->state = T_CLOSED;
  luaL_setmetatable(L, AGR_TRANSFER_MT);
  lua_createtable(L, 2, 0); /* user value: keeps session and parser alive */
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_getfield(L, OPTS, "stream");
  if (!lua_isnil(L, -1)) {
    if (luaL_testudata(L, -1, AGR_PARSER_MT) == NULL) return bad_option(L, "%s must be an SSE parser", "stream");
    if (((agr_parser *)lua_touserdata(L, -1))->owned)
      return luaL_argerror(L, OPTS, "the parser is in use by a running transfer");
    t->parser = lua_touserdata(L, -1);
  }
  lua_rawseti(L, -2, 2);
  compat_setuservalue(L, -2);

  t->max_body = (size_t)max_body;
  t->idle_timeout = opt_seconds(L, "idle_timeout");
  set_headers(L, t, body != NULL, body == NULL && strcmp(method, "POST") == 0);
  t->easy = e = agr_session_take_easy(s);
  t->owner = s;
  if (e == NULL) return luaL_error(L, "agentruns: cannot create a curl handle");

  /* The handle may have served another request: every option a request can
     change is set here, to this one's value or to the default (the base
     options stay, see agr_session_take_easy). */
  agr_transfer_wire(t);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->req_headers);
  lua_getfield(L, OPTS, "fresh_connect");
  lua_getfield(L, OPTS, "idempotent");
  /* libcurl silently re-sends a request whose reused connection closed
     without answering; for a request that must not run twice, only a new
     connection rules that out. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                   (long)(lua_toboolean(L, -2) || (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))));
  lua_pop(L, 2);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(t->parser ? 0 : t->max_body));
  if (t->parser) { /* a stream: kept alive by TCP while quiet, and never compressed */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, (char *)NULL);
  }
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout > 0 ? ms_long(timeout) : 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout > 0 ? ms_long(connect_timeout) : 0L);
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* also undoes NOBODY and the POST of a request before */
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                   strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? (const char *)NULL : method);
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
    curl_easy_setopt(e, CURLOPT_SHARE, (CURLSH *)NULL);
    return luaL_error(L, "agentruns: cannot start the transfer");
  }
  agr_transfer_attach(s, t);
  return 1;
}


/*
 * lsse.c -- luaopen_agentruns_sse: the SSE parser as a Lua userdata
 * (agentruns.SSEParser), with nothing but Lua linked.
 *
 *   agentruns.sse = {
 *     parser = function(opts) -> SSEParser,
 *     error_metatable = <metatable of error values> (error.c),
 *     null = <JSON null: a userdata that prints as "null">,
 *     version = "x.y.z",
 *   }
 *
 * The parser's callback never touches Lua: it copies each completed event
 * into a batch (one byte arena plus an array of offsets). The batch becomes
 * one Lua array of event tables when the caller asks for it -- after a feed,
 * or when a streaming transfer is drained -- so Lua is entered once per
 * chunk, not once per event, and an allocation error raised by Lua can
 * never leave the parser half way through a line.
 *
 * An event whose lines set no id still carries the last event ID (WHATWG).
 * With the option mark_inherited_ids such an event also gets
 * id_inherited = true, so a consumer that skips replayed ids can tell it
 * from a replay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentruns.h"

/* Parser callback: append ev to the batch. Non-zero stops the parser. */
static int batch_push(void *ud, const sse_event *ev) {
  agr_batch *b = ud;
  agr_event_rec *r;
  size_t need = ev->type_len + ev->data_len + ev->id_len;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    agr_event_rec *nr = realloc(b->recs, cap * sizeof *nr);
    if (nr == NULL) return 1;
    b->recs = nr;
    b->cap = cap;
  }
  if (sse_buf_reserve(&b->arena, need) != SSE_OK) return 1;
  r = &b->recs[b->n++];
  r->type_off = b->arena.len;
  r->type_len = ev->type_len;
  memcpy(b->arena.p + b->arena.len, ev->type, ev->type_len);
  b->arena.len += ev->type_len;
  r->data_off = b->arena.len;
  r->data_len = ev->data_len;
  memcpy(b->arena.p + b->arena.len, ev->data, ev->data_len);
  b->arena.len += ev->data_len;
  r->id_off = b->arena.len;
  r->id_len = ev->id_len;
  r->id_own = ev->id_own;
  memcpy(b->arena.p + b->arena.len, ev->id, ev->id_len);
  b->arena.len += ev->id_len;
  return 0;
}

static const char *agr_sse_strerror(int rc) {
  switch (rc) {
  case SSE_ETOOBIG: return "event exceeds max_event_size";
  case SSE_ENOMEM: return "out of memory while parsing the event stream";
  case SSE_ECALLBACK: return "out of memory while queueing events";
  default: return "ok";
  }
}

static int agr_parser_feed(agr_parser *ps, const char *bytes, size_t n) {
  return sse_feed(&ps->p, bytes, n);
}

static size_t agr_parser_pending(const agr_parser *ps) {
  return ps->batch.arena.len + ps->batch.n * sizeof(agr_event_rec);
}

/*
 * Push the batched events as one array and empty the batch. The three key
 * strings are pushed once and reused, and an event type equal to the one
 * before reuses that string: a stream repeats a handful of types, and
 * interning the same bytes for every event is measurable.
 */
static void agr_push_events(lua_State *L, agr_parser *ps) {
  agr_batch *b = &ps->batch;
  size_t i;
  int arr, k_event, k_data, k_id, last_type;
  const char *prev_type = NULL;
  size_t prev_len = 0;
  luaL_checkstack(L, 8, "too many events");
  lua_createtable(L, b->n > 0x7fffffff ? 0x7fffffff : (int)b->n, 0);
  arr = lua_gettop(L);
  lua_pushliteral(L, "event");
  k_event = lua_gettop(L);
  lua_pushliteral(L, "data");
  k_data = lua_gettop(L);
  lua_pushliteral(L, "id");
  k_id = lua_gettop(L);
  lua_pushnil(L); /* the previous event type's string */
  last_type = lua_gettop(L);
  for (i = 0; i < b->n; i++) {
    const agr_event_rec *r = &b->recs[i];
    const char *type = b->arena.p + r->type_off;
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, k_event);
    if (prev_type && r->type_len == prev_len && memcmp(type, prev_type, prev_len) == 0) {
      lua_pushvalue(L, last_type);
    } else {
      lua_pushlstring(L, type, r->type_len);
      lua_pushvalue(L, -1);
      lua_replace(L, last_type);
      prev_type = type;
      prev_len = r->type_len;
    }
    lua_rawset(L, -3);
    lua_pushvalue(L, k_data);
    lua_pushlstring(L, b->arena.p + r->data_off, r->data_len);
    lua_rawset(L, -3);
    if (r->id_len) {
      lua_pushvalue(L, k_id);
      lua_pushlstring(L, b->arena.p + r->id_off, r->id_len);
      lua_rawset(L, -3);
      if (!r->id_own && ps->mark_inherited) { /* the ID carried over from an earlier event */
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "id_inherited");
      }
    }
    lua_rawseti(L, arr, (int)(i + 1));
  }
  lua_settop(L, arr);
  b->n = 0;
  b->arena.len = 0;
  /* Give back memory a burst of large events left behind. */
  if (b->arena.cap > 1024 * 1024) sse_buf_free(&b->arena);
}

static agr_parser *agr_checkparser(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, AGR_PARSER_MT);
}

/* sse.parser([{ max_event_size =, mark_inherited_ids = }]) -> parser */
static int parser_new(lua_State *L) {
  lua_Number max = AGR_DEFAULT_MAX_EVENT;
  int mark = 0;
  agr_parser *ps;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "max_event_size");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
        return luaL_argerror(L, 1, "max_event_size must be a number");
      max = lua_tonumber(L, -1);
      if (!(max >= 1 && max <= 1e15))
        return luaL_argerror(L, 1, "max_event_size must be a positive number of bytes");
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "mark_inherited_ids");
    mark = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  ps = compat_newuserdata(L, sizeof *ps);
  memset(ps, 0, sizeof *ps);
  ps->mark_inherited = mark;
  sse_init(&ps->p, (size_t)max, batch_push, &ps->batch);
  luaL_setmetatable(L, AGR_PARSER_MT);
  return 1;
}

/* A parser a running transfer feeds must not be fed or reset by hand. */
static agr_parser *check_free_parser(lua_State *L, int idx) {
  agr_parser *ps = agr_checkparser(L, idx);
  if (ps->owned) luaL_argerror(L, idx, "parser is in use by a running transfer");
  return ps;
}

/* parser:feed(bytes) -> events | nil, err */
static int parser_feed(lua_State *L) {
  agr_parser *ps = check_free_parser(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int rc = agr_parser_feed(ps, s, n);
  if (rc != SSE_OK) {
    char msg[96];
    ps->batch.n = 0; /* events before the failure are dropped with it */
    ps->batch.arena.len = 0;
    if (rc == SSE_ETOOBIG) {
      snprintf(msg, sizeof msg, "%s (%.0f bytes)", agr_sse_strerror(rc),
               (double)ps->p.max_event_size);
    } else {
      snprintf(msg, sizeof msg, "%s", agr_sse_strerror(rc));
    }
    lua_pushnil(L);
    agr_new_error(L, rc == SSE_ETOOBIG ? "limit" : "memory", msg);
    return 2;
  }
  agr_push_events(L, ps);
  return 1;
}

/* parser:last_event_id() -> string */
static int parser_last_event_id(lua_State *L) {
  agr_parser *ps = agr_checkparser(L, 1);
  lua_pushlstring(L, ps->p.last_id.len ? ps->p.last_id.p : "", ps->p.last_id.len);
  return 1;
}

/* parser:retry() -> milliseconds | nil */
static int parser_retry(lua_State *L) {
  agr_parser *ps = agr_checkparser(L, 1);
  if (ps->p.retry < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)ps->p.retry);
  return 1;
}

/* parser:reset() -- a new connection begins; keeps last_event_id and retry. */
static int parser_reset(lua_State *L) {
  agr_parser *ps = check_free_parser(L, 1);
  sse_reset(&ps->p);
  ps->batch.n = 0;
  ps->batch.arena.len = 0;
  return 0;
}

static int parser_gc(lua_State *L) {
  agr_parser *ps = agr_checkparser(L, 1);
  sse_free(&ps->p);
  sse_buf_free(&ps->batch.arena);
  free(ps->batch.recs);
  ps->batch.recs = NULL;
  ps->batch.n = ps->batch.cap = 0;
  return 0;
}

static int parser_tostring(lua_State *L) {
  lua_pushfstring(L, "%s: %p", AGR_PARSER_MT, lua_touserdata(L, 1));
  return 1;
}

static const luaL_Reg parser_methods[] = {
  { "feed", parser_feed },
  { "last_event_id", parser_last_event_id },
  { "retry", parser_retry },
  { "reset", parser_reset },
  { NULL, NULL }
};

static const luaL_Reg parser_meta[] = {
  { "__gc", parser_gc },
  { "__tostring", parser_tostring },
  { NULL, NULL }
};

/* null's __tostring. */
static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

/*
 * Push sse.null, JSON null as a value of its own (agentruns.null). It lives
 * here because this is the C module every host loads without libcurl. It is
 * a full userdata so that it can have a metatable of its own (cjson's null is
 * a light userdata, which prints as "userdata: (nil)" and shares one
 * metatable with every other light userdata). One per Lua state, kept in the
 * registry, so requiring the module again gives the same null.
 */
static void push_null(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, AGR_NULL_KEY);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  (void)lua_newuserdata(L, 1);
  luaL_newmetatable(L, AGR_NULL_MT);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, AGR_NULL_MT);
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, AGR_NULL_KEY);
}

static agr_sse_api api = { /* not const: a light userdata points at it */
  AGR_SSE_API_VERSION, agr_parser_feed, agr_push_events, agr_parser_pending, agr_sse_strerror,
};

AGR_EXPORT int luaopen_agentruns_sse(lua_State *L);

int luaopen_agentruns_sse(lua_State *L) {
  luaL_newmetatable(L, AGR_PARSER_MT);
  luaL_setfuncs(L, parser_meta, 0);
  lua_pushstring(L, AGR_PARSER_MT);
  lua_setfield(L, -2, "__name");
  luaL_newlib(L, parser_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, &api);
  lua_setfield(L, LUA_REGISTRYINDEX, AGR_SSE_API_KEY);
  lua_newtable(L);
  lua_pushcfunction(L, parser_new);
  lua_setfield(L, -2, "parser");
  agr_open_error(L);
  push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, AGR_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

/*
 * lsse.c -- luaopen_agentruns_sse: the SSE parser as a Lua userdata
 * (agentruns.SSEParser), with nothing but Lua linked.
 *
 *   agentruns.sse = {
 *     parser = function(opts) -> SSEParser,
 *     error_metatable = <metatable of error values> (error.c),
 *     null = <JSON null: a userdata that prints as "null">,
 *     json_decode = function(text) -> value | nil, message (ljson.c: the
 *                decoder agentruns.json uses; here because every host loads
 *                this module),
 *     version = "x.y.z",
 *   }
 *
 * A chunk's events reach Lua in one of three ways. parser:feed and
 * feed_flat build their array while the parser runs, straight from its
 * buffers (levents.c). A transfer's parser copies each event into a batch
 * (one byte arena plus an array of offsets), made one array when the
 * transfer is drained. Under LuaJIT, feed is agentruns/sse_ffi.lua's: small
 * events go into the batch, which Lua reads through the FFI, and a large
 * one is built here as feed builds it. Should Lua raise an allocation error
 * inside a build, the parser reports itself failed until reset() rather
 * than go on from the middle of a chunk.
 *
 * An event whose lines set no id still carries the last event ID (WHATWG).
 * With the option mark_inherited_ids such an event also gets
 * id_inherited = true, so a consumer that skips replayed ids can tell it
 * from a replay.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentruns.h"

static const char parser_magic = 0; /* its address marks a parser (check_self) */

#define BIG_EVENT 4096 /* data bytes per event above which LuaJIT's feed builds in C (_feed_batch) */

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

/*
 * Before the parser is fed again, by hand or by a transfer: what a feed that
 * did not finish left behind. A batch still lent to Lua, whose build of it
 * stopped half way, is dropped. A feed that an error unwound left the
 * callback pointing at that feed's own state, which is gone with its C
 * frame: the callback goes back to the batch. Either way the parser then
 * reports itself failed (memory) until reset().
 */
static void settle(agr_parser *ps) {
  if (ps->lent) {
    ps->lent = 0;
    ps->batch.arena.len = 0;
    if (ps->batch.n) {
      ps->batch.n = 0;
      ps->feeding = 1;
    }
  }
  if (ps->feeding) {
    ps->feeding = 0;
    ps->p.on_event = batch_push;
    ps->p.ud = &ps->batch;
    if (ps->p.error == SSE_OK) ps->p.error = SSE_ENOMEM;
  }
}

static int agr_parser_feed(agr_parser *ps, const char *bytes, size_t n) {
  settle(ps);
  return sse_feed(&ps->p, bytes, n);
}

static size_t agr_parser_pending(const agr_parser *ps) {
  return ps->batch.arena.len + ps->batch.n * sizeof(agr_event_rec);
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
  ps->magic = &parser_magic;
  sse_init(&ps->p, (size_t)max, batch_push, &ps->batch);
  luaL_setmetatable(L, AGR_PARSER_MT);
  return 1;
}

/*
 * The methods share four upvalues: the parser metatable, then the keys
 * "event", "data" and "id". A method first looks for its self the cheap way:
 * a full userdata of a parser's size whose `magic` is the address of
 * parser_magic, which only parser_new writes (Lua code cannot write the bytes
 * of a userdata). That costs a fraction of a metatable check, which is what
 * a call on a small chunk spends most on. Anything else goes through the
 * metatable (upvalue 1), and failing that luaL_checkudata's error.
 */
#define UP_MT 1
#define UP_KEYS 2
#define N_UPVALUES 4

static agr_parser *check_self(lua_State *L) {
  agr_parser *u = lua_touserdata(L, 1);
  if (u != NULL && lua_rawlen(L, 1) == sizeof *u && u->magic == &parser_magic) return u;
  if (u != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(UP_MT));
    lua_pop(L, 1);
    if (same) return u;
  }
  return agr_checkparser(L, 1);
}

/* A parser a running transfer feeds must not be fed or reset by hand. */
static agr_parser *check_free_parser(lua_State *L) {
  agr_parser *ps = check_self(L);
  if (ps->owned) luaL_argerror(L, 1, "parser is in use by a running transfer");
  return ps;
}

/* nil and the error of a failed feed (events before the failure are dropped with it). */
static int push_feed_error(lua_State *L, const agr_parser *ps, int rc) {
  char msg[96];
  if (rc == SSE_ETOOBIG) {
    snprintf(msg, sizeof msg, "%s (%.0f bytes)", agr_sse_strerror(rc), (double)ps->p.max_event_size);
  } else {
    snprintf(msg, sizeof msg, "%s", agr_sse_strerror(rc));
  }
  lua_pushnil(L);
  agr_new_error(L, rc == SSE_ETOOBIG ? "limit" : "memory", msg);
  return 2;
}

/* A feed's first steps, once ps is known free: the bytes, and the failure an unwound feed left. */
static const char *begin_feed(lua_State *L, agr_parser *ps, size_t *n) {
  const char *s = luaL_checklstring(L, 2, n);
  settle(ps);
  return s;
}

/*
 * Run the parser over s with fn(ud, event) as its callback, then put the
 * callback back on the batch. `feeding` stays set only if a Lua error
 * unwinds through fn: settle() then repairs the rest.
 */
static int feed_through(agr_parser *ps, sse_event_fn fn, void *ud, const char *s, size_t n) {
  int rc;
  ps->p.on_event = fn;
  ps->p.ud = ud;
  ps->feeding = 1;
  rc = sse_feed(&ps->p, s, n);
  ps->feeding = 0;
  ps->p.on_event = batch_push;
  ps->p.ud = &ps->batch;
  return rc;
}

/* Feed with results built in place; pushes the array (or nil, err) and returns 1 or 2. */
static int feed_direct(lua_State *L, int flat) {
  agr_builder eb;
  size_t n;
  agr_parser *ps = check_free_parser(L);
  const char *s = begin_feed(L, ps, &n);
  int rc;
  /* sized as the last result with events was: a stream's chunks complete similar counts */
  agr_builder_open(L, &eb, ps->last_count, flat, ps->mark_inherited, UP_KEYS, 1);
  rc = feed_through(ps, agr_builder_push, &eb, s, n);
  if (rc != SSE_OK) return push_feed_error(L, ps, rc);
  if (eb.n == 0) {
    agr_push_empty(L, ps);
  } else {
    lua_settop(L, eb.base);
    ps->last_count = eb.n > 4096 ? 4096 : (int)eb.n;
    ps->big_events = eb.bytes / (size_t)(flat ? eb.n / 3 : eb.n) > BIG_EVENT;
  }
  if (flat) {
    lua_pushinteger(L, eb.n / 3);
    return 2;
  }
  return 1;
}

/*
 * _feed_batch's callback. Small events go into the batch. A large one (over
 * BIG_EVENT data bytes) is not copied there: from it on, the feed's events
 * are built as feed builds them, the batched ones first, and the feed
 * returns the array.
 */
typedef struct spill {
  lua_State *L;
  agr_parser *ps;
  int building;          /* the events go to eb, not to the batch */
  agr_builder eb;
} spill;

static int spill_push(void *ud, const sse_event *ev) {
  spill *sp = ud;
  agr_batch *b = &sp->ps->batch;
  if (!sp->building) {
    if (ev->data_len <= BIG_EVENT) return batch_push(b, ev);
    sp->building = 1;
    agr_builder_open(sp->L, &sp->eb, b->n < 4096 ? (int)b->n + 1 : 4096, 0, sp->ps->mark_inherited, UP_KEYS, 0);
    agr_builder_add_batch(&sp->eb, b);
  }
  agr_builder_add(&sp->eb, ev);
  return 0;
}

/* parser:feed(bytes) -> events | nil, err */
static int parser_feed(lua_State *L) {
  return feed_direct(L, 0);
}

/* parser:feed_flat(bytes) -> { data, event, id, data, event, id, ... }, count | nil, err */
static int parser_feed_flat(lua_State *L) {
  return feed_direct(L, 1);
}

/*
 * parser:_feed_batch(bytes) -> count, batch, mark_inherited_ids | events | nil, err
 *
 * LuaJIT's parser:feed (agentruns/sse_ffi.lua). The events stay in the batch,
 * which Lua reads through the FFI and then empties by setting its count to 0.
 * A feed that completes no event returns the parser's empty table, as feed
 * does. Events are built here instead, the array returned, when one of
 * them holds more than BIG_EVENT data bytes (spill_push), when together they
 * hold more than a megabyte (which gives their memory back at once), and
 * after a feed whose events averaged more than BIG_EVENT data bytes: copying
 * those into the batch costs more than the FFI saves, so until a feed's
 * events are small again they go straight from the parser into Lua strings.
 * A batch still holding events at the next call means building them failed
 * half way (an allocation error in Lua): the parser then reports itself
 * failed, as after such an error in feed.
 */
static int parser_feed_batch(lua_State *L) {
  size_t n;
  const char *s;
  agr_parser *ps = check_free_parser(L);
  spill sp;
  int rc, top;
  if (ps->big_events) return feed_direct(L, 0);
  s = begin_feed(L, ps, &n);
  top = lua_gettop(L);
  sp.L = L;
  sp.ps = ps;
  sp.building = 0;
  rc = feed_through(ps, spill_push, &sp, s, n);
  if (rc != SSE_OK) {
    ps->batch.n = 0;
    ps->batch.arena.len = 0;
    return push_feed_error(L, ps, rc);
  }
  if (lua_gettop(L) > top) { /* a large event came: the feed's events were built (spill_push) */
    lua_settop(L, sp.eb.base);
    ps->big_events = sp.eb.bytes / (size_t)sp.eb.n > BIG_EVENT;
    return 1;
  }
  if (ps->batch.n) ps->big_events = ps->batch.arena.len / ps->batch.n > BIG_EVENT;
  if (ps->batch.n == 0 || ps->batch.arena.len > 1024 * 1024) {
    agr_push_events(L, ps);
    return 1;
  }
  ps->lent = 1;
  lua_pushinteger(L, (lua_Integer)ps->batch.n);
  lua_pushlightuserdata(L, &ps->batch);
  lua_pushboolean(L, ps->mark_inherited);
  return 3;
}

/* parser:last_event_id() -> string */
static int parser_last_event_id(lua_State *L) {
  agr_parser *ps = check_self(L);
  lua_pushlstring(L, ps->p.last_id.len ? ps->p.last_id.p : "", ps->p.last_id.len);
  return 1;
}

/* parser:retry() -> milliseconds | nil */
static int parser_retry(lua_State *L) {
  agr_parser *ps = check_self(L);
  if (ps->p.retry < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)ps->p.retry);
  return 1;
}

/* parser:reset() -- a new connection begins; keeps last_event_id and retry. */
static int parser_reset(lua_State *L) {
  agr_parser *ps = check_free_parser(L);
  settle(ps); /* what an unfinished feed left (the failure it marks is then reset too) */
  sse_reset(&ps->p);
  ps->batch.n = 0;
  ps->batch.arena.len = 0;
  return 0;
}

static int parser_gc(lua_State *L) {
  agr_parser *ps = agr_checkparser(L, 1);
  if (ps->empty_ref > 0) luaL_unref(L, LUA_REGISTRYINDEX, ps->empty_ref);
  ps->empty_ref = 0;
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
  { "feed_flat", parser_feed_flat },
  { "_feed_batch", parser_feed_batch },
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

static agr_sse_api api = { /* not const: a light userdata points at it */
  AGR_SSE_API_VERSION, agr_parser_feed, agr_push_events, agr_parser_pending, agr_sse_strerror,
};

/* Set t[name] = value for the table on top of the stack. */
static void set_size(lua_State *L, const char *name, size_t value) {
  lua_pushinteger(L, (lua_Integer)value);
  lua_setfield(L, -2, name);
}

/* The batch's layout as agentruns/sse_ffi.lua declares it, for it to check. */
static void push_batch_layout(lua_State *L) {
  lua_createtable(L, 0, 13);
  set_size(L, "batch", sizeof(agr_batch));
  set_size(L, "arena", offsetof(agr_batch, arena));
  set_size(L, "recs", offsetof(agr_batch, recs));
  set_size(L, "n", offsetof(agr_batch, n));
  set_size(L, "buf", sizeof(sse_buf));
  set_size(L, "buf_len", offsetof(sse_buf, len));
  set_size(L, "rec", sizeof(agr_event_rec));
  set_size(L, "type_off", offsetof(agr_event_rec, type_off));
  set_size(L, "type_len", offsetof(agr_event_rec, type_len));
  set_size(L, "data_off", offsetof(agr_event_rec, data_off));
  set_size(L, "data_len", offsetof(agr_event_rec, data_len));
  set_size(L, "id_off", offsetof(agr_event_rec, id_off));
  set_size(L, "id_len", offsetof(agr_event_rec, id_len));
  set_size(L, "id_own", offsetof(agr_event_rec, id_own));
}

/*
 * Under LuaJIT, agentruns/sse_ffi.lua (where it is installed beside this
 * module) replaces the parser's feed with one that builds the event tables
 * in Lua from the batch, read through the FFI: the JIT compiles that loop,
 * where the classic C API cannot be. It is given the methods table (on top
 * of the stack) and the batch layout. It is found by `require`, so by any
 * searcher the host has (Neovim's runtimepath too). Only its absence leaves
 * the C feed in place: a module that is there but fails to load makes this
 * one fail too, rather than be slower without a word.
 */
static void open_ffi_feed(lua_State *L) {
  static const char name[] = "agentruns.sse_ffi";
  int methods = lua_gettop(L);
  lua_getglobal(L, "jit");
  lua_getglobal(L, "require");
  if (!lua_istable(L, -2) || !lua_isfunction(L, -1)) {
    lua_settop(L, methods);
    return;
  }
  lua_pushstring(L, name);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    const char *msg = lua_tostring(L, -1);
    char missing[64];
    snprintf(missing, sizeof missing, "module '%s' not found", name);
    if (msg != NULL && strstr(msg, missing) != NULL) { /* not installed: the C feed stays */
      lua_settop(L, methods);
      return;
    }
    lua_error(L);
  }
  lua_pushvalue(L, methods);
  push_batch_layout(L);
  lua_call(L, 2, 0);
  lua_settop(L, methods);
}

AGR_EXPORT int luaopen_agentruns_sse(lua_State *L);

int luaopen_agentruns_sse(lua_State *L) {
  luaL_newmetatable(L, AGR_PARSER_MT);
  luaL_setfuncs(L, parser_meta, 0);
  lua_pushstring(L, AGR_PARSER_MT);
  lua_setfield(L, -2, "__name");
  lua_createtable(L, 0, (int)(sizeof parser_methods / sizeof parser_methods[0]) - 1);
  lua_pushvalue(L, -2);
  lua_pushliteral(L, "event");
  lua_pushliteral(L, "data");
  lua_pushliteral(L, "id");
  luaL_setfuncs(L, parser_methods, N_UPVALUES);
  open_ffi_feed(L);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, &api);
  lua_setfield(L, LUA_REGISTRYINDEX, AGR_SSE_API_KEY);
  lua_newtable(L);
  lua_pushcfunction(L, parser_new);
  lua_setfield(L, -2, "parser");
  agr_open_error(L);
  agr_push_null(L);
  agr_push_json_decode(L);
  lua_setfield(L, -3, "json_decode");
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, AGR_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}

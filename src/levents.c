/*
 * levents.c -- the Lua side of parsed events: one array of event tables
 * (or, for feed_flat, of strings) per feed, built from a parser's callback
 * (parser:feed, feed_flat) or from its batch (a transfer's events, LuaJIT's
 * large events).
 *
 * While a build runs, the stack holds, from `base`: the result array, the
 * keys "event", "data" and "id" (pushed once, reused), and the last event
 * type's string: a stream repeats a handful of types, and interning the
 * same bytes for every event is measurable. The type is compared with a
 * copy, because the parser changes its type buffer in place.
 */
#include <string.h>

#include "agentruns.h"
#include "scan.h"

/* Push the array and the builder's other slots (see agr_builder). */
static void builder_push_slots(agr_builder *eb) {
  lua_State *L = eb->L;
  luaL_checkstack(L, 10, "too many events");
  lua_createtable(L, eb->pending_hint, 0);
  eb->pending_hint = -1;
  if (eb->keys) {
    lua_pushvalue(L, lua_upvalueindex(eb->keys));
    lua_pushvalue(L, lua_upvalueindex(eb->keys + 1));
    lua_pushvalue(L, lua_upvalueindex(eb->keys + 2));
  } else {
    lua_pushliteral(L, "event");
    lua_pushliteral(L, "data");
    lua_pushliteral(L, "id");
  }
  lua_pushnil(L);
}

/* Start building at the top of the stack, with an array sized for size_hint
   slots. keys: 0, or the upvalue index of "event" (then "data", "id" follow
   it), cheaper to copy than interning the literals again on every feed.
   lazy: the slots are pushed with the first event, so that a build with no
   event pushes and allocates nothing. */
void agr_builder_open(lua_State *L, agr_builder *eb, int size_hint, int flat, int mark_inherited,
                      int keys, int lazy) {
  eb->L = L;
  eb->base = lua_gettop(L) + 1;
  eb->flat = flat;
  eb->mark_inherited = mark_inherited;
  eb->keys = keys;
  eb->pending_hint = size_hint;
  eb->n = 0;
  eb->bytes = 0;
  eb->prev_len = 0;
  if (!lazy) builder_push_slots(eb);
}

/* The event type as a Lua string on top of the stack; a repeat reuses the last one. */
SCAN_INLINE void push_type(agr_builder *eb, const sse_event *ev) {
  lua_State *L = eb->L;
  if (eb->prev_len && ev->type_len == eb->prev_len && same_short(ev->type, eb->prev_type, eb->prev_len)) {
    lua_pushvalue(L, eb->base + 4);
    return;
  }
  lua_pushlstring(L, ev->type, ev->type_len);
  lua_pushvalue(L, -1);
  lua_replace(L, eb->base + 4);
  eb->prev_len = ev->type_len <= sizeof eb->prev_type ? ev->type_len : 0;
  memcpy(eb->prev_type, ev->type, eb->prev_len);
}

/* Append one event to the array (inlined into the parser's callback below,
   which every event of parser:feed goes through). */
SCAN_INLINE void builder_add(agr_builder *eb, const sse_event *ev) {
  lua_State *L = eb->L;
  int arr = eb->base;
  if (eb->pending_hint >= 0) builder_push_slots(eb);
  eb->bytes += ev->data_len;
  if (eb->flat) {
    lua_pushlstring(L, ev->data, ev->data_len);
    lua_rawseti(L, arr, (int)++eb->n);
    push_type(eb, ev);
    lua_rawseti(L, arr, (int)++eb->n);
    lua_pushlstring(L, ev->id, ev->id_len);
    lua_rawseti(L, arr, (int)++eb->n);
    return;
  }
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, arr + 1);
  push_type(eb, ev);
  lua_rawset(L, -3);
  lua_pushvalue(L, arr + 2);
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_rawset(L, -3);
  if (ev->id_len) {
    lua_pushvalue(L, arr + 3);
    lua_pushlstring(L, ev->id, ev->id_len);
    lua_rawset(L, -3);
    if (!ev->id_own && eb->mark_inherited) { /* the ID carried over from an earlier event */
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "id_inherited");
    }
  }
  lua_rawseti(L, arr, (int)++eb->n);
}

void agr_builder_add(agr_builder *eb, const sse_event *ev) {
  builder_add(eb, ev);
}

/* Append the batched events to the array and empty the batch. */
void agr_builder_add_batch(agr_builder *eb, agr_batch *b) {
  size_t i;
  for (i = 0; i < b->n; i++) {
    const agr_event_rec *r = &b->recs[i];
    sse_event ev;
    ev.type = b->arena.p + r->type_off;
    ev.type_len = r->type_len;
    ev.data = b->arena.p + r->data_off;
    ev.data_len = r->data_len;
    ev.id = b->arena.p + r->id_off;
    ev.id_len = r->id_len;
    ev.id_own = r->id_own;
    agr_builder_add(eb, &ev);
  }
  b->n = 0;
  b->arena.len = 0;
  /* Give back memory a burst of large events left behind. */
  if (b->arena.cap > 1024 * 1024) sse_buf_free(&b->arena);
}

/* Push the batched events as one array (the parser's empty table when there
   are none, as parser:feed does) and empty the batch. */
void agr_push_events(lua_State *L, agr_parser *ps) {
  agr_batch *b = &ps->batch;
  agr_builder eb;
  if (b->n == 0) {
    agr_push_empty(L, ps);
    return;
  }
  agr_builder_open(L, &eb, b->n > 0x7fffffff ? 0x7fffffff : (int)b->n, 0, ps->mark_inherited, 0, 0);
  agr_builder_add_batch(&eb, b);
  lua_settop(L, eb.base);
}

/*
 * parser:feed and parser:feed_flat build their results while the parser
 * runs: the callback puts each event into the Lua array at once, straight
 * from the parser's buffers (or from the caller's chunk), with no batch copy
 * in between. Lua can raise an allocation error inside it; that unwinds
 * through sse_feed, so `feeding` stays set and the next call reports the
 * parser as failed (memory) until reset() instead of going on from the
 * middle of a chunk.
 */
int agr_builder_push(void *ud, const sse_event *ev) {
  builder_add(ud, ev);
  return 0;
}

/*
 * Push the parser's empty result: a feed that completes no event returns the
 * same empty table each time, so that it allocates nothing. It is checked
 * first: should the caller have put something in it (or given it a
 * metatable), a new one takes its place.
 */
void agr_push_empty(lua_State *L, agr_parser *ps) {
  if (ps->empty_ref > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, ps->empty_ref);
    if (lua_getmetatable(L, -1)) {
      lua_pop(L, 2); /* the table and its metatable */
    } else {
      lua_pushnil(L);
      if (lua_next(L, -2) == 0) return; /* still empty: hand it out again */
      lua_pop(L, 3); /* the table, a key and its value */
    }
    luaL_unref(L, LUA_REGISTRYINDEX, ps->empty_ref);
    ps->empty_ref = 0;
  }
  lua_newtable(L);
  lua_pushvalue(L, -1);
  ps->empty_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


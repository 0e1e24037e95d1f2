/*
 * table_floor.c -- the floor under any SSE parser that hands Lua one table
 * per event: building the same { event, data, id } tables from memory, with
 * no parsing at all. bench/sse_bench.lua times it beside agentruns.sse on the
 * same corpus, in the same run, and prints the ratio.
 *
 *   local floor = require "table_floor"
 *   local f = floor.new(batches)  -- batches[i] = { data, event, id, ... } (feed_flat's shape)
 *   local events = f:build(i)     -- batch i as an array of event tables
 *
 * build() makes its tables the way parser:feed does (keys pushed once, an
 * event type equal to the one before reused, no id field when the id is
 * empty), so the difference between the two is what parsing costs.
 * Built by scripts/bench.sh against each interpreter; not part of the rock.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 502
#define lua_objlen lua_rawlen
#endif

typedef struct rec {
  size_t data_off, data_len, type_off, type_len, id_off, id_len;
} rec;

typedef struct table_floor {
  char *bytes;
  rec *recs;
  size_t *batch_end; /* batch i holds recs [batch_end[i-1], batch_end[i]) */
  size_t nbatches;
} table_floor;

#define FLOOR_MT "agentruns.bench.TableFloor"

static int floor_gc(lua_State *L) {
  table_floor *f = luaL_checkudata(L, 1, FLOOR_MT);
  free(f->bytes);
  free(f->recs);
  free(f->batch_end);
  memset(f, 0, sizeof *f);
  return 0;
}

/* floor.new(batches) -> floor: copies every string of every batch. */
static int floor_new(lua_State *L) {
  size_t nb, b, nrecs = 0, nbytes = 0, r = 0, off = 0;
  table_floor *f;
  luaL_checktype(L, 1, LUA_TTABLE);
  nb = lua_objlen(L, 1);
  for (b = 1; b <= nb; b++) { /* sizes first: one allocation each */
    size_t k, n;
    lua_rawgeti(L, 1, (int)b);
    luaL_checktype(L, -1, LUA_TTABLE);
    n = lua_objlen(L, -1);
    if (n % 3) return luaL_error(L, "batch %d: not data, event, id triples", (int)b);
    for (k = 1; k <= n; k++) {
      size_t len;
      lua_rawgeti(L, -1, (int)k);
      (void)luaL_checklstring(L, -1, &len);
      nbytes += len;
      lua_pop(L, 1);
    }
    nrecs += n / 3;
    lua_pop(L, 1);
  }
  f = lua_newuserdata(L, sizeof *f);
  memset(f, 0, sizeof *f);
  luaL_getmetatable(L, FLOOR_MT);
  lua_setmetatable(L, -2);
  f->bytes = malloc(nbytes ? nbytes : 1);
  f->recs = malloc((nrecs ? nrecs : 1) * sizeof *f->recs);
  f->batch_end = malloc((nb ? nb : 1) * sizeof *f->batch_end);
  if (!f->bytes || !f->recs || !f->batch_end) return luaL_error(L, "table_floor: out of memory");
  for (b = 1; b <= nb; b++) {
    size_t k, n;
    lua_rawgeti(L, 1, (int)b);
    n = lua_objlen(L, -1);
    for (k = 1; k <= n; k += 3, r++) {
      size_t *offs[3], *lens[3], j;
      offs[0] = &f->recs[r].data_off, lens[0] = &f->recs[r].data_len;
      offs[1] = &f->recs[r].type_off, lens[1] = &f->recs[r].type_len;
      offs[2] = &f->recs[r].id_off, lens[2] = &f->recs[r].id_len;
      for (j = 0; j < 3; j++) {
        size_t len;
        const char *s;
        lua_rawgeti(L, -1, (int)(k + j));
        s = lua_tolstring(L, -1, &len);
        memcpy(f->bytes + off, s, len);
        *offs[j] = off;
        *lens[j] = len;
        off += len;
        lua_pop(L, 1);
      }
    }
    f->batch_end[b - 1] = r;
    lua_pop(L, 1);
  }
  f->nbatches = nb;
  return 1;
}

/* floor:build(i) -> array of { event =, data =, id = } */
static int floor_build(lua_State *L) {
  table_floor *f = luaL_checkudata(L, 1, FLOOR_MT);
  lua_Integer b = luaL_checkinteger(L, 2);
  size_t from, to, r;
  const char *prev = NULL;
  size_t prev_len = 0;
  int i = 0;
  luaL_argcheck(L, b >= 1 && (size_t)b <= f->nbatches, 2, "no such batch");
  from = b > 1 ? f->batch_end[b - 2] : 0;
  to = f->batch_end[b - 1];
  lua_settop(L, 2);
  lua_createtable(L, (int)(to - from), 0);
  lua_pushliteral(L, "event");
  lua_pushliteral(L, "data");
  lua_pushliteral(L, "id");
  lua_pushnil(L);
  for (r = from; r < to; r++) {
    const rec *e = &f->recs[r];
    const char *type = f->bytes + e->type_off;
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 4);
    if (prev && e->type_len == prev_len && memcmp(type, prev, prev_len) == 0) {
      lua_pushvalue(L, 7);
    } else {
      lua_pushlstring(L, type, e->type_len);
      lua_pushvalue(L, -1);
      lua_replace(L, 7);
      prev = type;
      prev_len = e->type_len;
    }
    lua_rawset(L, -3);
    lua_pushvalue(L, 5);
    lua_pushlstring(L, f->bytes + e->data_off, e->data_len);
    lua_rawset(L, -3);
    if (e->id_len) {
      lua_pushvalue(L, 6);
      lua_pushlstring(L, f->bytes + e->id_off, e->id_len);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, 3, ++i);
  }
  lua_settop(L, 3);
  return 1;
}

int luaopen_table_floor(lua_State *L);

int luaopen_table_floor(lua_State *L) {
  luaL_newmetatable(L, FLOOR_MT);
  lua_pushcfunction(L, floor_gc);
  lua_setfield(L, -2, "__gc");
  lua_newtable(L);
  lua_pushcfunction(L, floor_build);
  lua_setfield(L, -2, "build");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, floor_new);
  lua_setfield(L, -2, "new");
  return 1;
}

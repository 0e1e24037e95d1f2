/*
 * json_fuzz.c -- libFuzzer target for the JSON decoder (src/ljson.c), run in
 * a Lua 5.4 state. Besides what the sanitizers catch, it checks that the
 * decoder never raises, that it returns a value or nil and a message, and
 * that wrapping the text in an array changes nothing: when the text decodes,
 * "[text]" does too (short of the depth limit), to an array of that one
 * value; when it does not, "[text]" is no one-value array. One decoder serves
 * every input, so the object keys one input leaves in its cache are looked up
 * by the next.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentruns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

/* Decode s; leaves the value or nil, message on the stack; 1 when decoded. */
static int decode(const char *s, size_t n) {
  lua_pushvalue(L, 1); /* the decoder */
  lua_pushlstring(L, s, n);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) __builtin_trap(); /* it never raises */
  if (lua_isnil(L, -2)) {
    if (lua_type(L, -1) != LUA_TSTRING) __builtin_trap();
    return 0;
  }
  if (!lua_isnil(L, -1)) __builtin_trap();
  return 1;
}

static int same(int a, int b, int depth) {
  int t = lua_type(L, a);
  if (t != lua_type(L, b)) return 0;
  if (t != LUA_TTABLE) return lua_rawequal(L, a, b);
  if (depth > 300 || !lua_checkstack(L, 4)) __builtin_trap();
  if (lua_rawlen(L, a) != lua_rawlen(L, b)) return 0;
  lua_pushnil(L);
  while (lua_next(L, a)) { /* every key of a is in b with the same value */
    int ok;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    ok = same(lua_gettop(L) - 1, lua_gettop(L), depth + 1);
    lua_pop(L, 2);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, b)) { /* and b has no other key */
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawget(L, a);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned runs;
  static int decoder_ref = LUA_NOREF;
  char *wrapped;
  int ok, ok_wrapped;
  if (L == NULL) { /* one decoder for every input, so that its key cache carries keys over */
    L = luaL_newstate();
    if (L == NULL) abort();
    (void)lua_newuserdata(L, 1); /* JSON null */
    agr_push_json_decode(L);
    decoder_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, decoder_ref);
  ok = decode((const char *)data, size); /* stack: decoder, value, message */
  wrapped = malloc(size + 2);
  if (wrapped == NULL) abort();
  wrapped[0] = '[';
  memcpy(wrapped + 1, data, size);
  wrapped[size + 1] = ']';
  ok_wrapped = decode(wrapped, size + 2); /* stack: ..., wrapped value, message */
  free(wrapped);
  if (ok) {
    if (!ok_wrapped) {
      if (strstr(lua_tostring(L, -1), "levels deep") == NULL) __builtin_trap();
    } else {
      lua_rawgeti(L, 4, 1);
      if (lua_rawlen(L, 4) != 1 || !same(2, lua_gettop(L), 0)) __builtin_trap();
    }
  } else if (ok_wrapped && lua_rawlen(L, 4) == 1) { /* "[text]" holds one value: the text */
    __builtin_trap();
  }
  if (++runs % 1024 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}

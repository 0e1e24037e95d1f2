/*
 * unwind_test.c -- a parser:feed that a memory error unwinds half way leaves
 * nothing behind that a later feed could trip on.
 *
 * Lua raises an allocation error wherever building the events asks for
 * memory, and the error unwinds through the C parser. The callback state of
 * that feed lived in its C frame; the parser must neither use it again nor
 * go on from the middle of the chunk. Run under AddressSanitizer (scripts/
 * test.sh does), a callback left pointing at the dead frame is an error.
 * For every allocation a feed makes, the test fails that one and checks that
 * the feed raised a memory error, then, in turns:
 *   - fed as a transfer feeds it (agentruns.sse's C API), and then by hand,
 *     the parser reports its failure; after reset() it parses again;
 *   - reset() at once, the parser parses again through the C API.
 *
 *   cc -fsanitize=address -Isrc $(pkg-config --cflags lua5.4) fuzz/unwind_test.c \
 *      src/lsse.c src/levents.c src/ljson.c src/sse.c src/buf.c src/error.c \
 *      $(pkg-config --libs lua5.4) -o build/unwind_test && build/unwind_test
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "agentruns.h"

int luaopen_agentruns_sse(lua_State *L);

/* Allocations still granted before every one is refused, or -1: none is. Lua collects and
   asks again when one is refused, so the refusal lasts until the test lifts it. */
static long fail_at = -1;
static int refused;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if (fail_at >= 0 && (ptr == NULL || nsize > osize)) {
    if (fail_at == 0) {
      refused = 1;
      return NULL;
    }
    fail_at--;
  }
  return realloc(ptr, nsize);
}

static int failures;

static void expect(int ok, const char *what, long round) {
  if (!ok) {
    fprintf(stderr, "unwind_test: allocation %ld: %s\n", round, what);
    failures++;
  }
}

/* Run Lua code that leaves one value; return it as a string ("" for non-strings). */
static const char *run(lua_State *L, const char *code) {
  lua_settop(L, 0);
  if (luaL_dostring(L, code) != LUA_OK) return lua_tostring(L, -1);
  return lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
}

int main(void) {
  long round, rounds = 0;
  for (round = 0; round < 100000; round++) {
    lua_State *L = lua_newstate(alloc, NULL);
    const agr_sse_api *api;
    agr_parser *ps;
    int rc;
    if (L == NULL) return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "agentruns.sse", luaopen_agentruns_sse, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, AGR_SSE_API_KEY);
    api = lua_touserdata(L, -1);
    run(L, "p = require('agentruns.sse').parser()\n"
           "chunk = string.rep('id: 7\\nevent: step\\ndata: a fairly long line of data\\n\\n', 200)");
    lua_getglobal(L, "p");
    ps = lua_touserdata(L, -1);
    lua_getglobal(L, "chunk");
    lua_getglobal(L, "p");
    lua_getfield(L, -1, "feed");
    lua_insert(L, -3); /* feed, chunk, p */
    lua_insert(L, -2); /* feed, p, chunk */
    fail_at = round;
    refused = 0;
    rc = lua_pcall(L, 2, 1, 0);
    fail_at = -1;
    if (!refused) { /* the feed asked for fewer allocations: every one has been refused */
      lua_close(L);
      break;
    }
    rounds++;
    expect(rc == LUA_ERRMEM, "the feed did not raise a memory error", round);
    if (round % 2 == 0) { /* fed again at once: through the C API, then by hand */
      const char *r;
      expect(api->feed(ps, "data: t\n\n", 9) == SSE_ENOMEM, "a transfer's feed went on", round);
      r = run(L, "local events, err = p:feed('data: next\\n\\n')\n"
                 "return events == nil and err.kind == 'memory' and 'failed' or 'went on'");
      expect(strcmp(r, "failed") == 0, "the next feed by hand went on", round);
      r = run(L, "p:reset()\n"
                 "local events = assert(p:feed('data: again\\n\\n'))\n"
                 "return events[1].data .. ' ' .. events[1].id");
      expect(strcmp(r, "again 7") == 0, "reset() did not bring the parser back", round);
    } else { /* reset at once, then fed as a transfer feeds it */
      run(L, "p:reset()");
    }
    expect(api->feed(ps, "data: through the API\n\n", 23) == SSE_OK, "the API feed after reset failed", round);
    api->push_events(L, ps);
    lua_rawgeti(L, -1, 1);
    lua_getfield(L, -1, "data");
    expect(lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "through the API") == 0,
           "the API feed after reset lost its event", round);
    lua_close(L);
  }
  if (rounds < 10) {
    fprintf(stderr, "unwind_test: only %ld allocations were failed\n", rounds);
    return 1;
  }
  printf("unwind_test: %ld allocations failed in turn, %d problems\n", rounds, failures);
  return failures != 0;
}

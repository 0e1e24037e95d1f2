/*
 * lcurl.c -- luaopen_agentruns_curl: HTTP over libcurl.
 *
 *   agentruns.curl = {
 *     session = function(opts) -> Session          (session.c, transfer.c, request.c)
 *     error_metatable = <metatable of error values> (error.c, shared with agentruns.sse)
 *     now = function() -> monotonic seconds,  sleep = function(seconds)
 *     version = "x.y.z", curl_version = "libcurl/..."
 *   }
 *
 * Streaming transfers feed parsers of agentruns.sse, which this module
 * requires and reaches through the function table that module publishes.
 */
#include <errno.h>
#include <time.h>

#include "curl_int.h"

AGR_EXPORT int luaopen_agentruns_curl(lua_State *L);

const agr_sse_api *agr_sse = NULL;

double agr_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* curl.now() -> seconds on the monotonic clock */
static int curl_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)agr_now());
  return 1;
}

/* curl.sleep(seconds): block the whole thread (plain scripts only). */
static int curl_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 1e9, 1, "seconds must be a non-negative number");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

/* A metatable `name` with the metamethods `meta` and `__index` = methods. */
void agr_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* require "agentruns.sse" and take its function table. */
static void load_sse(lua_State *L) {
  const agr_sse_api *api;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "agentruns.sse");
  lua_call(L, 1, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, AGR_SSE_API_KEY);
  api = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (api == NULL || api->version != AGR_SSE_API_VERSION)
    luaL_error(L, "agentruns.curl: agentruns.sse is missing or of another version");
  agr_sse = api;
}

int luaopen_agentruns_curl(lua_State *L) {
  load_sse(L);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return luaL_error(L, "agentruns: curl_global_init failed");
  agr_open_session_class(L);
  agr_open_transfer_class(L);
  lua_newtable(L);
  lua_pushcfunction(L, agr_session_new);
  lua_setfield(L, -2, "session");
  agr_open_error(L);
  lua_pushcfunction(L, curl_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, curl_sleep);
  lua_setfield(L, -2, "sleep");
  lua_pushliteral(L, AGR_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}

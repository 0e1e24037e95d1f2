/*
 * core.c -- luaopen_agentruns_core: the one exported symbol of the module.
 *
 * agentruns.core = {
 *   sse_parser = function(opts) -> SSEParser     (lsse.c)
 *   session = function(opts) -> Session          (session.c)
 *   error_metatable = <metatable of error values> (error.c)
 *   null = <JSON null: a userdata that prints as "null">
 *   now = function() -> monotonic seconds,  sleep = function(seconds)
 *   version = "x.y.z", curl_version = "libcurl/..."
 * }
 */
#include <errno.h>
#include <time.h>

#include <curl/curl.h>

#include "agentruns.h"

#if defined(__GNUC__)
#define AGR_EXPORT __attribute__((visibility("default")))
#else
#define AGR_EXPORT
#endif

AGR_EXPORT int luaopen_agentruns_core(lua_State *L);

/* core.now() -> seconds on the monotonic clock */
static int core_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* core.sleep(seconds): block the whole thread (plain scripts only). */
static int core_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 1e9, 1, "seconds must be a non-negative number");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

/* null's __tostring. */
static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

/*
 * Push core.null, JSON null as a value of its own. It is a full userdata so
 * that it can have a metatable of its own (cjson's null is a light userdata,
 * which prints as "userdata: (nil)" and shares one metatable with every other
 * light userdata). One per Lua state, kept in the registry, so requiring the
 * module again gives the same null.
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

int luaopen_agentruns_core(lua_State *L) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return luaL_error(L, "agentruns: curl_global_init failed");
  lua_newtable(L);
  agr_open_error(L);
  agr_open_parser(L);
  agr_open_session(L);
  lua_pushcfunction(L, core_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, core_sleep);
  lua_setfield(L, -2, "sleep");
  push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, AGR_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}

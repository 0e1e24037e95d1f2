/*
 * core.c -- luaopen_agentruns_core: the one exported symbol of the module.
 *
 * agentruns.core = {
 *   sse_parser = function(opts) -> SSEParser     (lsse.c)
 *   session = function(opts) -> Session          (session.c)
 *   error_metatable = <metatable of error values> (error.c)
 *   version = "x.y.z", curl_version = "libcurl/..."
 * }
 */
#include <curl/curl.h>

#include "agentruns.h"

#if defined(__GNUC__)
#define AGR_EXPORT __attribute__((visibility("default")))
#else
#define AGR_EXPORT
#endif

AGR_EXPORT int luaopen_agentruns_core(lua_State *L);

int luaopen_agentruns_core(lua_State *L) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return luaL_error(L, "agentruns: curl_global_init failed");
  lua_newtable(L);
  agr_open_error(L);
  agr_open_parser(L);
  agr_open_session(L);
  lua_pushliteral(L, AGR_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}

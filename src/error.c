/*
 * error.c -- runtime failures as values.
 *
 * A failure is a plain table { kind = ..., message = ..., ... } whose
 * metatable (agentruns.CoreError, exported as error_metatable so the Lua
 * layer can extend it) gives it a one-line __tostring. It is returned as the
 * second value after nil, never raised.
 */
#include "agentruns.h"

/* __tostring: "message" when there is one, else "agentruns error (kind)". */
static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "message");
  if (lua_type(L, -1) == LUA_TSTRING) return 1;
  lua_getfield(L, 1, "kind");
  lua_pushfstring(L, "agentruns error (%s)", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  return 1;
}

/* Push a new error table with the given kind and message. */
void agr_new_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, AGR_ERROR_MT);
}

/* Create the metatable (once per state) and set error_metatable in the module table on top. */
void agr_open_error(lua_State *L) {
  luaL_newmetatable(L, AGR_ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, AGR_ERROR_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "error_metatable");
}

/*
 * compat.h -- every difference between Lua 5.1 / LuaJIT and Lua 5.2+ that
 * the C core relies on, in one place. Logic files use the 5.4 names only.
 */
#ifndef AGENTRUNS_COMPAT_H
#define AGENTRUNS_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502

/* LuaJIT's headers define some of these (luaL_newlib as a macro). */
#undef luaL_newlib
#undef luaL_setfuncs
#undef luaL_setmetatable
#undef luaL_testudata
#undef lua_rawlen

#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_setfuncs(L, l, nup) compat_setfuncs((L), (l), (nup))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
#define luaL_setmetatable(L, tname) (luaL_getmetatable((L), (tname)), lua_setmetatable((L), -2))
#define luaL_testudata(L, i, tname) compat_testudata((L), (i), (tname))

/* Register the functions of l into the table on top, below nup upvalues. */
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  int i;
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

/* The userdata at index i if its metatable is tname's, else NULL. */
static inline void *compat_testudata(lua_State *L, int i, const char *tname) {
  void *p = lua_touserdata(L, i);
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

/* 5.1 has no uservalues on full userdata; its function environments serve. */
#define compat_setuservalue(L, i) lua_setfenv((L), (i))
#define compat_getuservalue(L, i) lua_getfenv((L), (i))

#else

#define compat_setuservalue(L, i) lua_setuservalue((L), (i))
#define compat_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))

#endif

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#else
#define compat_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

#endif

-- luacheck configuration: the library must run unchanged on Lua 5.1, 5.4 and LuaJIT.
std = "max"
max_line_length = 120
exclude_files = { "build/", ".rocks/", "lua_modules/" }
files["spec/"] = { std = "+busted" }
files["bench/"] = { globals = {} }

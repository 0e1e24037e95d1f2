-- luacheck configuration: the library must run unchanged on Lua 5.1, 5.4 and LuaJIT, so only
-- what all three share is allowed (std = "min"); the differences live in lua/agentruns/compat.lua.
std = "min"
max_line_length = 120
exclude_files = { "build/", ".rocks/", "lua_modules/", "types/" } -- types/: LuaCATS declarations, generated
files["spec/"] = { std = "+busted" }
files["bench/"] = { globals = {} }
-- Files that run inside Neovim see its `vim` global.
files["examples/neovim/"] = { read_globals = { "vim" }, globals = { "AgentrunsRuns" } }
files["spec/support/nvim_driver.lua"] = { read_globals = { "vim" } }
files["spec/support/nvim_task_error.lua"] = { globals = { "vim" } }
-- Files that run inside nginx see its `ngx` global.
files["examples/nginx/"] = { read_globals = { "ngx" } }

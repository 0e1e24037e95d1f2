--[[
The names Lua 5.1, LuaJIT and 5.4 do not share, looked up once, so that the
rest of the code uses only what all three have (luacheck's std = "min").

  compat.pack(...)        table.pack, or the same in Lua
  compat.unpack           table.unpack or unpack
  compat.math_type(v)     math.type ("integer" | "float"), nil before Lua 5.3
  compat.tointeger(v)     math.tointeger, nil before Lua 5.3
  compat.jit              LuaJIT's jit table, nil elsewhere
]]
local M = {}

M.pack = rawget(table, "pack") or function(...) return { n = select("#", ...), ... } end
M.unpack = rawget(table, "unpack") or rawget(_G, "unpack")
M.math_type = rawget(math, "type")
M.tointeger = rawget(math, "tointeger")
M.jit = rawget(_G, "jit")

return M

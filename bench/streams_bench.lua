-- streams_bench.lua -- many live event streams in one Lua process (see streams_run.lua).
--
--   lua5.4 bench/streams_bench.lua BASE_URL N
--
-- The tasks run over one curl multi session; the wall clock is LuaSocket's gettime
-- (sub-millisecond). bench/nginx_client.conf runs the same measurement inside nginx.
package.path = "bench/?.lua;" .. package.path
local base_url, n = arg[1], tonumber(arg[2])
assert(base_url and n, "usage: streams_bench.lua BASE_URL N")

local socket = require "socket"
local jit = rawget(_G, "jit")
print(require("streams_run").run {
  base_url = base_url, n = n, runtime = jit and jit.version or _VERSION,
  now_ms = function() return socket.gettime() * 1000 end,
})

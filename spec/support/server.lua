--[[
Starts a server program as a child process for the duration of a spec.

  local server = require "spec.support.server"
  local srv = server.start({ "luajit", "spec/support/test_server.lua" })
  -- srv.url == "http://127.0.0.1:PORT"
  srv:stop()

  local test_srv = server.test_server()   -- spec/support/test_server.lua under luajit
  test_srv.log()                          -- the requests it received since the last call

The program must print "listening on http://127.0.0.1:PORT" on its first
line. The child runs under `sh`, which reports its pid first, so stop() can
signal it; a server that never says it is listening is killed and start()
raises.
]]
local M = {}

local shell_quote = require("spec.support.files").shell_quote

--- Start `argv` (an array of words); `env` is an optional map of variables.
function M.start(argv, env)
  local words = {}
  for name, value in pairs(env or {}) do words[#words + 1] = name .. "=" .. shell_quote(value) end
  for _, w in ipairs(argv) do words[#words + 1] = shell_quote(w) end
  local cmd = "echo $$; exec timeout 600 env -u LD_PRELOAD " .. table.concat(words, " ")
  local pipe = assert(io.popen("sh -c " .. shell_quote(cmd), "r"))
  local pid = tonumber(pipe:read("*l"))
  local line = pipe:read("*l")
  local url = line and line:match("^listening on (https?://127%.0%.0%.1:%d+)")
  local srv = { url = url, pid = pid, pipe = pipe }
  function srv.stop()
    if srv.pid then
      os.execute("kill " .. srv.pid .. " 2>/dev/null")
      srv.pid = nil
      srv.pipe:close()
    end
  end
  if not url then
    srv.stop()
    error("server did not start: " .. tostring(line), 2)
  end
  return srv
end

--- Start spec/support/test_server.lua; the result also has log().
function M.test_server()
  local srv = M.start { "luajit", "spec/support/test_server.lua" }
  function srv.log()
    local cjson = require "cjson"
    local s = require("agentruns.curl").session()
    local res = assert(s:request({ url = srv.url .. "/log" }):wait())
    s:close()
    return cjson.decode(res.body)
  end
  return srv
end

return M

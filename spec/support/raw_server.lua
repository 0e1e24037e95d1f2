--[[
A server that answers each request with canned bytes, then closes: for
comparing another HTTP client's reading of them with agentruns.http1.

  lua spec/support/raw_server.lua CASES_FILE

CASES_FILE is a Lua chunk returning an array of strings; GET /N answers with
case N exactly as it is. Prints "listening on http://127.0.0.1:PORT" first.
]]
local socket = require "socket"

local cases = assert(dofile(arg[1]))
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
io.stdout:write("listening on http://127.0.0.1:", port, "\n")
io.stdout:flush()
server:settimeout(60) -- a server nobody uses any more ends by itself

while true do
  local conn = server:accept()
  if not conn then break end
  conn:settimeout(10)
  local line = conn:receive("*l")
  repeat local h = conn:receive("*l") until not h or h == ""
  local n = line and tonumber(line:match("^GET /(%d+) "))
  if n and cases[n] then conn:send(cases[n]) end
  conn:close()
end

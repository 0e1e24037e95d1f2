--[[
Starts sandbox/bin/agentruns-sandbox as a child process for the duration of a spec file.

  local sandbox = require "spec.support.sandbox"
  local sb = sandbox.start{ keepalive = 0.2, step_delay = 0.05, seed = 1 }
  -- sb.url == "http://127.0.0.1:PORT"; sb.keys.toolregistry.api_key == "tr_sandbox_key"
  sb.stop()

The child runs under the interpreter that runs busted (so a LuaJIT run tests the sandbox under
LuaJIT), with the repository's lua/ and, for Lua 5.4, Debian's 5.1 folder (lua-http) on its
path. Its standard input is a pipe from this process and it is started with
--exit-on-stdin-eof: if the test runner dies in any way, the pipe closes and the sandbox exits.
stop() sends SIGTERM, waits (bounded) for the exit, escalates to SIGKILL if needed, and reaps.
Options: seed, keepalive, step_delay, retry_ms (default 100), humm_pagination, extra_args (list),
interpreter (default: the one running busted), timeout (seconds to wait for "listening on",
default 15).
]]
local sandbox = {}

local shell_quote = require("spec.support.files").shell_quote

-- The interpreter running this process: the lowest arg[] index, else guessed from the version.
local function interpreter()
  if type(arg) == "table" then
    local i = 0
    while arg[i - 1] ~= nil do i = i - 1 end
    if i < 0 then return arg[i] end
  end
  if rawget(_G, "jit") then return "luajit" end
  if _VERSION == "Lua 5.4" then return "lua5.4" end
  return "lua5.1"
end

-- The repository root, from this file's own path (spec/support/sandbox.lua).
local function repo_root()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = source:match("^(.*)/spec/support/[^/]*$")
  if root then return root end
  return "."
end

-- Make the repository's modules reachable even when the runner's path lacks lua/ (under Lua 5.4
-- LUA_PATH_5_4 replaces LUA_PATH).
do
  local root = repo_root()
  local probe = io.open(root .. "/sandbox/lua/agentruns/sandbox/keys.lua", "r")
  if probe then
    probe:close()
    if not package.path:find(root .. "/sandbox/lua/?.lua", 1, true) then
      package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/sandbox/lua/?.lua;"
        .. package.path
    end
  end
end

local cqueues = require "cqueues"
local keys = require "agentruns.sandbox.keys"

sandbox.interpreter = interpreter
sandbox.root = repo_root

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local text = f:read("*a") or ""
  f:close()
  return text
end

-- True while process `pid` exists and is not a zombie.
local function alive(pid)
  local stat = io.open("/proc/" .. pid .. "/stat", "r")
  if not stat then return false end
  local text = stat:read("*l") or ""
  stat:close()
  return text:match("^%d+ %b() (%a)") ~= "Z"
end

-- Starts a sandbox; raises when it does not report listening in time.
function sandbox.start(options)
  options = options or {}
  local root = repo_root()
  local out_path, err_path, pid_path = os.tmpname(), os.tmpname(), os.tmpname()
  local args = {
    "--port", "0",
    "--seed", tostring(options.seed or 1),
    "--keepalive", tostring(options.keepalive or 0.2),
    "--step-delay", tostring(options.step_delay or 0.05),
    "--retry-ms", tostring(options.retry_ms or 100),
    "--exit-on-stdin-eof",
  }
  if options.humm_pagination then
    args[#args + 1] = "--humm-pagination"
    args[#args + 1] = options.humm_pagination
  end
  for _, a in ipairs(options.extra_args or {}) do args[#args + 1] = a end
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
  local lua_path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"
  local command = table.concat({
    "echo $$ > " .. shell_quote(pid_path) .. ";",
    "exec env",
    "LUA_PATH=" .. shell_quote(lua_path),
    "LUA_PATH_5_4=" .. shell_quote(lua_path .. "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"),
    shell_quote(options.interpreter or interpreter()), shell_quote(root .. "/sandbox/bin/agentruns-sandbox"),
    table.concat(quoted, " "),
    ">" .. shell_quote(out_path), "2>" .. shell_quote(err_path),
  }, " ")
  local pipe = assert(io.popen("sh -c " .. shell_quote(command), "w"))

  local sb = { keys = keys, stdout_path = out_path, stderr_path = err_path }
  local stopped = false

  function sb.stderr()
    return read_file(err_path)
  end

  function sb.stop()
    if stopped then return end
    stopped = true
    local pid = sb.pid or tonumber(read_file(pid_path):match("%d+"))
    if pid then
      os.execute("kill -TERM " .. pid .. " 2>/dev/null")
      local deadline = cqueues.monotime() + 5
      while alive(pid) and cqueues.monotime() < deadline do cqueues.sleep(0.02) end
      if alive(pid) then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    end
    pipe:close() -- closes the child's stdin too, then reaps it
    os.remove(out_path)
    os.remove(err_path)
    os.remove(pid_path)
  end

  local deadline = cqueues.monotime() + (options.timeout or 15)
  while true do
    local line = read_file(out_path):match("^[^\n]*\n")
    local url = line and line:match("^listening on (http://127%.0%.0%.1:(%d+))\n$")
    if url then
      sb.url = url
      sb.port = tonumber(url:match(":(%d+)$"))
      sb.pid = tonumber(read_file(pid_path):match("%d+"))
      return sb
    end
    local pid = tonumber(read_file(pid_path):match("%d+"))
    if (pid and not alive(pid)) or cqueues.monotime() > deadline then
      local errors = sb.stderr()
      sb.stop()
      error("agentruns-sandbox did not start: " .. (errors ~= "" and errors or "no output"), 2)
    end
    cqueues.sleep(0.02)
  end
end

return sandbox

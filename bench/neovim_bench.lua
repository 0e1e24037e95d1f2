-- neovim_bench.lua -- how late a 50 ms editor timer fires while agentruns works inside Neovim.
--
--   lua5.4 bench/neovim_bench.lua SANDBOX_URL [RUNS]
--
-- Runs spec/support/nvim_driver.lua in headless Neovim exactly as spec/neovim_spec.lua does
-- (same command and environment, the LuaJIT build, 20 list requests each delayed 0.3 s by the
-- sandbox plus one live run's event stream, all on Neovim's libuv loop) RUNS times (default 3)
-- against a running sandbox (started with --step-delay 0.05 --keepalive 0.2, as the spec's).
-- The driver measures the longest gap between two ticks of a 50 ms uv timer. Prints, per run:
--   nvim  max_gap_ms  ticks  seconds  events  listed  finished
local cjson = require "cjson"
local clock = require("agentruns.core").now

local sandbox_url, runs = arg[1], tonumber(arg[2]) or 3
assert(sandbox_url, "usage: neovim_bench.lua SANDBOX_URL [RUNS]")

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

for _ = 1, runs do
  local result_file = os.tmpname()
  local env = {
    LUA_PATH = "lua/?.lua;lua/?/init.lua;./?.lua;;",
    LUA_CPATH = "build/luajit/?.so;;",
    TOOLREGISTRY_API_KEY = "tr_sandbox_key",
    TOOLREGISTRY_BASE_URL = sandbox_url .. "/toolregistry",
    AGENTRUNS_RESULT = result_file,
    AGENTRUNS_COUNT = "20",
  }
  local words = {}
  for k, v in pairs(env) do words[#words + 1] = k .. "=" .. shell_quote(v) end
  local lua_cmd = "lua local ok, e = pcall(dofile, 'spec/support/nvim_driver.lua'); "
    .. "if not ok then io.stderr:write(tostring(e), '\\n'); vim.cmd('cquit 3') end"
  local cmd = "timeout 60 env -u LD_PRELOAD " .. table.concat(words, " ")
    .. " nvim --headless --clean -c " .. shell_quote(lua_cmd) .. " -c 'qa!' 2>&1"
  local start = clock()
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local seconds = clock() - start
  local f = io.open(result_file)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(result_file)
  if text == "" then error("no result from nvim:\n" .. out) end
  local r = cjson.decode(text)
  io.write(table.concat({ "nvim", string.format("%.1f", r.max_gap_ms), string.format("%d", r.ticks),
                          string.format("%.2f", seconds), string.format("%d", r.events),
                          string.format("%d", r.listed), tostring(r.finished) }, "\t"), "\n")
  io.flush()
end

-- agentruns inside headless Neovim, driven by Neovim's libuv loop (agentruns.use_loop):
-- the editor's timers keep ticking while requests and a stream run through the sandbox.
local sandbox = require "spec.support.sandbox"
local cjson = require "cjson"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local has_nvim = os.execute("command -v nvim >/dev/null 2>&1")
has_nvim = has_nvim == true or has_nvim == 0

describe("Neovim", function()
  if not has_nvim then
    pending("nvim is not installed (scripts/deps.sh installs the neovim package)")
    return
  end

  local sb
  setup(function() sb = sandbox.start { step_delay = 0.05, keepalive = 0.2 } end)
  teardown(function() sb.stop() end)

  it("keeps a 50 ms timer on time while 20 requests and a stream complete", function()
    local result_file = os.tmpname()
    local env = {
      LUA_PATH = "lua/?.lua;lua/?/init.lua;./?.lua;;",
      LUA_CPATH = "build/luajit/?.so;;",
      TOOLREGISTRY_API_KEY = sb.keys.toolregistry.api_key,
      TOOLREGISTRY_BASE_URL = sb.url .. "/toolregistry",
      AGENTRUNS_RESULT = result_file,
      AGENTRUNS_COUNT = "20",
    }
    local words = {}
    for k, v in pairs(env) do words[#words + 1] = k .. "=" .. shell_quote(v) end
    local lua_cmd = "lua local ok, e = pcall(dofile, 'spec/support/nvim_driver.lua'); "
      .. "if not ok then io.stderr:write(tostring(e), '\\n'); vim.cmd('cquit 3') end"
    local cmd = "timeout 60 env -u LD_PRELOAD " .. table.concat(words, " ")
      .. " nvim --headless --clean -c " .. shell_quote(lua_cmd) .. " -c 'qa!' 2>&1; echo \"exit=$?\""
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local f = io.open(result_file)
    local text = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(result_file)
    assert(text ~= "", "no result from nvim:\n" .. out)
    assert.matches("exit=0", out, nil, true)
    local r = cjson.decode(text)
    assert.same({ true, {}, 40, cjson.null }, { r.finished, r.failures, r.listed, r.stream_error })
    assert.is_true(r.events >= 5, "events: " .. r.events)
    assert.is_true(r.ticks >= 5, "ticks: " .. r.ticks)
    assert.is_true(r.max_gap_ms < 100, "the editor's timer stalled for " .. r.max_gap_ms .. " ms")
    assert.is_true(r.buffer_lines >= r.expected_lines)
  end)
end)

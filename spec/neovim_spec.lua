-- agentruns inside headless Neovim, driven by Neovim's libuv loop (agentruns.use_loop):
-- the editor's timers keep ticking while requests and a stream run through the sandbox.
local sandbox = require "spec.support.sandbox"
local nvim = require "spec.support.nvim"
local cjson = require "cjson"

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

  it("keeps the editor's timer running while 20 requests and a stream complete, never blocking", function()
    local r, out = nvim.run_driver(sb.url, sb.keys.toolregistry.api_key, 20)
    assert(r, "no result from nvim:\n" .. out)
    assert.matches("exit=0", out, nil, true)
    assert.same({ true, {}, 40, cjson.null }, { r.finished, r.failures, r.listed, r.stream_error })
    assert.is_true(r.events >= 5, "events: " .. r.events)
    -- the requests take at least 0.3 s (the sandbox delays each): a 50 ms timer that never
    -- ran meanwhile means the loop was held
    assert.is_true(r.ticks_in_flight >= 1, "the editor's timer never ran while requests were in flight")
    assert.equal(0, r.blocking_calls, "the library blocked the loop (the longest timer gap was "
      .. r.max_gap_ms .. " ms)")
    assert.is_true(r.buffer_lines >= r.expected_lines)
  end)
end)

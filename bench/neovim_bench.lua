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
local nvim = require "spec.support.nvim"
local clock = require("agentruns.curl").now

local sandbox_url, runs = arg[1], tonumber(arg[2]) or 3
assert(sandbox_url, "usage: neovim_bench.lua SANDBOX_URL [RUNS]")

for _ = 1, runs do
  local start = clock()
  local r, out = nvim.run_driver(sandbox_url, "tr_sandbox_key", 20)
  local seconds = clock() - start
  if not r then error("no result from nvim:\n" .. out) end
  io.write(table.concat({ "nvim", string.format("%.1f", r.max_gap_ms), string.format("%d", r.ticks),
                          string.format("%.2f", seconds), string.format("%d", r.events),
                          string.format("%d", r.listed), tostring(r.finished) }, "\t"), "\n")
  io.flush()
end

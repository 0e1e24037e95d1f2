--[[
Run inside headless Neovim by spec/neovim_spec.lua. Loads the Neovim example,
starts COUNT list requests (each delayed by the sandbox) and one live run's
stream through it, keeps a 50 ms uv timer ticking meanwhile, and writes what
happened as JSON to $AGENTRUNS_RESULT.
]]
local uv = vim.loop
local cjson = require "cjson"
local runtime = require "agentruns.runtime"
local session_methods = getmetatable(require("agentruns.transport.curl").shared_session()).__index

-- What would stall the editor, counted instead of timed (a busy machine stalls it anyway):
-- a wait inside libcurl (perform with a positive timeout) or a sleep of the whole thread.
-- Under the loop neither may happen; vim.wait is how code outside tasks waits.
local blocking_calls = 0
local perform = session_methods.perform
session_methods.perform = function(s, wait, ...)
  if wait and wait > 0 then blocking_calls = blocking_calls + 1 end
  return perform(s, wait, ...)
end
local sleep_thread = runtime.sleep_thread
runtime.sleep_thread = function(...)
  blocking_calls = blocking_calls + 1
  return sleep_thread(...)
end

local example = dofile("examples/neovim/runs.lua").setup {}
local count = tonumber(os.getenv "AGENTRUNS_COUNT") or 20

local tasks = {}
local function all_done()
  for _, t in ipairs(tasks) do
    if not t:done() then return false end
  end
  return true
end

-- The editor's own timer: how often it ran while requests were in flight.
local last, max_gap, ticks, ticks_in_flight = uv.hrtime(), 0, 0, 0
local ticker = uv.new_timer()
ticker:start(50, 50, function()
  local now = uv.hrtime()
  local gap = (now - last) / 1e6
  if gap > max_gap then max_gap = gap end
  last = now
  ticks = ticks + 1
  if #tasks > 0 and not all_done() then ticks_in_flight = ticks_in_flight + 1 end
end)

local buf = vim.api.nvim_create_buf(false, true)
for i = 1, count do
  tasks[i] = example.show_runs { buf = buf, count = 2,
                                 call_options = { headers = { ["x-sandbox-fault"] = "delay=0.3" } } }
end
local run = assert(example.tr:create_run { intent = "Summarise the week", selectedCustomerIntegrationIds = { "*" },
                                           context = "", userId = "user-123" })
local follow = example.follow_run(run.runId, { buf = buf })
tasks[#tasks + 1] = follow

local finished = vim.wait(20000, all_done, 10)
ticker:stop()
ticker:close()

-- The buffer gets its lines through vim.schedule; let those land.
local function lines() return #vim.api.nvim_buf_get_lines(buf, 0, -1, false) end
local expected_lines = 1 + count * 2 + (follow:done() and (follow:join() or 0) or 0)
vim.wait(5000, function() return lines() >= expected_lines end, 10)

local listed, failures = 0, {}
for i = 1, count do
  local n, err = tasks[i]:join()
  if n then listed = listed + n else failures[#failures + 1] = tostring(err) end
end
local events, stream_err = follow:join()
local f = assert(io.open(os.getenv "AGENTRUNS_RESULT", "w"))
f:write(cjson.encode {
  finished = finished, max_gap_ms = max_gap, ticks = ticks, ticks_in_flight = ticks_in_flight,
  blocking_calls = blocking_calls, listed = listed, failures = failures,
  events = events or 0, stream_error = stream_err and tostring(stream_err) or cjson.null,
  buffer_lines = lines(), expected_lines = expected_lines,
})
f:close()

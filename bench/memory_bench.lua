-- memory_bench.lua -- peak resident memory of a long stream and of a long paged walk.
--
--   lua5.4 bench/memory_bench.lua stream   BASE_URL MEGABYTES [SECONDS]
--   lua5.4 bench/memory_bench.lua each_run BASE_URL SET [SECONDS]   (SET: u10k or u100k)
--
-- stream: `for ev in tr:stream_events(id) do ... end` over an event stream of MEGABYTES MB of
-- ~1 KB events ending with `end` (bench/nginx.conf makes it; the run id's last six digits
-- give the size). each_run: `for run in tr:each_run{ userId = SET } do ... end` over pages of
-- 100 runs (10,000 or 100,000 runs). The loop body only counts, so what is measured is what the
-- library keeps. VmRSS is read from /proc/self/status just before the loop (the baseline, with
-- the library loaded and the client made) and VmHWM, the peak, after it. Prints a record for
-- bench/report.lua:
--   memory  <what>  <runtime>  <size>  baseline_kb  peak_kb  items  seconds  data_bytes  complete
-- A walk still going after SECONDS (default 60) is stopped there and reported as incomplete,
-- with what it had received by then.
local mode, base_url, size = arg[1], arg[2], arg[3]
local limit = tonumber(arg[4]) or 60
assert(mode and base_url and size, "usage: memory_bench.lua stream|each_run BASE_URL SIZE")

package.path = "bench/?.lua;" .. package.path
local agentruns = require "agentruns"
local clock = agentruns.curl.now
local runtime = (rawget(_G, "jit") and rawget(_G, "jit").version) or _VERSION

local status_kb = require "proc_status"

local tr = agentruns.toolregistry.new { api_key = "x", base_url = base_url }
local count, data_bytes, complete, what, label = 0, 0, true, nil, nil
collectgarbage()
local baseline = status_kb("VmRSS")
local start = clock()
if mode == "stream" then
  local mb = assert(tonumber(size), "MEGABYTES must be a number")
  local id = string.format("00000000-0000-4000-8000-%012d", mb)
  what, label = "stream_events", mb .. " MB"
  local stream, last = tr:stream_events(id), nil
  while true do
    local ev, err = stream:next()
    if err then error("stream_events: " .. tostring(err)) end
    if not ev then break end
    count = count + 1
    data_bytes = data_bytes + #ev.raw
    last = ev
    if count % 256 == 0 and clock() - start > limit then
      complete = false
      stream:close()
      break
    end
  end
  if complete and (not last or last.event ~= "end") then error("the stream did not end with its end event") end
elseif mode == "each_run" then
  what = "each_run"
  label = ({ u10k = "10k runs", u100k = "100k runs" })[size] or size
  local it = tr:each_run { userId = size }
  while true do
    local run, err = it:next()
    if err then error("each_run: " .. tostring(err)) end
    if not run then break end
    count = count + 1
    if count % 256 == 0 and clock() - start > limit then
      complete = false
      it:close()
      break
    end
  end
else
  error("unknown mode " .. tostring(mode))
end
local seconds = clock() - start
local peak = status_kb("VmHWM")
io.write(table.concat({ "memory", what, runtime, label, baseline, peak, count, string.format("%.2f", seconds),
                        data_bytes, complete and "complete" or "stopped" }, "\t"), "\n")

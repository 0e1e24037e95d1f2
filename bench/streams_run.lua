--[[
streams_run.lua -- the measurement behind the streams benchmark, for any host.

    require("streams_run").run { base_url = URL, n = N, runtime = NAME, now_ms = fn }

N tasks (agentruns.gather: tasks over one curl multi session in a Lua process, light threads
inside nginx) each follow `tr:stream_events(id)` on bench/nginx.conf's /live streams: 25 events
at 5 events/s, each carrying the wall-clock millisecond it was sent, then `end`. Measured:
resident memory per open stream (VmRSS once every stream has delivered its first event, less
VmRSS before the first was opened, over N), client CPU per event (os.clock over the whole run,
over the events), and delivery latency (now_ms() when Lua sees the event, less the time nginx
sent it) p50 and p99. The streams end by themselves; a run still going after 60 s is stopped
and marked incomplete. Returns the record for bench/report.lua:
  streams  <runtime>  <N>  rss_per_stream_kb  cpu_us_per_event  p50_ms  p99_ms  events  complete
]]
local agentruns = require "agentruns"

local M = {}

local LIMIT = 60
local EVENTS = 25

local status_kb = require "proc_status"

function M.run(opts)
  local n, now_ms = opts.n, opts.now_ms
  local tr = agentruns.toolregistry.new { api_key = "x", base_url = opts.base_url .. "/live", idle_timeout = 30 }
  local latencies, first_seen, open_rss, complete = {}, 0, nil, true
  local started = now_ms()
  collectgarbage()
  collectgarbage()
  local baseline = status_kb("VmRSS")
  local cpu0 = os.clock()

  local jobs = {}
  for i = 1, n do
    jobs[i] = function()
      local stream = tr:stream_events(string.format("00000000-0000-4000-8000-%012d", i))
      local got = 0
      while true do
        local ev, err = stream:next()
        if err then error("stream " .. i .. ": " .. tostring(err)) end
        if not ev then break end
        local seen = now_ms()
        if ev.event == "step" then
          latencies[#latencies + 1] = seen - ev.data.sent_ms
          got = got + 1
          if got == 1 then
            first_seen = first_seen + 1
            if first_seen == n then open_rss = status_kb("VmRSS") end
          end
        end
        if seen - started > LIMIT * 1000 then
          complete = false
          stream:close()
          break
        end
      end
      return got
    end
  end
  local results = agentruns.gather(jobs)
  local cpu = os.clock() - cpu0
  for i, r in ipairs(results) do
    if r[1] == nil then error("task " .. i .. " failed: " .. tostring(r[2])) end
    if r[1] ~= EVENTS then complete = false end
  end
  table.sort(latencies)
  local function pct(p) return latencies[math.max(1, math.ceil(p * #latencies))] or 0 end
  return string.format("streams\t%s\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%d\t%s", opts.runtime, n,
    ((open_rss or status_kb("VmRSS")) - baseline) / n, cpu * 1e6 / math.max(#latencies, 1), pct(0.5), pct(0.99),
    #latencies, complete and "complete" or "incomplete")
end

return M

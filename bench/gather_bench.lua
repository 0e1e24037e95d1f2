-- gather_bench.lua -- 50 calls to a server that answers each after 200 ms: one call alone,
-- all 50 through agentruns.gather, and the 50 one after another.
--
--   lua5.4 bench/gather_bench.lua SERVER_LABEL BASE_URL API_KEY RUN_ID [SANDBOX_FAULT [SEQUENTIAL_RUNS]]
--
-- Every call is tr:get_run(RUN_ID) on a ToolRegistry client whose base_url is BASE_URL (RUN_ID
-- "-": the newest run tr:list_runs gives).
-- With SANDBOX_FAULT (e.g. "delay=0.2") each call carries it in x-sandbox-fault, which makes
-- the sandbox wait before answering; without it (or "-") the server is expected to wait by
-- itself (bench/nginx.conf's /slow prefix). The 50 sequential calls take 10 s a run:
-- SEQUENTIAL_RUNS (default 1; 0 leaves them out). Prints records for bench/report.lua:
--   gather  <server>  <runtime>  one|gathered|sequential  <calls>  seconds,seconds,...
local label, base_url, api_key, run_id, fault = arg[1], arg[2], arg[3], arg[4], arg[5]
assert(run_id, "usage: gather_bench.lua SERVER_LABEL BASE_URL API_KEY RUN_ID [SANDBOX_FAULT [SEQUENTIAL_RUNS]]")
if fault == "-" then fault = nil end

local agentruns = require "agentruns"
local clock = agentruns.curl.now
local runtime = (rawget(_G, "jit") and rawget(_G, "jit").version) or _VERSION
local CALLS = 50
local RUNS_ONE, RUNS_GATHERED, RUNS_SEQUENTIAL = 5, 5, tonumber(arg[6]) or 1

local tr = agentruns.toolregistry.new { api_key = api_key, base_url = base_url }
if run_id == "-" then run_id = assert(tr:list_runs { pageSize = 1 }).runs[1].runId end
local options = fault and { headers = { ["x-sandbox-fault"] = fault } } or nil

local function call()
  local run, err = tr:get_run(run_id, nil, options)
  if not run then error("get_run failed: " .. tostring(err)) end
  if run.runId ~= run_id then error("get_run returned another run") end
  return run
end

local function record(mode, calls, times)
  local out = {}
  for i, t in ipairs(times) do out[i] = string.format("%.4f", t) end
  io.write(table.concat({ "gather", label, runtime, mode, calls, table.concat(out, ",") }, "\t"), "\n")
  io.flush()
end

local function timed(fn)
  collectgarbage()
  local start = clock()
  fn()
  return clock() - start
end

call() -- warm up: connect
local one = {}
for i = 1, RUNS_ONE do one[i] = timed(call) end
record("one", 1, one)

local fns = {}
for i = 1, CALLS do fns[i] = call end
local gathered = {}
for i = 1, RUNS_GATHERED do
  gathered[i] = timed(function()
    local results = agentruns.gather(fns)
    for j = 1, CALLS do
      if results[j].n ~= 1 then error("a gathered call failed: " .. tostring(results[j][2])) end
    end
  end)
end
record("gathered", CALLS, gathered)

if RUNS_SEQUENTIAL > 0 then
  local sequential = {}
  for i = 1, RUNS_SEQUENTIAL do
    sequential[i] = timed(function()
      for _ = 1, CALLS do call() end
    end)
  end
  record("sequential", CALLS, sequential)
end

-- request_bench.lua -- microseconds per GET of a 1 KB JSON run from a local server, decoded.
--
--   lua5.4 bench/request_bench.lua MODE BASE_URL RUN_ID
--
-- MODE is one of
--   agentruns   tr:get_run(RUN_ID) on agentruns.toolregistry.new{ base_url = BASE_URL }: argument
--               checks, the request, status handling, JSON decode (the whole provider call)
--   core        agentruns.curl session:request + wait on one session, body not decoded (what
--               the C core costs by itself, seen from Lua)
--   luasocket   LuaSocket's socket.http.request(url) then cjson.decode (LuaSocket opens a new
--               connection per request: it has no keep-alive)
--   curl-cli    the curl program spawned per request through io.popen, its output decoded
--               with cjson (how editor plugins often do it)
-- Each run makes up to REQUESTS calls or stops after SECONDS, whichever comes first, after a
-- warm-up; prints one record for bench/report.lua, per run the wall-clock microseconds per
-- request and the CPU microseconds this process spent per request (os.clock: user + system;
-- "-" for curl-cli, whose work happens in the child processes):
--   request  <label>  <runtime>  wall_us,wall_us,...  cpu_us,cpu_us,...
local mode, base_url, run_id = arg[1], arg[2], arg[3]
assert(mode and base_url and run_id, "usage: request_bench.lua MODE BASE_URL RUN_ID")

local curl = require "agentruns.curl"
local cjson = require "cjson"
local clock = curl.now
local runtime = (rawget(_G, "jit") and rawget(_G, "jit").version) or _VERSION
local url = base_url .. "/v1/runs/" .. run_id

-- requests per run, runs, seconds per run at most
local PLAN = {
  agentruns = { 3000, 7, 1.5 },
  core = { 3000, 7, 1.5 },
  luasocket = { 1000, 5, 1.5 },
  ["curl-cli"] = { 100, 5, 2 },
}

local label, one_request

if mode == "agentruns" then
  local agentruns = require "agentruns"
  local tr = agentruns.toolregistry.new { api_key = "x", base_url = base_url }
  label = "agentruns get_run"
  one_request = function()
    local run = tr:get_run(run_id)
    return run and run.runId == run_id
  end
elseif mode == "core" then
  local session = curl.session()
  local headers = { "Accept: application/json", "x-api-key: x" }
  label = "agentruns.curl transfer"
  one_request = function()
    local res = session:request { url = url, headers = headers }:wait()
    return res and res.status == 200 and #res.body > 0
  end
elseif mode == "luasocket" then
  local http = require "socket.http"
  label = "LuaSocket http.request"
  one_request = function()
    local body, code = http.request(url)
    if code ~= 200 then return false end
    return cjson.decode(body).runId == run_id
  end
elseif mode == "curl-cli" then
  local command = "exec curl -s -H 'x-api-key: x' '" .. url .. "'"
  label = "curl CLI per request"
  one_request = function()
    local p = io.popen(command)
    local body = p:read("a")
    p:close()
    return cjson.decode(body).runId == run_id
  end
else
  error("unknown mode " .. tostring(mode))
end

local requests, runs, max_seconds = PLAN[mode][1], PLAN[mode][2], PLAN[mode][3]

-- Up to n requests within max_seconds: wall and CPU microseconds per request.
local function run_once(n)
  local start, cpu = clock(), os.clock()
  local done = 0
  while done < n do
    if not one_request() then error(label .. ": a request failed") end
    done = done + 1
    if done % 16 == 0 and clock() - start > max_seconds then break end
  end
  return (clock() - start) / done * 1e6, (os.clock() - cpu) / done * 1e6
end

run_once(math.max(10, math.floor(requests / 10))) -- warm up: connect, JIT, caches
local wall, cpu = {}, {}
for i = 1, runs do
  collectgarbage()
  local w, c = run_once(requests)
  wall[i], cpu[i] = string.format("%.3f", w), mode == "curl-cli" and "-" or string.format("%.3f", c)
end
io.write(table.concat({ "request", label, runtime, table.concat(wall, ","), table.concat(cpu, ",") }, "\t"), "\n")

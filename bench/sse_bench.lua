-- sse_bench.lua -- throughput of agentruns.sse's parser and of a pure-Lua one.
--
-- Reads the corpora bench/sse_corpus.lua wrote (the manifest build/bench/sse-corpora.txt),
-- cuts each into chunks of the same size once, then feeds it several times to a fresh
-- sse.parser (events arrive as Lua tables, one array per feed) and to the pure-Lua
-- reference parser (spec/support/sse_reference.lua). A first untimed pass checks that the
-- parser saw exactly the manifest's events and data bytes. A second part feeds one 8 MB
-- event whole and in 1 KB chunks: the time ratio stays near 1 when buffering a long line
-- costs linear time (quadratic copying would make it hundreds).
--
-- It prints one tab-separated record per measurement for bench/report.lua:
--   sse     corpus  parser  runtime  bytes  events  seconds-per-pass,...
--   linear  parser  runtime  seconds-whole  seconds-chunked
-- From the repository root (scripts/bench.sh does this for Lua 5.4 and LuaJIT):
--   lua5.4 bench/sse_corpus.lua build/bench
--   LUA_CPATH="build/lua5.4/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" \
--     lua5.4 bench/sse_bench.lua build/bench/sse-corpora.txt 16384 | lua5.4 bench/report.lua sse
local curl = require "agentruns.curl"
local sse = require "agentruns.sse"
local reference = require "spec.support.sse_reference"

local manifest_path = arg[1] or "build/bench/sse-corpora.txt"
local CHUNK = tonumber(arg[2]) or 16 * 1024
local RUNS_CORE, RUNS_REFERENCE, RUNS_LINEAR = 7, 3, 3
local MIN_RUN = 0.2 -- seconds
local MB = 1024 * 1024
local clock = curl.now
local runtime = (rawget(_G, "jit") and rawget(_G, "jit").version) or _VERSION

local function record(...)
  io.write(table.concat({ ... }, "\t"), "\n")
  io.flush()
end

local function read_manifest(path)
  local list = {}
  for line in io.lines(path) do
    local name, file, events, data_bytes = line:match("^([^\t]+)\t([^\t]+)\t(%d+)\t(%d+)")
    if name then list[#list + 1] = { name = name, file = file, events = tonumber(events),
                                     data_bytes = tonumber(data_bytes) } end
  end
  return list
end

local function split(s, size)
  local chunks = {}
  for from = 1, #s, size do chunks[#chunks + 1] = s:sub(from, from + size - 1) end
  return chunks
end

-- Feed every chunk to a fresh parser: seconds taken and events returned (the timed loop).
local function parse(new_parser, chunks)
  local p = new_parser()
  local count = 0
  local start = clock()
  for i = 1, #chunks do
    local events = p:feed(chunks[i])
    count = count + #events
  end
  return clock() - start, count
end

-- The untimed check: events and data bytes as the manifest says.
local function check(name, new_parser, chunks, corpus)
  local p = new_parser()
  local count, data_bytes = 0, 0
  for i = 1, #chunks do
    local events = assert(p:feed(chunks[i]))
    for j = 1, #events do data_bytes = data_bytes + #events[j].data end
    count = count + #events
  end
  if count ~= corpus.events or data_bytes ~= corpus.data_bytes then
    error(string.format("%s on %s: %d events / %d data bytes, expected %d / %d", name, corpus.name,
                        count, data_bytes, corpus.events, corpus.data_bytes))
  end
end

local PARSERS = {
  { "agentruns.sse", sse.parser, RUNS_CORE },
  { "pure-Lua reference", reference.new, RUNS_REFERENCE },
}

for _, corpus in ipairs(read_manifest(manifest_path)) do
  local f = assert(io.open(corpus.file, "rb"))
  local text = f:read("a")
  f:close()
  local chunks = split(text, CHUNK)
  text = nil -- luacheck: ignore 311
  for _, parser in ipairs(PARSERS) do
    local name, new_parser, runs = parser[1], parser[2], parser[3]
    check(name, new_parser, chunks, corpus)
    local warm = parse(new_parser, chunks) -- also warms up caches and the JIT
    local passes = math.max(1, math.ceil(MIN_RUN / warm))
    local times = {}
    for run = 1, runs do
      collectgarbage()
      local seconds = 0
      for _ = 1, passes do
        local s, count = parse(new_parser, chunks)
        if count ~= corpus.events then error(name .. ": lost events in a timed run") end
        seconds = seconds + s
      end
      times[run] = string.format("%.6f", seconds / passes)
    end
    local bytes = 0
    for i = 1, #chunks do bytes = bytes + #chunks[i] end
    record("sse", corpus.name, name, runtime, bytes, corpus.events, table.concat(times, ","))
  end
  chunks = nil -- luacheck: ignore 311
  collectgarbage()
end

-- Median seconds to parse `chunks`, which must yield exactly one event of expected_len bytes.
local function time_one_event(new_parser, chunks, expected_len)
  local times = {}
  for run = 1, RUNS_LINEAR do
    collectgarbage()
    local p = new_parser()
    local events = {}
    local start = clock()
    for i = 1, #chunks do
      local batch = p:feed(chunks[i])
      for j = 1, #batch do events[#events + 1] = batch[j] end
    end
    times[run] = clock() - start
    if #events ~= 1 or #events[1].data ~= expected_len then error("the long event was not parsed whole") end
  end
  table.sort(times)
  return times[math.floor((#times + 1) / 2)]
end

local payload = string.rep("0123456789abcdef", 8 * MB / 16)
local event = "data: " .. payload .. "\n\n"
local whole, in_kb = { event }, split(event, 1024)
for _, parser in ipairs(PARSERS) do
  local t_whole = time_one_event(parser[2], whole, #payload)
  local t_chunked = time_one_event(parser[2], in_kb, #payload)
  record("linear", parser[1], runtime, string.format("%.6f", t_whole), string.format("%.6f", t_chunked))
end

-- sse_bench.lua -- throughput of agentruns.core's SSE parser, and of a pure-Lua one.
--
-- Builds a stream of 200k small JSON events shaped like agent-run step updates, cuts it
-- into 16 KB chunks once, then feeds it through core.sse_parser and through the pure-Lua
-- reference parser (spec/support/sse_reference.lua) several times each. Prints the median
-- and the min-max of events/s and MB/s, and their ratio. A second table feeds one 8 MB
-- event whole and in 1 KB chunks: the time ratio stays near 1 when buffering a long line
-- costs linear time (quadratic copying would make it hundreds). Only figures are printed,
-- nothing is asserted about time; a run takes about ten seconds. From the repository root:
--   LUA_CPATH="build/lua5.4/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" lua5.4 bench/sse_bench.lua
local core = require "agentruns.core"
local reference = require "spec.support.sse_reference"

local clock = core.now or os.clock
local EVENTS = 200000
local CHUNK = 16 * 1024
local RUNS_CORE, RUNS_REFERENCE, RUNS_LINEAR = 7, 5, 3
local MB = 1024 * 1024

-- The corpus: id, event type and one line of JSON per event, texts of varied length.
local function build_corpus()
  local words = { "Reading", "the", "repository", "layout", "and", "planning", "next", "step", "tests", "pass" }
  local parts = {}
  for i = 1, EVENTS do
    local text = {}
    for w = 1, 3 + i % 9 do text[w] = words[(i + w) % #words + 1] end
    parts[i] = string.format(
      'id: %d\nevent: step\ndata: {"runId":"run_%06d","runStatus":"RUNNING",' ..
      '"timestamp":"2026-01-01T%02d:%02d:%02d.%03dZ","step":{"text":"%s"}}\n\n',
      i, i % 1000, math.floor(i / 3600) % 24, math.floor(i / 60) % 60, i % 60, i % 1000, table.concat(text, " "))
  end
  return table.concat(parts)
end

local function split(s, size)
  local chunks = {}
  for from = 1, #s, size do chunks[#chunks + 1] = s:sub(from, from + size - 1) end
  return chunks
end

-- Feed every chunk to a fresh parser; seconds taken and events returned.
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

local function median(values)
  local sorted = {}
  for i, v in ipairs(values) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) / 2] end
  return (sorted[n / 2] + sorted[n / 2 + 1]) / 2
end

local function min_max(values)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  return lo, hi
end

-- Run a parser `runs` times over the chunks; its rates in events/s and MB/s.
local function measure(new_parser, chunks, bytes, runs)
  parse(new_parser, chunks) -- warm up caches and the JIT
  local event_rates, byte_rates = {}, {}
  for run = 1, runs do
    collectgarbage()
    local seconds, count = parse(new_parser, chunks)
    if count ~= EVENTS then
      error(string.format("parser returned %d events, expected %d", count, EVENTS))
    end
    event_rates[run] = count / seconds
    byte_rates[run] = bytes / MB / seconds
  end
  return event_rates, byte_rates
end

local function describe_rate(values, scale, unit)
  local lo, hi = min_max(values)
  return string.format("%7.2f%s (%.2f-%.2f%s)", median(values) / scale, unit, lo / scale, hi / scale, unit)
end

-- Median seconds to parse `input` fed as `chunks`, which must yield exactly one event.
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
  return median(times)
end

-- Events/s and MB/s of both parsers over the corpus.
local function throughput()
  local corpus = build_corpus()
  local chunks = split(corpus, CHUNK)
  local bytes = #corpus
  print(string.format("corpus: %d events, %.1f MB, fed in %d KB chunks (%d feeds); median (min-max) of %d / %d runs",
                      EVENTS, bytes / MB, CHUNK / 1024, #chunks, RUNS_CORE, RUNS_REFERENCE))
  print()
  print(string.format("%-20s %-34s %s", "parser", "events/s", "MB/s"))
  local core_events, core_bytes = measure(core.sse_parser, chunks, bytes, RUNS_CORE)
  print(string.format("%-20s %-34s %s", "agentruns.core", describe_rate(core_events, 1e6, "M"),
                      describe_rate(core_bytes, 1, "")))
  local lua_events, lua_bytes = measure(reference.new, chunks, bytes, RUNS_REFERENCE)
  print(string.format("%-20s %-34s %s", "pure-Lua reference", describe_rate(lua_events, 1e6, "M"),
                      describe_rate(lua_bytes, 1, "")))
  print(string.format("%-20s %.1fx", "core / reference", median(core_events) / median(lua_events)))
end

-- One 8 MB event fed whole and in 1 KB chunks, for both parsers.
local function linearity()
  local payload = string.rep("0123456789abcdef", 8 * MB / 16)
  local event = "data: " .. payload .. "\n\n"
  local whole, in_kb = { event }, split(event, 1024)
  print(string.format("linearity: one 8 MB event, one feed vs %d feeds of 1 KB (median of %d)", #in_kb, RUNS_LINEAR))
  print(string.format("%-20s %-11s %-13s %s", "parser", "whole", "1 KB chunks", "ratio"))
  for _, parser in ipairs { { "agentruns.core", core.sse_parser }, { "pure-Lua reference", reference.new } } do
    local t_whole = time_one_event(parser[2], whole, #payload)
    local t_chunked = time_one_event(parser[2], in_kb, #payload)
    print(string.format("%-20s %6.1f ms  %8.1f ms   %5.2f", parser[1], t_whole * 1e3, t_chunked * 1e3,
                        t_chunked / t_whole))
  end
end

print(string.format("SSE parser benchmark, %s (clock: %s)", (rawget(_G, "jit") and jit.version) or _VERSION,
                    core.now and "monotonic wall time" or "CPU time"))
throughput()
collectgarbage()
print()
linearity()

-- sse_bench.lua -- throughput of agentruns.sse's parser and of a pure-Lua one.
--
-- Reads the corpora bench/sse_corpus.lua wrote (the manifest build/bench/sse-corpora.txt),
-- cuts each into chunks of the same size once, then feeds it several times to a fresh
-- sse.parser (events arrive as Lua tables, one array per feed), to the same parser's
-- table-free feed_flat (one flat array of strings per feed), and to the pure-Lua reference
-- parser (spec/support/sse_reference.lua). A first untimed pass checks that each saw
-- exactly the manifest's events and data bytes. Beside them runs the table floor
-- (bench/table_floor.c, when scripts/bench.sh built it): the same event tables built from
-- memory with no parsing, in the same per-feed batches, the ceiling for any parser that
-- hands Lua a table per event. A second part feeds one 8 MB
-- event whole and in 1 KB chunks: the time ratio stays near 1 when buffering a long line
-- costs linear time (quadratic copying would make it hundreds).
--
-- With "read" as its third argument it instead reads each corpus from its file in chunks of
-- the same size, as a stream's consumer gets its bytes, and feeds them to feed and feed_flat;
-- scripts/bench.sh runs that part in a process of its own, since what the first parts leave
-- in the heap slows LuaJIT (3.2 against 1.6 M events/s for feed_flat).
--
-- It prints one tab-separated record per measurement for bench/report.lua:
--   sse     corpus  parser  runtime  bytes  events  seconds-per-pass,...
--   read    corpus  parser  runtime  bytes  events  seconds-per-pass,...
--   linear  parser  runtime  seconds-whole  seconds-chunked
-- From the repository root (scripts/bench.sh does this for Lua 5.4 and LuaJIT):
--   lua5.4 bench/sse_corpus.lua build/bench
--   LUA_CPATH="build/lua5.4/?.so;;" LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" \
--     lua5.4 bench/sse_bench.lua build/bench/sse-corpora.txt 16384 [read] | lua5.4 bench/report.lua sse
local curl = require "agentruns.curl"
local sse = require "agentruns.sse"
local reference = require "spec.support.sse_reference"

local manifest_path = arg[1] or "build/bench/sse-corpora.txt"
local CHUNK = tonumber(arg[2]) or 16 * 1024
local PART = arg[3] or "memory" -- "memory": the corpora in memory and the 8 MB event; "read": from the files
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

-- Each way of parsing is a pair: `run(chunks)` feeds every chunk to a fresh parser and
-- returns the events it got (the timed loop), `tally(chunks)` does the same untimed and
-- also returns the data bytes.
local function tables_way(new_parser)
  return {
    run = function(chunks)
      local p, count = new_parser(), 0
      for i = 1, #chunks do count = count + #p:feed(chunks[i]) end
      return count
    end,
    tally = function(chunks)
      local p, count, data_bytes = new_parser(), 0, 0
      for i = 1, #chunks do
        local events = assert(p:feed(chunks[i]))
        for j = 1, #events do data_bytes = data_bytes + #events[j].data end
        count = count + #events
      end
      return count, data_bytes
    end,
  }
end

local flat_way = {
  run = function(chunks)
    local p, count = sse.parser(), 0
    for i = 1, #chunks do
      local _, n = p:feed_flat(chunks[i])
      count = count + n
    end
    return count
  end,
  tally = function(chunks)
    local p, count, data_bytes = sse.parser(), 0, 0
    for i = 1, #chunks do
      local flat, n = assert(p:feed_flat(chunks[i]))
      for j = 1, #flat, 3 do data_bytes = data_bytes + #flat[j] end
      count = count + n
    end
    return count, data_bytes
  end,
}

-- The table floor for one corpus: its batches (feed_flat's, one per chunk) copied into C.
local has_floor, table_floor = pcall(require, "table_floor")
local function floor_way(chunks)
  local p, batches = sse.parser(), {}
  for i = 1, #chunks do batches[i] = assert(p:feed_flat(chunks[i])) end
  local floor = table_floor.new(batches)
  batches = nil -- luacheck: ignore 311
  local function build_all()
    local count, data_bytes = 0, 0
    for i = 1, #chunks do
      local events = floor:build(i)
      for j = 1, #events do data_bytes = data_bytes + #events[j].data end
      count = count + #events
    end
    return count, data_bytes
  end
  return {
    run = function()
      local count = 0
      for i = 1, #chunks do count = count + #floor:build(i) end
      return count
    end,
    tally = build_all,
  }
end

local WAYS = {
  { "agentruns.sse", function() return tables_way(sse.parser) end, RUNS_CORE },
  { "agentruns.sse feed_flat", function() return flat_way end, RUNS_CORE },
  { "pure-Lua reference", function() return tables_way(reference.new) end, RUNS_REFERENCE },
}
if has_floor then table.insert(WAYS, 3, { "table floor", floor_way, RUNS_CORE }) end

-- Seconds for one timed pass of `way` over input (the chunks, or a corpus file's name), and
-- the events it returned.
local function parse(way, input)
  local start = clock()
  local count = way.run(input)
  return clock() - start, count
end

-- The ways take turns, run by run (each run a whole number of passes, the same for every
-- run of a way), so that a machine whose speed drifts while one corpus is measured (a shared
-- VM does) slows every way alike and the ratios between them stay fair. Each way runs
-- t.passes passes of t.way over input for its t.runs runs; t.times[run] gets the seconds per pass.
local function take_turns(timed, input, events)
  local rounds = 0
  for _, t in ipairs(timed) do rounds = math.max(rounds, t.runs) end
  for run = 1, rounds do
    for _, t in ipairs(timed) do
      if run <= t.runs then
        collectgarbage()
        local seconds = 0
        for _ = 1, t.passes do
          local s, count = parse(t.way, input)
          if count ~= events then error(t.name .. ": lost events in a timed run") end
          seconds = seconds + s
        end
        t.times[run] = string.format("%.6f", seconds / t.passes)
      end
    end
  end
end

-- The untimed check: events and data bytes as the manifest says.
local function check(name, way, chunks, corpus)
  local count, data_bytes = way.tally(chunks)
  if count ~= corpus.events or data_bytes ~= corpus.data_bytes then
    error(string.format("%s on %s: %d events / %d data bytes, expected %d / %d", name, corpus.name,
                        count, data_bytes, corpus.events, corpus.data_bytes))
  end
end

-- Each corpus in memory, cut into chunks once, through every way.
local function in_memory()
  for _, corpus in ipairs(read_manifest(manifest_path)) do
    local f = assert(io.open(corpus.file, "rb"))
    local text = f:read("a")
    f:close()
    local chunks = split(text, CHUNK)
    text = nil -- luacheck: ignore 311
    local timed = {}
    for _, entry in ipairs(WAYS) do
      local name, runs = entry[1], entry[3]
      local way = entry[2](chunks)
      check(name, way, chunks, corpus)
      local warm = parse(way, chunks) -- also warms up caches and the JIT
      timed[#timed + 1] = { name = name, way = way, runs = runs, times = {},
                            passes = math.max(1, math.ceil(MIN_RUN / warm)) }
    end
    take_turns(timed, chunks, corpus.events)
    local bytes = 0
    for i = 1, #chunks do bytes = bytes + #chunks[i] end
    for _, t in ipairs(timed) do
      record("sse", corpus.name, t.name, runtime, bytes, corpus.events, table.concat(t.times, ","))
    end
    timed, chunks = nil, nil -- luacheck: ignore 311
    collectgarbage()
  end
end

-- The same corpora read from their files in CHUNK-byte reads, as a consumer of a stream gets
-- its bytes: only the chunk at hand is alive, where above the whole corpus is. What the heap
-- holds changes LuaJIT's figures a great deal (bench/README.md). Each pass opens the file and
-- feeds a fresh parser; feed and feed_flat take turns run by run.
local function read_way(flat)
  return function(file)
    local f = assert(io.open(file, "rb"))
    local p, count = sse.parser(), 0
    while true do
      local chunk = f:read(CHUNK)
      if not chunk then break end
      if flat then
        local _, n = p:feed_flat(chunk)
        count = count + n
      else
        count = count + #p:feed(chunk)
      end
    end
    f:close()
    return count
  end
end

local function read_files()
  for _, corpus in ipairs(read_manifest(manifest_path)) do
    local timed = { { name = "agentruns.sse", way = { run = read_way(false) } },
                    { name = "agentruns.sse feed_flat", way = { run = read_way(true) } } }
    for _, t in ipairs(timed) do
      local seconds, count = parse(t.way, corpus.file)
      if count ~= corpus.events then error(t.name .. ": lost events reading " .. corpus.file) end
      t.runs, t.times, t.passes = RUNS_CORE, {}, math.max(1, math.ceil(MIN_RUN / seconds))
    end
    take_turns(timed, corpus.file, corpus.events)
    local f = assert(io.open(corpus.file, "rb"))
    local bytes = f:seek("end")
    f:close()
    for _, t in ipairs(timed) do
      record("read", corpus.name, t.name, runtime, bytes, corpus.events, table.concat(t.times, ","))
    end
  end
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

local function long_event()
  local payload = string.rep("0123456789abcdef", 8 * MB / 16)
  local event = "data: " .. payload .. "\n\n"
  local whole, in_kb = { event }, split(event, 1024)
  for _, parser in ipairs({ { "agentruns.sse", sse.parser }, { "pure-Lua reference", reference.new } }) do
    local t_whole = time_one_event(parser[2], whole, #payload)
    local t_chunked = time_one_event(parser[2], in_kb, #payload)
    record("linear", parser[1], runtime, string.format("%.6f", t_whole), string.format("%.6f", t_chunked))
  end
end

if PART == "read" then
  read_files()
else
  in_memory()
  long_event()
end

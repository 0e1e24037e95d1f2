-- agentruns.sse.parser: the C Server-Sent Events parser seen from Lua.
--
-- Conformance is data: VECTORS lists streams with the events, last event ID and retry time
-- the WHATWG "event stream interpretation" gives for them. Every vector runs against the C
-- parser and against the pure-Lua reference (spec/support/sse_reference.lua), fed whole,
-- byte by byte, in explicit chunkings where a vector names some, and in 20 random
-- splittings; every chunking must give the same result. A differential test then feeds a
-- few hundred random streams, built from a grammar of awkward pieces, to both parsers in
-- the same random chunks (with random limits and resets) and requires identical results
-- feed by feed. Randomness comes from a seeded Park-Miller generator, the same on Lua 5.1,
-- 5.4 and LuaJIT, so every run tests the same streams. Nothing here measures time.
local sse = require "agentruns.sse"
local reference = require "spec.support.sse_reference"

local BOM = "\239\187\191"
local MiB = 1024 * 1024

-- parser:feed_flat seen through feed's shape: each data, event, id triple made back into
-- the event table feed would return (no id field for an empty id), so every vector and
-- the differential test check the table-free path too.
local function flat_parser(opts)
  local p = sse.parser(opts)
  local wrapper = {}
  function wrapper.feed(_, chunk)
    local flat, n = p:feed_flat(chunk)
    if not flat then return nil, n end
    assert(#flat == 3 * n, "feed_flat: the count must be a third of the array")
    local events = {}
    for i = 1, #flat, 3 do
      events[#events + 1] = { data = flat[i], event = flat[i + 1], id = flat[i + 2] ~= "" and flat[i + 2] or nil }
    end
    return events
  end
  function wrapper.last_event_id() return p:last_event_id() end
  function wrapper.retry() return p:retry() end
  function wrapper.reset() return p:reset() end
  return wrapper
end

local IMPLEMENTATIONS = {
  { name = "agentruns.sse", new = sse.parser },
  { name = "agentruns.sse feed_flat", new = flat_parser },
  { name = "reference", new = reference.new },
}

-- A deterministic generator: rng(lo, hi) is an integer in [lo, hi].
local function new_rng(seed)
  local state = seed % 2147483646 + 1
  return function(lo, hi)
    state = state * 16807 % 2147483647
    return lo + state % (hi - lo + 1)
  end
end

-- An expected event.
local function ev(data, event, id)
  return { event = event or "message", data = data, id = id }
end

local VECTORS = {
  -- Fields and values
  { name = "one data line", input = "data: hello\n\n", events = { ev "hello" } },
  { name = "two events", input = "data: a\n\ndata: b\n\n", events = { ev "a", ev "b" } },
  { name = "data lines are joined with LF", input = "data: a\ndata: b\ndata: c\n\n", events = { ev "a\nb\nc" } },
  { name = "'data' without a colon is a field with an empty value", input = "data\n\n", events = { ev "" } },
  { name = "two empty data lines give one LF", input = "data\ndata\n\n", events = { ev "\n" } },
  { name = "'data:' with nothing after the colon", input = "data:\n\n", events = { ev "" } },
  { name = "'data: ' loses its one space", input = "data: \n\n", events = { ev "" } },
  { name = "only one leading space is stripped", input = "data:  x\n\n", events = { ev " x" } },
  { name = "no space after the colon", input = "data:x\n\n", events = { ev "x" } },
  { name = "a tab after the colon is kept", input = "data:\tx\n\n", events = { ev "\tx" } },
  { name = "trailing spaces are kept", input = "data: x  \n\n", events = { ev "x  " } },
  { name = "the field name ends at the first colon", input = "data: a:b: c\n\n", events = { ev "a:b: c" } },
  { name = "a data value that is a lone colon", input = "data::\n\n", events = { ev ":" } },
  { name = "empty data lines between others", input = "data: a\ndata\ndata: b\n\n", events = { ev "a\n\nb" } },
  { name = "field names are case-sensitive", input = "Data: x\nDATA: y\nEVENT: t\nId: 1\nRetry: 5\n\n",
    events = {} },
  { name = "a space before the colon makes another field", input = "data : x\n\n", events = {} },
  { name = "a leading space makes another field", input = " data: x\n\n", events = {} },
  { name = "unknown fields are ignored", input = "foo: bar\ndata: x\nbaz\nx:\n\n", events = { ev "x" } },
  { name = "longer names that begin with a known one are other fields",
    input = "datadata: x\nevent_type: t\nidentifier: 9\nretry_ms: 5\ndataxx\ndata: y\n\n", events = { ev "y" } },
  { name = "a long unknown name with a colon far in", input = "abcdefghij: x\ndata: z\n\n", events = { ev "z" } },
  { name = "a NUL in the field name makes another field", input = "da\0ta: x\n\n", events = {} },
  { name = "examples in the manner of the standard", input = "data\n\ndata\ndata\n\ndata:",
    events = { ev "", ev "\n" } },
  { name = "'data:test' and 'data: test' are the same", input = "data:test\n\ndata: test\n\n",
    events = { ev "test", ev "test" } },

  -- Comments
  { name = "comment lines are ignored", input = ": hello\ndata: x\n:another\n\n", events = { ev "x" } },
  { name = "a comment does not end an event", input = "data: a\n: note\ndata: b\n\n", events = { ev "a\nb" } },
  { name = "a stream of comments dispatches nothing", input = ": one\n\n:\n\n: two\n\n", events = {} },
  { name = "a comment that looks like a field", input = ":data: x\n\n", events = {} },

  -- Line ends
  { name = "CR line ends", input = "data: a\rdata: b\r\r", events = { ev "a\nb" } },
  { name = "CRLF line ends", input = "data: a\r\ndata: b\r\n\r\n", events = { ev "a\nb" } },
  { name = "mixed line ends", input = "data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\rdata: e\r\n\n",
    events = { ev "a\nb\nc", ev "d", ev "e" } },
  { name = "LF then CR is two line ends", input = "data: a\n\r", events = { ev "a" } },
  { name = "CR CR is two line ends", input = "data: a\r\r", events = { ev "a" } },
  { name = "LF CRLF is two line ends", input = "data: a\n\r\n", events = { ev "a" } },
  { name = "CRLF split across two chunks", input = "data: a\r\ndata: b\r\n\r\n", events = { ev "a\nb" },
    chunks = { { "data: a\r", "\ndata: b\r", "\n\r", "\n" }, { "data: a\r", "\n", "data: b\r\n\r", "\n" } } },
  { name = "CR at the end of a chunk, then a line", input = "data: a\rdata: b\r\rdata: c\r\r",
    events = { ev "a\nb", ev "c" },
    chunks = { { "data: a\r", "data: b\r", "\r", "data: c\r", "\r" },
               { "data: a\r", "", "data: b\r\r", "data: c\r\r" } } },
  { name = "CR at the end of a chunk, then a blank line", input = "data: a\r\rdata: b\n\n",
    events = { ev "a", ev "b" }, chunks = { { "data: a\r", "\rdata: b\n\n" } } },
  { name = "blank lines of every kind", input = "\n\r\r\n\n\r\r\n", events = {} },

  -- Byte order mark
  { name = "a BOM at stream start is dropped", input = BOM .. "data: a\n\n", events = { ev "a" } },
  { name = "only one BOM is dropped", input = BOM .. BOM .. "data: a\n\ndata: b\n\n", events = { ev "b" } },
  { name = "a BOM later in the stream belongs to the field name", input = "data: a\n\n" .. BOM .. "data: b\n\n",
    events = { ev "a" } },
  { name = "a BOM inside a value is kept", input = "data: " .. BOM .. "x\n\n", events = { ev(BOM .. "x") } },
  { name = "a partial BOM is not dropped", input = "\239\187data: a\n\ndata: b\n\n", events = { ev "b" } },
  { name = "a lone first BOM byte is not dropped", input = "\239data: a\n\ndata: b\n\n", events = { ev "b" } },
  { name = "a BOM followed by a blank line", input = BOM .. "\ndata: a\n\n", events = { ev "a" } },
  { name = "a BOM followed by CRLF", input = BOM .. "\r\ndata: a\r\n\r\n", events = { ev "a" } },
  { name = "a BOM split byte by byte", input = BOM .. "data: a\n\n", events = { ev "a" },
    chunks = { { "\239", "\187", "\191", "data: a\n\n" }, { "\239\187", "\191data: a\n", "\n" } } },
  { name = "a stream that is only a BOM", input = BOM, events = {} },

  -- Event type
  { name = "'event' sets the type", input = "event: add\ndata: x\n\n", events = { ev("x", "add") } },
  { name = "the type is reset after each dispatch", input = "event: add\ndata: 1\n\ndata: 2\n\n",
    events = { ev("1", "add"), ev "2" } },
  { name = "an empty type means message", input = "event:\ndata: x\n\nevent\ndata: y\n\n",
    events = { ev "x", ev "y" } },
  { name = "'event: ' with nothing after its space means message", input = "event: \ndata: x\n\n",
    events = { ev "x" } },
  { name = "'event:  t' keeps its second space", input = "event:  t\ndata: x\n\n", events = { ev("x", " t") } },
  { name = "the last 'event' field wins", input = "event: a\nevent: b\ndata: x\n\n", events = { ev("x", "b") } },
  { name = "'event' after 'data' in the same event", input = "data: x\nevent: late\n\n", events = { ev("x", "late") } },
  { name = "an event without data is not dispatched and its type is dropped",
    input = "event: lonely\n\ndata: x\n\n", events = { ev "x" } },
  { name = "spaces in the type are kept but one", input = "event:  spaced \ndata: x\n\n",
    events = { ev("x", " spaced ") } },
  { name = "a NUL in the type is kept", input = "event: a\0b\ndata: x\n\n", events = { ev("x", "a\0b") } },

  -- Last event ID
  { name = "'id' sets the last event ID", input = "id: 1\ndata: x\n\n", events = { ev("x", nil, "1") },
    last_event_id = "1" },
  { name = "the ID persists across events", input = "id: 1\ndata: a\n\ndata: b\n\nevent: t\ndata: c\n\n",
    events = { ev("a", nil, "1"), ev("b", nil, "1"), ev("c", "t", "1") }, last_event_id = "1" },
  { name = "a later 'id' replaces it", input = "id: 1\ndata: a\n\nid: 2\ndata: b\n\n",
    events = { ev("a", nil, "1"), ev("b", nil, "2") }, last_event_id = "2" },
  { name = "'id' without a colon resets it", input = "id: 1\ndata: a\n\nid\ndata: b\n\n",
    events = { ev("a", nil, "1"), ev "b" }, last_event_id = "" },
  { name = "'id:' with an empty value resets it", input = "id: 1\ndata: a\n\nid:\ndata: b\n\n",
    events = { ev("a", nil, "1"), ev "b" }, last_event_id = "" },
  { name = "'id: ' with nothing after its space resets it", input = "id: 1\ndata: a\n\nid: \ndata: b\n\n",
    events = { ev("a", nil, "1"), ev "b" }, last_event_id = "" },
  { name = "'id:  7' keeps its second space", input = "id:  7\ndata: a\n\n", events = { ev("a", nil, " 7") },
    last_event_id = " 7" },
  { name = "an 'id' containing NUL is ignored", input = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\ndata: c\n\n",
    events = { ev("a", nil, "1"), ev("b", nil, "1"), ev("c", nil, "1") }, last_event_id = "1" },
  { name = "an 'id' that is a lone NUL is ignored", input = "id: \0\ndata: a\n\n", events = { ev "a" } },
  { name = "'id' in an event without data still sets the last event ID", input = "id: 7\n\ndata: x\n\n",
    events = { ev("x", nil, "7") }, last_event_id = "7" },
  { name = "'id' alone, then a blank line", input = "id: 7\n\n", events = {}, last_event_id = "7" },
  { name = "'id' after 'data' in the same event", input = "data: a\nid: 5\n\n", events = { ev("a", nil, "5") },
    last_event_id = "5" },
  { name = "the ID of an unfinished event does not take effect", input = "id: 1\ndata: a\n\nid: 2\ndata: b\n",
    events = { ev("a", nil, "1") }, last_event_id = "1" },
  { name = "spaces in the ID are kept but one", input = "id:  x \ndata: a\n\n", events = { ev("a", nil, " x ") },
    last_event_id = " x " },
  { name = "a UTF-8 ID", input = "id: ü-✓\ndata: a\n\n", events = { ev("a", nil, "ü-✓") }, last_event_id = "ü-✓" },

  -- Retry
  { name = "'retry' with digits sets the reconnection time", input = "retry: 1500\n", events = {}, retry = 1500 },
  { name = "'retry: 0'", input = "retry: 0\n", events = {}, retry = 0 },
  { name = "'retry' with leading zeros", input = "retry: 007\n", events = {}, retry = 7 },
  { name = "'retry: 10a' is ignored", input = "retry: 10a\n", events = {} },
  { name = "'retry: -1' is ignored", input = "retry: -1\n", events = {} },
  { name = "'retry: ' is ignored", input = "retry: \n", events = {} },
  { name = "'retry' without a colon is ignored", input = "retry\n", events = {} },
  { name = "'retry' with a second leading space is ignored", input = "retry:  10\n", events = {} },
  { name = "'retry' with a trailing space is ignored", input = "retry: 10 \n", events = {} },
  { name = "'retry' with a decimal point is ignored", input = "retry: 1.5\n", events = {} },
  { name = "'retry' with a sign is ignored", input = "retry: +5\n", events = {} },
  { name = "'retry' with non-ASCII digits is ignored", input = "retry: ١٢\n", events = {} },
  { name = "an ignored 'retry' keeps the earlier value", input = "retry: 100\nretry: x\nretry: -3\n", events = {},
    retry = 100 },
  { name = "the last valid 'retry' wins", input = "retry: 100\nretry: 250\n", events = {}, retry = 250 },
  { name = "a 'retry' line without its line end does not take effect", input = "data: a\nretry: 42", events = {} },
  { name = "'retry' takes effect inside an unfinished event", input = "data: a\nretry: 42\n", events = {},
    retry = 42 },
  { name = "'retry' at the limit of 2^31 - 1", input = "retry: 2147483647\n", events = {}, retry = 2147483647 },
  { name = "'retry' beyond 2^31 - 1 is clamped", input = "retry: 2147483648\n", events = {}, retry = 2147483647 },
  { name = "a huge 'retry' is clamped", input = "retry: 99999999999999999999999999\n", events = {},
    retry = 2147483647 },
  { name = "'retry' in a dispatched event", input = "retry: 3000\ndata: x\n\n", events = { ev "x" }, retry = 3000 },

  -- End of stream
  { name = "an empty stream", input = "", events = {} },
  { name = "a trailing partial event is not dispatched", input = "data: a\n\ndata: b\n", events = { ev "a" } },
  { name = "a trailing line without a line end is not dispatched", input = "data: a\n\ndata: b", events = { ev "a" } },
  { name = "a stream ending on a CR after data", input = "data: a\r", events = {} },

  -- Content
  { name = "UTF-8 content is untouched", input = "data: héllo wörld — ✓ 𝄞 日本\n\n",
    events = { ev "héllo wörld — ✓ 𝄞 日本" } },
  { name = "NUL bytes in data are kept", input = "data: a\0b\0\ndata: \0\n\n", events = { ev "a\0b\0\n\0" } },
  { name = "bytes that are not UTF-8 pass through", input = "data: \255\254\128\n\n", events = { ev "\255\254\128" } },
  { name = "a JSON payload", input = 'event: step\nid: 9\ndata: {"runId":"r-1","step":{"text":"a: b"}}\n\n',
    events = { ev('{"runId":"r-1","step":{"text":"a: b"}}', "step", "9") }, last_event_id = "9" },
  { name = "a very long line", input = "data: " .. string.rep("0123456789", 2000) .. "\n\n",
    events = { ev(string.rep("0123456789", 2000)) } },
  { name = "a very long comment", input = ":" .. string.rep("c", 20000) .. "\ndata: x\n\n", events = { ev "x" } },
  { name = "many data lines in one event", input = string.rep("data: line\n", 500) .. "\n",
    events = { ev(string.rep("line\n", 499) .. "line") } },
}

-- Split s at the sorted cut positions (each cut ends a chunk after that byte).
local function split_at(s, cuts)
  local chunks, from = {}, 1
  for _, cut in ipairs(cuts) do
    chunks[#chunks + 1] = s:sub(from, cut)
    from = cut + 1
  end
  chunks[#chunks + 1] = s:sub(from)
  return chunks
end

-- A random chunking of s: up to 12 cuts, now and then an empty chunk.
local function random_split(s, rng)
  if #s < 2 then return { s } end
  local seen, cuts = {}, {}
  for _ = 1, rng(1, math.min(#s - 1, 12)) do
    local cut = rng(1, #s - 1)
    if not seen[cut] then
      seen[cut] = true
      cuts[#cuts + 1] = cut
    end
  end
  table.sort(cuts)
  local chunks = {}
  for _, chunk in ipairs(split_at(s, cuts)) do
    chunks[#chunks + 1] = chunk
    if rng(1, 8) == 1 then chunks[#chunks + 1] = "" end
  end
  return chunks
end

local function byte_by_byte(s)
  local chunks = {}
  for i = 1, #s do chunks[i] = s:sub(i, i) end
  return chunks
end

-- Every chunking a vector is run with.
local function chunkings(vector, seed)
  local list = { { vector.input }, byte_by_byte(vector.input) }
  for _, chunks in ipairs(vector.chunks or {}) do
    assert.equal(vector.input, table.concat(chunks), "explicit chunks of " .. vector.name)
    list[#list + 1] = chunks
  end
  local rng = new_rng(seed)
  for _ = 1, 20 do list[#list + 1] = random_split(vector.input, rng) end
  return list
end

local function sizes(chunks)
  local n = {}
  for i, chunk in ipairs(chunks) do n[i] = #chunk end
  return table.concat(n, ",")
end

-- Feed chunks to a fresh parser; the events in order, the last event ID and retry.
local function run_chunks(new_parser, chunks, opts)
  local p = new_parser(opts)
  local events = {}
  for _, chunk in ipairs(chunks) do
    local batch, err = p:feed(chunk)
    if not batch then
      return { error = tostring(err) }
    end
    for _, event in ipairs(batch) do events[#events + 1] = event end
  end
  return { events = events, last_event_id = p:last_event_id(), retry = p:retry() }
end

-- The text of a "bad argument" error, without position and function name.
local function reason(ok, msg)
  assert.is_false(ok)
  return (tostring(msg):match("bad argument #%d+ to '[^']*' %((.*)%)$"))
end

-- Concatenated events of one array.
local function all_events(batches)
  local events = {}
  for _, batch in ipairs(batches) do
    for _, event in ipairs(batch) do events[#events + 1] = event end
  end
  return events
end

describe("agentruns.sse.parser", function()
  describe("conformance vectors", function()
    for _, impl in ipairs(IMPLEMENTATIONS) do
      describe(impl.name, function()
        for index, vector in ipairs(VECTORS) do
          it(vector.name, function()
            local expected = { events = vector.events, last_event_id = vector.last_event_id or "",
                               retry = vector.retry }
            for _, chunks in ipairs(chunkings(vector, index * 7919)) do
              assert.same(expected, run_chunks(impl.new, chunks), "chunk sizes " .. sizes(chunks))
            end
          end)
        end
      end)
    end
  end)

  for _, impl in ipairs(IMPLEMENTATIONS) do
    describe(impl.name .. " feed by feed", function()
      local p
      before_each(function() p = impl.new() end)

      it("returns an empty array until a blank line completes an event", function()
        assert.same({ {}, {}, {}, { ev "a" } },
                    { p:feed("data"), p:feed(": a"), p:feed("\n"), p:feed("\n") })
      end)

      it("dispatches on a blank line ended by CR without waiting for the next chunk", function()
        assert.same({ { ev "a" }, {}, { ev "b" } }, { p:feed("data: a\n\r"), p:feed("\ndata: b\n"), p:feed("\n") })
      end)

      it("does not read the LF of a split CRLF as a second line end", function()
        assert.same({ {}, {}, { ev "a\nb" } }, { p:feed("data: a\r"), p:feed("\ndata: b\r"), p:feed("\n\n") })
      end)

      it("reads a CR at the end of a chunk as a line end when no LF follows", function()
        assert.same({ {}, { ev "a" } }, { p:feed("data: a\r"), p:feed("\r") })
      end)

      it("waits for three bytes before deciding on a BOM", function()
        assert.same({ {}, {}, {}, { ev "a" } },
                    { p:feed("\239"), p:feed("\187"), p:feed("\191data: a\n"), p:feed("\n") })
      end)

      it("returns every event a chunk completes, in order, in one array", function()
        local chunk, expected = {}, {}
        for i = 1, 1000 do
          chunk[i] = "id: " .. i .. "\nevent: e" .. (i % 3) .. "\ndata: " .. i .. "\n\n"
          expected[i] = ev(tostring(i), "e" .. (i % 3), tostring(i))
        end
        local events = p:feed(table.concat(chunk))
        assert.equal(1000, #events)
        assert.same(expected, events)
        assert.equal("1000", p:last_event_id())
      end)

      it("keeps the last event ID and retry between feeds", function()
        -- retry applies when its line ends; the ID when a blank line ends the event
        assert.same({ {}, "", 250 }, { p:feed("id: 4\nretry: 250\n"), p:last_event_id(), p:retry() })
        assert.same({ { ev("x", nil, "4") }, "4", 250 }, { p:feed("data: x\n\n"), p:last_event_id(), p:retry() })
        assert.same({ { ev("y", nil, "4") }, "4", 250 }, { p:feed("data: y\n\n"), p:last_event_id(), p:retry() })
      end)

      it("passes a 4 MiB line fed in 1 KB chunks intact", function()
        local line = string.rep("0123456789abcdef", 4 * MiB / 16)
        local input = "id: long\ndata: " .. line .. "\r\n\r\n"
        local events = {}
        for from = 1, #input, 1024 do
          for _, event in ipairs(assert(p:feed(input:sub(from, from + 1023)))) do events[#events + 1] = event end
        end
        assert.equal(1, #events)
        assert.is_true(events[1].data == line, "data differs")
        assert.same({ "message", "long" }, { events[1].event, events[1].id })
      end)

      it("finds every line end around the lengths where its search for one changes step", function()
        -- Lines of every length near 16 and 256 bytes, ended by LF, CR and CRLF in turn, so that
        -- each way of finding a line end meets each kind, after a line that ended differently.
        local endings, input, expected = { "\n", "\r", "\r\n" }, {}, {}
        local lengths = {}
        for len = 8, 24 do lengths[#lengths + 1] = len end
        for len = 248, 264 do lengths[#lengths + 1] = len end
        lengths[#lengths + 1] = 3000
        for k, len in ipairs(lengths) do
          for e = 1, 3 do
            local a, b = string.rep("a", len - 5), string.rep("b", len - 5 + k % 3)
            input[#input + 1] = "data:" .. a .. endings[e] .. "data:" .. b .. endings[e % 3 + 1] .. "\r\n"
            expected[#expected + 1] = ev(a .. "\n" .. b)
          end
        end
        input = table.concat(input)
        for _, size in ipairs { #input, 4096, 300, 17 } do
          local cuts = {}
          for cut = size, #input - 1, size do cuts[#cuts + 1] = cut end
          assert.same({ events = expected, last_event_id = "" }, run_chunks(impl.new, split_at(input, cuts)),
                      "chunks of " .. size)
        end
      end)

      it("accepts an options table or none", function()
        assert.same({ ev "x" }, impl.new({}):feed("data: x\n\n"))
        assert.same({ ev "x" }, impl.new():feed("data: x\n\n"))
      end)

      it("coerces a number to a string, as the Lua API does", function()
        assert.same({ {}, {}, { ev "42" } }, { p:feed("data: "), p:feed(42), p:feed("\n\n") })
      end)

      it("raises on a chunk that is not a string", function()
        assert.equal("string expected, got table", reason(pcall(p.feed, p, {})))
        assert.equal("string expected, got boolean", reason(pcall(p.feed, p, true)))
      end)

      it("raises on bad options", function()
        assert.equal("max_event_size must be a positive number of bytes",
                     reason(pcall(impl.new, { max_event_size = -1 })))
        assert.equal("max_event_size must be a positive number of bytes",
                     reason(pcall(impl.new, { max_event_size = 0 })))
        assert.equal("max_event_size must be a positive number of bytes",
                     reason(pcall(impl.new, { max_event_size = 0 / 0 })))
        assert.equal("max_event_size must be a number", reason(pcall(impl.new, { max_event_size = "1k" })))
        assert.equal("table expected, got number", reason(pcall(impl.new, 5)))
      end)
    end)

    describe(impl.name .. " limits", function()
      local LIMIT_MESSAGE = "event exceeds max_event_size (64 bytes)"

      -- expect_limit(message or nil for LIMIT_MESSAGE, feed results...)
      local function expect_limit(message, events, err)
        assert.is_nil(events)
        assert.same({ "limit", message or LIMIT_MESSAGE, message or LIMIT_MESSAGE },
                    { err.kind, err.message, tostring(err) })
      end

      local p
      before_each(function() p = impl.new { max_event_size = 64 } end)

      it("passes an event of exactly max_event_size bytes", function()
        -- "data: " + 57 bytes + LF = 64 bytes; the blank line does not count.
        local data = string.rep("x", 57)
        assert.same({ ev(data) }, p:feed("data: " .. data .. "\n\n"))
        -- "event: e\n" (9) + "data: " + 48 bytes + LF (55) = 64
        assert.same({ ev(string.rep("y", 48), "e") }, p:feed("event: e\ndata: " .. string.rep("y", 48) .. "\n\n"))
      end)

      it("fails on an event one byte over", function()
        expect_limit(nil, p:feed("data: " .. string.rep("x", 58) .. "\n\n"))
      end)

      it("counts every field line of the event", function()
        expect_limit(nil, p:feed("event: e\ndata: " .. string.rep("y", 49) .. "\n\n"))
      end)

      it("counts a CRLF as one byte, whatever the chunking", function()
        local input = "data: " .. string.rep("x", 57) .. "\r\n\r\n"
        assert.same({ ev(string.rep("x", 57)) }, p:feed(input))
        for _, chunks in ipairs { byte_by_byte(input), { input:sub(1, 64), input:sub(65) } } do
          assert.same({ events = { ev(string.rep("x", 57)) }, last_event_id = "", retry = nil },
                      run_chunks(impl.new, chunks, { max_event_size = 64 }))
        end
      end)

      it("bounds each event, not the stream", function()
        local one = "data: " .. string.rep("x", 57) .. "\n\n"
        assert.equal(100, #p:feed(string.rep(one, 100)))
      end)

      it("does not count comments toward the event", function()
        local comment = ":" .. string.rep("c", 63) .. "\n"
        assert.same({ ev(string.rep("x", 57)) },
                    p:feed(comment .. "data: " .. string.rep("x", 57) .. "\n" .. comment .. "\n"))
      end)

      it("bounds comment lines too", function()
        expect_limit(nil, p:feed(":" .. string.rep("c", 64) .. "\n"))
      end)

      it("fails on a line that never ends, as soon as it passes the limit", function()
        assert.same({}, p:feed(string.rep("x", 64)))
        expect_limit(nil, p:feed("x"))
        local q = impl.new { max_event_size = 4096 }
        for i = 1, 4 do assert.same({}, q:feed(string.rep("d", 1024)), "chunk " .. i) end
        expect_limit("event exceeds max_event_size (4096 bytes)", q:feed(string.rep("d", 1024)))
        expect_limit("event exceeds max_event_size (4096 bytes)", q:feed(string.rep("d", 1024)))
      end)

      it("fails on a line that never ends, fed byte by byte", function()
        for i = 1, 64 do assert.same({}, p:feed("z"), "byte " .. i) end
        expect_limit(nil, p:feed("z"))
      end)

      it("drops the events of the failing chunk", function()
        assert.same({ ev "a" }, p:feed("data: a\n\n"))
        expect_limit(nil, p:feed("data: b\n\ndata: " .. string.rep("x", 70) .. "\n"))
      end)

      it("keeps failing until reset, then keeps the last event ID and retry", function()
        assert.same({ ev("a", nil, "7") }, p:feed("id: 7\nretry: 900\ndata: a\n\n"))
        expect_limit(nil, p:feed("id: 8\ndata: " .. string.rep("x", 70) .. "\n"))
        expect_limit(nil, p:feed("data: b\n\n"))
        expect_limit(nil, p:feed(""))
        assert.same({ "7", 900 }, { p:last_event_id(), p:retry() })
        p:reset()
        assert.same({ { ev("c", nil, "7") }, "7", 900 }, { p:feed("data: c\n\n"), p:last_event_id(), p:retry() })
      end)

      it("applies a default of 16 MiB", function()
        local q = impl.new()
        assert.same({}, q:feed(string.rep("x", 16 * MiB)))
        expect_limit("event exceeds max_event_size (16777216 bytes)", q:feed("x"))
      end)
    end)

    describe(impl.name .. " results", function()
      it("are empty tables when a feed completes no event, and never the caller's", function()
        local p = impl.new()
        local first = p:feed("data: a\n")
        assert.same({}, first)
        first[1] = "mine"
        assert.same({}, p:feed("data: b\n"))
        assert.same({ "mine" }, first)
        local marked = p:feed("data: c\n")
        setmetatable(marked, { __index = function() return "x" end })
        local next_result = p:feed("")
        assert.same({}, next_result)
        assert.is_nil(getmetatable(next_result))
        assert.same({ ev "a\nb\nc" }, p:feed("\n"))
        assert.same({ ev "d" }, p:feed("data: d\n\n", "an extra argument", 3))
      end)
    end)

    describe(impl.name .. " reset", function()
      local p
      before_each(function() p = impl.new() end)

      it("returns nothing and is harmless on a fresh parser", function()
        assert.equal(0, select("#", p:reset()))
        assert.same({ { ev "x" }, "", nil }, { p:feed("data: x\n\n"), p:last_event_id(), p:retry() })
      end)

      it("drops an unfinished line", function()
        p:feed("dat")
        p:reset()
        assert.same({}, p:feed("a: x\n\n"))
      end)

      it("drops the data and type of an unfinished event", function()
        p:feed("event: t\ndata: a\n")
        p:reset()
        assert.same({ ev "b" }, p:feed("data: b\n\n"))
      end)

      it("expects a BOM again", function()
        assert.same({ ev "a" }, p:feed(BOM .. "data: a\n\n"))
        assert.same({}, p:feed(BOM .. "data: b\n\n"))
        p:reset()
        assert.same({ ev "c" }, p:feed(BOM .. "data: c\n\n"))
      end)

      it("forgets a partly received BOM", function()
        p:feed("\239\187")
        p:reset()
        assert.same({}, p:feed("\191data: a\n\n"))
      end)

      it("keeps the last event ID and retry, and drops an ID not yet in effect", function()
        p:feed("id: 1\nretry: 5\n\nid: 2\nretry: 6\n")
        p:reset()
        assert.same({ "1", 6 }, { p:last_event_id(), p:retry() })
        assert.same({ ev("x", nil, "1") }, p:feed("data: x\n\n"))
      end)
    end)
  end

  describe("differential test against the pure-Lua reference", function()
    local NAMES = { "data", "data", "data", "data", "data", "data", "event", "event", "id", "id", "retry", "retry",
                    "Data", "dat", "datax", "", " data", BOM .. "data", "x", "id\0" }
    local SEPARATORS = { ":", ": ", ": ", ":  ", "", "::", ": :" }
    local VALUES = { "", "a", "hello", " ", "  x", "\0", "a\0b", "1", "42", "007", "-1", "10a", "2147483648",
                     "99999999999999999999", BOM, "é", "✓", ":", "message", "x y", "\255",
                     -- long enough for the parser's other ways of finding a line end (past 16 and 256 bytes)
                     string.rep("v", 40), string.rep("w", 300) }
    local LINE_ENDS = { "\n", "\n", "\r", "\r\n", "\r\n" }
    local RAW = { "\r", "\n", "\r\n", ":", " ", "\0", "d", "data", "id", "retry", "1", "\239", "\187", "\191", BOM }

    local function pick(rng, list) return list[rng(1, #list)] end

    -- One random stream from the grammar above.
    local function random_stream(rng)
      local parts = {}
      local function add(s) parts[#parts + 1] = s end
      if rng(1, 4) == 1 then add(pick(rng, { BOM, BOM, "\239", "\239\187" })) end
      for _ = 1, rng(1, 30) do
        local kind = rng(1, 12)
        if kind <= 6 or kind == 12 then -- a field line, now and then after a BOM
          if kind == 12 then add(BOM) end
          add(pick(rng, NAMES))
          add(pick(rng, SEPARATORS))
          for _ = 1, rng(0, 2) do add(pick(rng, VALUES)) end
          add(pick(rng, LINE_ENDS))
        elseif kind <= 9 then -- a blank line
          add(pick(rng, LINE_ENDS))
        elseif kind == 10 then -- a comment
          add(":" .. pick(rng, VALUES) .. pick(rng, LINE_ENDS))
        else -- loose bytes
          for _ = 1, rng(1, 5) do add(pick(rng, RAW)) end
        end
      end
      return table.concat(parts)
    end

    -- Feed chunks to a parser, resetting where asked; a record of every feed.
    local function record(new_parser, opts, chunks, resets)
      local p = new_parser(opts)
      local steps = {}
      for i, chunk in ipairs(chunks) do
        if resets[i] then
          p:reset()
          steps[#steps + 1] = "reset"
        end
        local events, err = p:feed(chunk)
        steps[#steps + 1] = { events = events, error = err and { kind = err.kind, message = tostring(err) },
                              last_event_id = p:last_event_id(), retry = p:retry() }
      end
      return steps
    end

    local function whole_events(new_parser, chunks)
      local p, batches = new_parser(), {}
      for _, chunk in ipairs(chunks) do batches[#batches + 1] = assert(p:feed(chunk)) end
      return { events = all_events(batches), last_event_id = p:last_event_id(), retry = p:retry() }
    end

    for block = 1, 8 do
      it("agrees on 50 random streams (block " .. block .. ")", function()
        local rng = new_rng(block * 104729)
        for n = 1, 50 do
          local stream = random_stream(rng)
          local chunks = random_split(stream, rng)
          local opts, resets = nil, {}
          if rng(1, 4) == 1 then opts = { max_event_size = rng(1, 40) } end
          if rng(1, 3) == 1 then
            for i = 2, #chunks do if rng(1, 6) == 1 then resets[i] = true end end
          end
          local label = string.format("stream %d: %q, chunk sizes %s, max_event_size %s", n, stream, sizes(chunks),
                                      tostring(opts and opts.max_event_size))
          local c = record(sse.parser, opts, chunks, resets)
          local lua = record(reference.new, opts, chunks, resets)
          assert.same({ label, lua }, { label, c })
          assert.same({ label, lua }, { label, record(flat_parser, opts, chunks, resets) })
          if not opts then
            assert.same({ label, whole_events(sse.parser, { stream }) },
                        { label, whole_events(sse.parser, chunks) })
            assert.same({ label, whole_events(sse.parser, { stream }) },
                        { label, whole_events(sse.parser, byte_by_byte(stream)) })
          end
        end
      end)
    end
  end)

  describe("feed_flat", function()
    it("returns data, event, id per event in one flat array, and the count", function()
      local p = sse.parser()
      local flat, n = p:feed_flat("id: 7\nevent: step\ndata: a\n\ndata: b\ndata: c\n\n")
      assert.same({ { "a", "step", "7", "b\nc", "message", "7" }, 2 }, { flat, n })
    end)

    it("gives an empty string for no event ID, as lastEventId is", function()
      assert.same({ "x", "message", "" }, (sse.parser():feed_flat("data: x\n\n")))
    end)

    it("returns an empty array and 0 while no event completes", function()
      assert.same({ {}, 0 }, { sse.parser():feed_flat("data: unfinished") })
    end)

    it("returns the same limit error value as feed", function()
      local flat, err = sse.parser({ max_event_size = 4 }):feed_flat("data: too long\n\n")
      assert.is_nil(flat)
      assert.same({ "limit", "event exceeds max_event_size (4 bytes)" }, { err.kind, tostring(err) })
    end)
  end)

  describe("feed's batch", function()
    -- Under LuaJIT feed is agentruns/sse_ffi.lua's: the C side leaves the events in a batch
    -- (_feed_batch) and Lua builds the tables through the FFI, then empties the batch.
    local jit = rawget(_G, "jit")

    it("is read through the FFI under LuaJIT, and in C elsewhere", function()
      local what = debug.getinfo(sse.parser().feed, "S").what
      assert.equal(jit and "Lua" or "C", what)
    end)

    -- Random chunkings of stream give feed the events feed_flat gives, count of them; with
    -- inherited, feed marks inherited IDs and inherited(n) says whether event n's is one.
    local function agrees_with_flat(stream, seed, rounds, count, inherited)
      local rng = new_rng(seed)
      for _ = 1, rounds do
        local chunks = random_split(stream, rng)
        local from_feed, from_flat = {}, {}
        local p, q = sse.parser({ mark_inherited_ids = inherited ~= nil }), sse.parser()
        for _, chunk in ipairs(chunks) do
          for _, e in ipairs(assert(p:feed(chunk))) do
            from_feed[#from_feed + 1] = { e.data, e.event, e.id or "", e.id_inherited or false }
          end
          local flat = assert(q:feed_flat(chunk))
          for i = 1, #flat, 3 do
            local n = #from_flat + 1
            from_flat[n] = { flat[i], flat[i + 1], flat[i + 2], inherited ~= nil and inherited(n) }
          end
        end
        assert.same(from_flat, from_feed, "chunk sizes " .. sizes(chunks))
        assert.equal(count, #from_feed)
      end
    end

    it("gives the same events as feed_flat, whatever the chunking", function()
      local stream = "retry: 5\r\nid: 1\r\nevent: step\r\ndata: a\r\n\r\n: note\r\ndata: b\r\ndata: c\r\n\r\n" ..
                     "id:\r\ndata: no id\r\n\r\nid: 9\r\nevent: tool_call\r\ndata: {}\r\n\r\ndata: d\r\n\r\n"
      agrees_with_flat(stream, 2027, 30, 5)
    end)

    it("gives the same events as feed_flat when large and small events take turns", function()
      -- feeds of events over 4 KB are built in C, the next feed of small ones in Lua again
      local big = string.rep("b", 8 * 1024)
      local parts = {}
      for i = 1, 12 do
        local data = (i % 4 < 2) and big .. i or "small " .. i
        parts[#parts + 1] = (i % 3 == 0 and "" or "id: " .. i .. "\n") .. "data: " .. data .. "\n\n"
      end
      agrees_with_flat(table.concat(parts), 4099, 10, 12, function(n) return n % 3 == 0 end)
    end)

    it("marks an inherited ID only when asked, and leaves out an empty one", function()
      local stream = "data: before\n\nid: 4\ndata: own\n\ndata: inherited\n\n"
      assert.same({ { event = "message", data = "before" }, { event = "message", data = "own", id = "4" },
                    { event = "message", data = "inherited", id = "4" } }, sse.parser():feed(stream))
      assert.same({ { event = "message", data = "before" }, { event = "message", data = "own", id = "4" },
                    { event = "message", data = "inherited", id = "4", id_inherited = true } },
                  sse.parser({ mark_inherited_ids = true }):feed(stream))
    end)

    it("keeps the order and the IDs when a large event follows small ones in one chunk", function()
      -- under LuaJIT the small ones wait in the batch; the large one is built in C, after them
      local big = string.rep("L", 5000)
      local p = sse.parser({ mark_inherited_ids = true })
      assert.same({ { event = "message", data = "one", id = "1" },
                    { event = "step", data = "two", id = "2" },
                    { event = "message", data = big, id = "2", id_inherited = true },
                    { event = "message", data = "four", id = "4" } },
                  p:feed("id: 1\ndata: one\n\nid: 2\nevent: step\ndata: two\n\ndata: " .. big ..
                         "\n\nid: 4\ndata: four\n\n"))
      assert.same({ { event = "message", data = "five", id = "4", id_inherited = true } }, p:feed("data: five\n\n"))
    end)

    it("delivers events of more than a megabyte in one feed", function()
      local big = string.rep("x", 700 * 1024)
      local events = assert(sse.parser():feed("data: " .. big .. "\n\ndata: " .. big .. "y\n\ndata: z\n\n"))
      assert.same({ 3, big, big .. "y", "z" }, { #events, events[1].data, events[2].data, events[3].data })
    end)

    it("left full by a build that did not finish makes the parser report itself failed until reset", function()
      local p = sse.parser()
      assert.equal(1, (p:_feed_batch("id: 3\ndata: lost\n\n"))) -- as if building had run out of memory
      local events, err = p:feed("data: next\n\n")
      assert.is_nil(events)
      assert.same({ "memory", "out of memory while parsing the event stream" }, { err.kind, tostring(err) })
      assert.is_nil((p:feed("data: still\n\n")))
      p:reset()
      assert.same({ { event = "message", data = "again", id = "3" } }, p:feed("data: again\n\n"))
    end)

    it("says which argument of feed is wrong, as a method call counts them", function()
      local p = sse.parser()
      local ok, err = pcall(function() return p:feed({}) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'feed' (string expected, got table)", err, 1, true)
      ok, err = pcall(function() return p:feed() end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'feed' (string expected, got no value)", err, 1, true)
    end)

    if jit then
      it("refuses a C module whose batch layout differs from the declared one", function()
        local open = require "agentruns.sse_ffi"
        local layout = { batch = 1 }
        local ok, err = pcall(open, { _feed_batch = function() end }, layout)
        assert.is_false(ok)
        assert.matches("agentruns.sse and agentruns.sse_ffi come from different builds", err, 1, true)
      end)
    end
  end)

  describe("event types in one feed", function()
    -- Types of equal length that follow each other: the parser reuses the Lua string of a
    -- repeated type, and must not mistake a new type for the last one.
    local stream = "event: abcd\ndata: 1\n\nevent: wxyz\ndata: 2\n\nevent: wxyz\ndata: 3\n\n" ..
                   "data: 4\n\nevent: abcd\ndata: 5\n\n"
    it("are each event's own with feed", function()
      local types = {}
      for _, e in ipairs(sse.parser():feed(stream)) do types[#types + 1] = e.event end
      assert.same({ "abcd", "wxyz", "wxyz", "message", "abcd" }, types)
    end)

    it("are each event's own with feed_flat", function()
      local flat = sse.parser():feed_flat(stream)
      assert.same({ "abcd", "wxyz", "wxyz", "message", "abcd" }, { flat[2], flat[5], flat[8], flat[11], flat[14] })
    end)
  end)

  describe("as a Lua value", function()
    it("prints its type and address", function()
      assert.matches("^agentruns%.SSEParser: 0x%x+$", tostring(sse.parser()))
    end)

    it("has a metatable named agentruns.SSEParser", function()
      assert.equal("agentruns.SSEParser", getmetatable(sse.parser()).__name)
    end)

    it("returns limit errors with the shared error metatable", function()
      local _, err = sse.parser({ max_event_size = 1 }):feed("xx")
      assert.equal(sse.error_metatable, getmetatable(err))
    end)

    it("raises when a method is called on something else", function()
      local p = sse.parser()
      assert.equal("agentruns.SSEParser expected, got table", reason(pcall(p.feed, {}, "x")))
      assert.equal("agentruns.SSEParser expected, got no value", reason(pcall(p.reset)))
      -- other userdata, full (a file) and light (cjson's null), are told apart too
      -- (Lua 5.4 names the type from __name, 5.1 and LuaJIT say userdata)
      assert.matches("^agentruns.SSEParser expected, got [%w*]+$", reason(pcall(p.feed, io.stdout, "x")))
      assert.matches("^agentruns.SSEParser expected, got [%w ]+$", reason(pcall(p.feed, require("cjson").null, "x")))
      assert.matches("^agentruns.SSEParser expected, got [%w.]+$",
                     reason(pcall(p.last_event_id, require("agentruns.curl").session())))
    end)

    it("is collectable, with or without pending input", function()
      local weak = setmetatable({}, { __mode = "k" })
      for i = 1, 200 do
        local p = sse.parser()
        if i % 2 == 0 then p:feed("id: " .. i .. "\ndata: " .. string.rep("x", i) .. "\n\ndata: pending") end
        weak[p] = true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)
  end)
end)

describe("agentruns.sse alone", function()
  -- a child process, since this one has libcurl loaded already
  local function run(code, path)
    local interp = require("spec.support.sandbox").interpreter()
    local cmd = string.format("env LUA_PATH=%q LUA_CPATH=%q %s -e %q 2>&1", path or package.path, package.cpath,
                              interp, code)
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
  end
  local MAPS = [[
    local libs = {}
    for line in io.lines("/proc/self/maps") do
      local lib = line:match("/([^/]*libcurl[^/]*)$")
      if lib then libs[lib] = true end
    end
    local names = {}
    for lib in pairs(libs) do names[#names + 1] = lib end
    print("libcurl: " .. (#names > 0 and table.concat(names, " ") or "none"))
  ]]

  it("loads and parses with no libcurl in the process", function()
    local parse = 'local p = require("agentruns.sse").parser(); io.write(#p:feed("data: a\\n\\ndata: b\\n\\n"), " ")'
    assert.equal("2 libcurl: none\n", run(parse .. MAPS))
  end)

  it("is what agentruns.curl builds on, which does load libcurl", function()
    assert.matches("^libcurl: libcurl", run('require "agentruns.curl"' .. MAPS))
  end)

  local FEED = 'local p = require("agentruns.sse").parser(); local e = p:feed("id: 1\\ndata: a\\n\\n")[1]; ' ..
               'io.write(debug.getinfo(p.feed, "S").what, " ", e.data, " ", e.id)'

  it("builds in C when agentruns/sse_ffi.lua is not installed beside it", function()
    assert.equal("C a 1", run(FEED, "./nowhere/?.lua"))
  end)

  if rawget(_G, "jit") then
    it("fails to load, saying why, when agentruns/sse_ffi.lua is there but broken", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir .. "/agentruns"))
      local f = assert(io.open(dir .. "/agentruns/sse_ffi.lua", "w"))
      f:write('error("sse_ffi is broken here")\n')
      f:close()
      local out = run(FEED, dir .. "/?.lua;" .. package.path)
      os.execute("rm -r " .. dir)
      assert.matches("sse_ffi is broken here", out, 1, true)
      assert.not_matches("^Lua a 1", out)
    end)

    it("builds through the FFI when agentruns/sse_ffi.lua is found", function()
      assert.equal("Lua a 1", run(FEED))
    end)
  end
end)

-- sse_corpus.lua -- writes the event-stream corpora every SSE parser in the benchmark reads.
--
--   lua5.4 bench/sse_corpus.lua build/bench
--
-- Three files, generated deterministically (no randomness), and a manifest listing them:
--   sse-small.txt  200,000 small events shaped like agent-run step updates: id, event, one
--                  line of JSON (about 170 bytes each, LF line ends)
--   sse-large.txt  300 events of about 64 KB whose data spans a few hundred lines of varied
--                  length (long tool outputs, reports)
--   sse-crlf.txt   100,000 events with CRLF line ends, comment lines (keepalives), a retry
--                  field every 100 events, events with and without a type, one or two data lines
--   sse-corpora.txt  one line per corpus: name, file, events, total data bytes, description
-- The event and data-byte counts let every parser check that it saw the same events. A file
-- already written by this version of the generator is kept (its size and head are checked).
local outdir = arg[1] or "build/bench"

local WORDS = { "Reading", "the", "repository", "layout", "and", "planning", "next", "step", "tests", "pass",
                "calling", "tool", "search", "results", "for", "quarterly", "sales", "summary" }

local function words(i, n)
  local t = {}
  for w = 1, n do t[w] = WORDS[(i * 7 + w * 3) % #WORDS + 1] end
  return table.concat(t, " ")
end

-- Each generator returns the parts of the stream, the event count and the data bytes.
local function small()
  local parts, data_bytes = {}, 0
  local n = 200000
  for i = 1, n do
    local data = string.format('{"runId":"run_%06d","runStatus":"RUNNING",' ..
      '"timestamp":"2026-01-01T%02d:%02d:%02d.%03dZ","step":{"text":"%s"}}',
      i % 1000, math.floor(i / 3600) % 24, math.floor(i / 60) % 60, i % 60, i % 1000, words(i, 3 + i % 9))
    parts[i] = "id: " .. i .. "\nevent: step\ndata: " .. data .. "\n\n"
    data_bytes = data_bytes + #data
  end
  return parts, n, data_bytes
end

local function large()
  local parts, data_bytes = {}, 0
  local n = 300
  for i = 1, n do
    local lines, size, k = {}, 0, 0
    while size < 64 * 1024 do
      k = k + 1
      -- lines from 20 to about 1,000 bytes: prose, table rows, a few long JSON lines
      local len = 20 + (i * 131 + k * 977) % 1000
      local text = words(i + k, math.floor(len / 6) + 1)
      text = text:sub(1, len)
      lines[#lines + 1] = "data: " .. text .. "\n"
      size = size + #text + 1
    end
    data_bytes = data_bytes + size - 1 -- lines joined with LF, no trailing LF
    parts[i] = "id: " .. i .. "\nevent: output\n" .. table.concat(lines) .. "\n"
  end
  return parts, n, data_bytes
end

local function crlf()
  local parts, data_bytes = {}, 0
  local n = 100000
  for i = 1, n do
    local ev = {}
    if i % 10 == 0 then ev[#ev + 1] = ": keepalive\r\n" end
    if i % 100 == 1 then ev[#ev + 1] = "retry: " .. (1000 + i % 5000) .. "\r\n" end
    ev[#ev + 1] = "id: " .. i .. "\r\n"
    if i % 3 == 0 then ev[#ev + 1] = "event: tool_call\r\n" elseif i % 3 == 1 then ev[#ev + 1] = "event: step\r\n" end
    local data = string.format('{"seq":%d,"text":"%s"}', i, words(i, 2 + i % 7))
    ev[#ev + 1] = "data: " .. data .. "\r\n"
    data_bytes = data_bytes + #data
    if i % 5 == 0 then
      local more = string.format('{"note":"%s"}', words(i + 1, 4))
      ev[#ev + 1] = "data:" .. more .. "\r\n" -- no space after the colon: kept verbatim
      data_bytes = data_bytes + 1 + #more
    end
    ev[#ev + 1] = "\r\n"
    parts[i] = table.concat(ev)
  end
  return parts, n, data_bytes
end

local corpora = {
  { "small", "sse-small.txt", small, "200k small JSON events, LF" },
  { "large", "sse-large.txt", large, "300 events of ~64 KB, multi-line data" },
  { "crlf", "sse-crlf.txt", crlf, "100k events, CRLF, comments, retry" },
}

local manifest = {}
for _, c in ipairs(corpora) do
  local name, file, gen, what = c[1], c[2], c[3], c[4]
  local parts, events, data_bytes = gen()
  local text = table.concat(parts)
  local path = outdir .. "/" .. file
  local f = io.open(path, "rb")
  local same = false
  if f then
    same = f:seek("end") == #text and (f:seek("set", 0) and f:read(4096) == text:sub(1, 4096))
    f:close()
  end
  if not same then
    f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end
  manifest[#manifest + 1] = table.concat({ name, path, events, data_bytes, what }, "\t")
end
local f = assert(io.open(outdir .. "/sse-corpora.txt", "w"))
f:write(table.concat(manifest, "\n"), "\n")
f:close()

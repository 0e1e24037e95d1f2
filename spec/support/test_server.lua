--[[
A small HTTP server for the transport specs, on lua-http + cqueues.

It answers whatever the transport needs to be tested against, chosen by path:
  /echo            JSON of the request: method, path, query, headers, body
  /status/N        status N with a JSON error body (?retry_after=S sets Retry-After)
  /flaky/KEY/N     503 for the first N requests naming KEY, then 200 JSON
  /html            a 200 HTML page (not JSON)
  /redirect/S?to=URL  status S with Location: URL (URL percent-encoded)
  /log             the requests received so far (method, path, query, headers), then forgets them
  /bytes/N         N bytes of "x"
  /gzip            {"compressed": true|false, "text": ...}: gzip-encoded (Content-Encoding: gzip)
                   when the request's Accept-Encoding names gzip, plain otherwise
  /slow/S          answers after S seconds
  /hang            sends headers, then nothing, until the client leaves
  /drop            closes the connection without answering
  /drop-mid-body   promises 1000 bytes, sends 10, closes
  /sse/N           N events (id 1..N, `retry: 50`) with a comment between them
  /sse-drop/K      K events, then the connection drops
  /sse-big/N       one event whose data is N bytes
  /sse-keepalive   comments only, until the client leaves
  /sse-resume/N/K  a run of N events (the last is `end`) resumed after Last-Event-ID;
                   each connection drops after K events, in the middle of the next
  /sse-replay/N/K  the same, but ignoring Last-Event-ID: connection c replays 1..c*K
  /sse-then/KEY/K/S  first request per KEY: K events then a drop; later ones: status S
                   (?retry_after=R adds Retry-After: R to those)
  /sse-keepalive-events  `keepalive` events only, until the client leaves
  /sse-end-noid    a step with id 1, then an `end` event that sets no id of its own
  /stats           {"connections": number of TCP connections accepted}

Run: luajit spec/support/test_server.lua  -> prints "listening on http://127.0.0.1:PORT".
     luajit spec/support/test_server.lua 0 tls  -> the same over TLS with a self-signed
     certificate ("listening on https://..."), which a verifying client must refuse.
Every request sleeps for at most a few seconds and every stream is bounded. A HEAD request
gets its route's status and headers and no body.
]]
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_headers = require "http.headers"
local cjson = require "cjson"

local connections = 0

local function respond(stream, status, body, content_type, extra)
  local h = http_headers.new()
  h:append(":status", tostring(status))
  h:append("content-type", content_type or "application/json")
  for name, value in pairs(extra or {}) do h:append(name, value) end
  stream:write_headers(h, body == nil)
  if body ~= nil then stream:write_chunk(body, true) end
end

local function sse_head(stream)
  local h = http_headers.new()
  h:append(":status", "200")
  h:append("content-type", "text/event-stream")
  h:append("cache-control", "no-cache")
  stream:write_headers(h, false)
end

local function sse_event(i)
  return string.format("id: %d\nevent: step\ndata: {\"n\":%d}\n\n", i, i)
end

local routes = {}

function routes.echo(stream, req_headers, path, query)
  local headers = {}
  for name, value in req_headers:each() do
    if name:sub(1, 1) ~= ":" then
      if headers[name] then headers[name] = headers[name] .. ", " .. value else headers[name] = value end
    end
  end
  local body = stream:get_body_as_string(5) or ""
  respond(stream, 200, cjson.encode {
    method = req_headers:get(":method"), path = path, query = query or "",
    headers = headers, body = body,
  }, nil, { ["x-request-id"] = "req-echo-1" })
end

function routes.status(stream, _, _, query, arg)
  local retry_after = (query or ""):match("retry_after=([^&]+)")
  respond(stream, tonumber(arg), cjson.encode { message = "status " .. arg }, nil,
          { ["retry-after"] = retry_after or "1" })
end

local flaky_counts = {}
function routes.flaky(stream, _, _, _, arg)
  local key, n = arg:match("^([^/]+)/(%d+)$")
  flaky_counts[key] = (flaky_counts[key] or 0) + 1
  if flaky_counts[key] <= tonumber(n) then
    respond(stream, 503, cjson.encode { message = "try again" }, nil, { ["retry-after"] = "0" })
  else
    respond(stream, 200, cjson.encode { ok = true, tries = flaky_counts[key] })
  end
end

function routes.redirect(stream, _, _, query, arg)
  local to = (query or ""):match("to=([^&]+)"):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  respond(stream, tonumber(arg), "", "text/plain", { location = to })
end

function routes.html(stream)
  respond(stream, 200, "<html><body>Bad gateway</body></html>", "text/html")
end

local log = {}
function routes.log(stream)
  local entries = log
  log = {}
  respond(stream, 200, #entries > 0 and cjson.encode(entries) or "[]")
end

function routes.bytes(stream, _, _, _, arg)
  respond(stream, 200, string.rep("x", tonumber(arg)), "text/plain")
end

-- A gzip member of s in stored deflate blocks (no compression, so no zlib is needed here):
-- what a compressing server sends, as far as a client's decoder can tell.
local bit = require "bit"
local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = bit.band(c, 1) == 1 and bit.bxor(bit.rshift(c, 1), 0xEDB88320) or bit.rshift(c, 1) end
  CRC_TABLE[i] = c
end

local function le32(n)
  return string.char(bit.band(n, 255), bit.band(bit.rshift(n, 8), 255), bit.band(bit.rshift(n, 16), 255),
                     bit.band(bit.rshift(n, 24), 255))
end

local function gzip_stored(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do crc = bit.bxor(CRC_TABLE[bit.band(bit.bxor(crc, s:byte(i)), 255)], bit.rshift(crc, 8)) end
  local parts, at = { "\31\139\8\0\0\0\0\0\0\255" }, 1 -- magic, deflate, no flags, no time, unknown OS
  repeat
    local block = s:sub(at, at + 65534)
    at = at + #block
    local n = #block
    parts[#parts + 1] = string.char(at > #s and 1 or 0, n % 256, math.floor(n / 256),
                                    (65535 - n) % 256, math.floor((65535 - n) / 256)) .. block
  until at > #s
  parts[#parts + 1] = le32(bit.bnot(crc)) .. le32(#s)
  return table.concat(parts)
end

function routes.gzip(stream, req_headers)
  local accepted = (req_headers:get("accept-encoding") or ""):lower():find("gzip", 1, true) ~= nil
  local body = cjson.encode { compressed = accepted, text = string.rep("compressible ", 200) }
  if accepted then
    respond(stream, 200, gzip_stored(body), "application/json", { ["content-encoding"] = "gzip" })
  else
    respond(stream, 200, body)
  end
end

function routes.slow(stream, _, _, _, arg)
  cqueues.sleep(math.min(tonumber(arg) or 0.2, 5))
  respond(stream, 200, cjson.encode { slept = tonumber(arg) })
end

function routes.hang(stream)
  sse_head(stream)
  cqueues.sleep(5)
  stream:shutdown()
end

-- Close the socket itself: shutting the stream down would answer 503 first.
local function drop_connection(stream)
  stream.connection.socket:shutdown("rw")
end

function routes.drop(stream)
  drop_connection(stream)
end

routes["drop-mid-body"] = function(stream)
  local h = http_headers.new()
  h:append(":status", "200")
  h:append("content-length", "1000")
  stream:write_headers(h, false)
  stream:write_chunk(string.rep("y", 10), false)
  drop_connection(stream)
end

function routes.sse(stream, _, _, _, arg)
  sse_head(stream)
  stream:write_chunk("retry: 50\n\n", false)
  for i = 1, tonumber(arg) do
    -- a client that left ends the route (ignoring the error would repeat it until cqueues throws)
    if not stream:write_chunk(": tick\n" .. sse_event(i), false) then return end
  end
  stream:write_chunk("", true)
end

routes["sse-drop"] = function(stream, _, _, _, arg)
  sse_head(stream)
  for i = 1, tonumber(arg) do stream:write_chunk(sse_event(i), false) end
  stream:write_chunk("id: 999\ndata: never finished", false)
  cqueues.sleep(0.05)
  drop_connection(stream)
end

routes["sse-big"] = function(stream, _, _, _, arg)
  sse_head(stream)
  stream:write_chunk("data: " .. string.rep("z", tonumber(arg)) .. "\n\n", true)
end

routes["sse-keepalive"] = function(stream)
  sse_head(stream)
  for _ = 1, 100 do
    if not stream:write_chunk(": keepalive\n", false, 1) then return end
    cqueues.sleep(0.05)
  end
  stream:shutdown()
end

local function run_event(i, n)
  local name = i == n and "end" or "step"
  return string.format("id: %d\nevent: %s\ndata: {\"n\":%d}\n\n", i, name, i)
end

-- Events first..n, at most k of them, a keepalive between each; then the
-- connection drops halfway through the next event unless the run ended.
local function serve_run(stream, first, n, k)
  sse_head(stream)
  stream:write_chunk("retry: 5\n\n", false)
  local last = math.min(first + k - 1, n)
  for i = first, last do
    stream:write_chunk(run_event(i, n) .. "event: keepalive\ndata: null\n\n", false)
  end
  if last >= n then
    stream:write_chunk("", true)
  else
    stream:write_chunk(run_event(last + 1, n):sub(1, 12), false)
    cqueues.sleep(0.01)
    drop_connection(stream)
  end
end

routes["sse-resume"] = function(stream, req_headers, _, _, arg)
  local n, k = arg:match("^(%d+)/(%d+)$")
  serve_run(stream, (tonumber((req_headers:get("last-event-id"))) or 0) + 1, tonumber(n), tonumber(k))
end

local replay_counts = {}
routes["sse-replay"] = function(stream, _, _, _, arg)
  local n, k = arg:match("^(%d+)/(%d+)$")
  replay_counts[arg] = (replay_counts[arg] or 0) + 1
  serve_run(stream, 1, tonumber(n), replay_counts[arg] * tonumber(k))
end

local then_counts = {}
routes["sse-then"] = function(stream, _, _, query, arg)
  local key, k, status = arg:match("^([^/]+)/(%d+)/(%d+)$")
  then_counts[key] = (then_counts[key] or 0) + 1
  if then_counts[key] == 1 then return serve_run(stream, 1, 1000, tonumber(k)) end
  local body = cjson.encode { message = "gone" }
  if status == "204" then body = nil end
  local retry_after = (query or ""):match("retry_after=([^&]+)")
  respond(stream, tonumber(status), body, nil, retry_after and { ["retry-after"] = retry_after })
end

routes["sse-end-noid"] = function(stream)
  sse_head(stream)
  stream:write_chunk('id: 1\nevent: step\ndata: {"n":1}\n\nevent: end\ndata: {"done":true}\n\n', true)
end

routes["sse-keepalive-events"] = function(stream)
  sse_head(stream)
  for _ = 1, 100 do
    if not stream:write_chunk("event: keepalive\ndata: null\n\n", false, 1) then return end
    cqueues.sleep(0.05)
  end
  stream:shutdown()
end

function routes.stats(stream)
  respond(stream, 200, cjson.encode { connections = connections })
end

-- What a route writes, as a HEAD request is answered: the headers, then no body.
local function head_only(stream)
  return setmetatable({
    write_headers = function(_, headers) return stream:write_headers(headers, true) end,
    write_chunk = function() return true end,
  }, { __index = function(_, key)
    local value = stream[key]
    if type(value) ~= "function" then return value end
    return function(_, ...) return value(stream, ...) end
  end })
end

local function onstream(_, stream)
  local req_headers = assert(stream:get_headers())
  if req_headers:get(":method") == "HEAD" then stream = head_only(stream) end
  local target = req_headers:get(":path")
  local path, query = target:match("^([^?]*)%??(.*)$")
  local name, arg = path:match("^/([%w%-]+)/?(.*)$")
  local route = routes[name or ""]
  if name ~= "log" then
    local headers = {}
    for k, v in req_headers:each() do
      if k:sub(1, 1) ~= ":" then headers[k] = v end
    end
    log[#log + 1] = { method = req_headers:get(":method"), path = path, query = query, headers = headers }
  end
  if not route then return respond(stream, 404, cjson.encode { message = "no route " .. path }) end
  route(stream, req_headers, path, query, arg)
end

local server = assert(http_server.listen {
  host = "127.0.0.1",
  port = tonumber(arg[1]) or 0,
  tls = arg[2] == "tls",
  onstream = onstream,
  onerror = function(_, _, op, err)
    -- a refused TLS handshake is what the TLS spec expects; everything else is news
    if op ~= "wrap" then io.stderr:write(tostring(op), ": ", tostring(err), "\n") end
  end,
  connection_setup_timeout = 5,
  intra_stream_timeout = 10,
})
assert(server:listen())
local _, _, port = server:localname()
-- count TCP connections: the server hands every accepted socket to add_socket
local orig_add = server.add_socket
function server.add_socket(self, socket)
  connections = connections + 1
  return orig_add(self, socket)
end
io.stdout:write(string.format("listening on %s://127.0.0.1:%d\n", arg[2] == "tls" and "https" or "http", port))
io.stdout:flush()
local cq = server.cq
local signal = require "cqueues.signal"
signal.block(signal.SIGTERM, signal.SIGINT)
local listener = signal.listen(signal.SIGTERM, signal.SIGINT)
cq:wrap(function()
  listener:wait()
  server:close()
  os.exit(0)
end)
assert(server:loop())

-- One request and its response, wrapping a lua-http server stream.
--
-- Handlers read the request through the exchange (`ex:query`, `ex:header`, `ex.body`) and answer
-- with `ex:json`, `ex:respond` or, for event streams, `ex:open_stream` + `ex:send_event`. Plain
-- answers are buffered and written by `ex:finish`, which is where the response faults act
-- (truncating, corrupting, oversizing, dropping); stream faults act as events are written. The
-- fault plan is in `ex.plan` (see faults.lua). Writing never raises: a vanished client makes the
-- write functions return nil and the exchange is marked `closed`.
local cqueues = require "cqueues"
local http_headers = require "http.headers"
local json = require "agentruns.sandbox.json"

local exchange = {}

local methods = {}
local mt = { __index = methods, __name = "agentruns.sandbox.Exchange" }

-- Seconds a single write may take before the client is considered gone.
local WRITE_TIMEOUT = 30

local JSON_TYPE = "application/json; charset=utf-8"

local function unescape(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Parses a raw query string into `{ name = {value, ...} }` plus the names in order of appearance.
local function parse_query(raw)
  local values, order = {}, {}
  for pair in raw:gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=(.*)$")
    if not name then name, value = pair, "" end
    name, value = unescape(name), unescape(value)
    if not values[name] then
      values[name] = {}
      order[#order + 1] = name
    end
    table.insert(values[name], value)
  end
  return values, order
end

-- Creates an exchange for `stream` whose request `headers` and `body` were already read.
function exchange.new(stream, headers, body, context)
  local target = headers:get(":path") or "/"
  local path, raw_query = target:match("^([^?]*)%??(.*)$")
  local values, order = parse_query(raw_query)
  return setmetatable({
    stream = stream,
    headers = headers,
    method = headers:get(":method"),
    path = path,
    raw_query = raw_query,
    query_values = values,
    query_names = order,
    body = body or "",
    context = context,
    plan = {},
    events_sent = 0,
  }, mt)
end

-- The first value of query parameter `name`, or nil.
function methods:query(name)
  local list = self.query_values[name]
  return list and list[1]
end

-- Every value of query parameter `name` (an empty list when absent).
function methods:query_all(name)
  return self.query_values[name] or {}
end

-- The value of request header `name` (lower-case), or nil.
function methods:header(name)
  return self.headers:get(name)
end

-- Buffers a response. `extra` is a list of `{name, value}` pairs.
function methods:respond(status, body, content_type, extra)
  self.response = { status = status, body = body or "", content_type = content_type, extra = extra or {} }
end

-- Buffers a JSON response.
function methods:json(status, value, extra)
  self:respond(status, json.encode(value), JSON_TYPE, extra)
end

-- Buffers a response without a body (e.g. 204).
function methods:empty(status, extra)
  self:respond(status, "", nil, extra)
end

-- Sleeps without blocking other requests.
function methods:sleep(seconds) -- luacheck: ignore 212/self
  if seconds and seconds > 0 then cqueues.sleep(seconds) end
end

-- Closes the connection at once, without (more of) a response.
function methods:drop()
  self.closed = true
  local connection = self.stream.connection
  if connection and connection.socket then
    connection.socket:shutdown("rw")
  end
end

local function build_headers(status, content_type, length, extra)
  local h = http_headers.new()
  h:append(":status", tostring(status))
  if content_type then h:append("content-type", content_type) end
  if length then h:append("content-length", tostring(length)) end
  for _, pair in ipairs(extra) do h:append(pair[1], pair[2]) end
  return h
end

local function write_failed(self)
  self.closed = true
  return nil
end

-- Applies the body-rewriting faults to a buffered response.
local function rewrite(self, r)
  local plan = self.plan
  if plan.oversized_body then
    local n = math.max(plan.oversized_body, 14)
    r.status, r.content_type = 200, JSON_TYPE
    r.body = '{"padding":"' .. string.rep("x", n - 14) .. '"}'
  end
  if plan.invalid_json then
    r.content_type = JSON_TYPE
    r.body = '{"error": "this body is not JSON",,}'
  end
  if plan.truncated_json and #r.body > 0 then
    r.content_type = r.content_type or JSON_TYPE
    r.body = r.body:sub(1, math.max(1, math.floor(#r.body / 2)))
  end
  if plan.wrong_content_type then
    r.content_type = "text/plain; charset=utf-8"
  end
end

-- Writes the buffered response, applying the response faults.
function methods:finish()
  if self.closed or self.streaming then return end
  local r = self.response or { status = 500, body = "", extra = {} }
  if self.plan.drop_after_body then
    return self:drop()
  end
  rewrite(self, r)
  local stream = self.stream
  local no_body = r.status == 204 or r.status == 304 or self.method == "HEAD"
  local h = build_headers(r.status, r.content_type, not no_body and #r.body or nil, r.extra)
  if no_body or #r.body == 0 then
    if not stream:write_headers(h, true, WRITE_TIMEOUT) then return write_failed(self) end
    return true
  end
  if not stream:write_headers(h, false, WRITE_TIMEOUT) then return write_failed(self) end
  if self.plan.drop_mid_body then
    stream:write_chunk(r.body:sub(1, math.max(1, math.floor(#r.body / 2))), false, WRITE_TIMEOUT)
    return self:drop()
  end
  if self.plan.slow_stream then
    -- Dribble the body out in four pieces.
    local size = math.ceil(#r.body / 4)
    for i = 1, #r.body, size do
      local last = i + size > #r.body
      if not stream:write_chunk(r.body:sub(i, i + size - 1), last, WRITE_TIMEOUT) then
        return write_failed(self)
      end
      if not last then self:sleep(self.plan.slow_stream) end
    end
    return true
  end
  if not stream:write_chunk(r.body, true, WRITE_TIMEOUT) then return write_failed(self) end
  return true
end

-- Starts a text/event-stream response (its headers are written at once).
function methods:open_stream(extra)
  self.streaming = true
  local content_type = "text/event-stream"
  if self.plan.wrong_content_type then content_type = "text/plain; charset=utf-8" end
  local list = { { "cache-control", "no-cache" } }
  for _, pair in ipairs(extra or {}) do list[#list + 1] = pair end
  local ok = self.stream:write_headers(build_headers(200, content_type, nil, list), false, WRITE_TIMEOUT)
  if not ok then return write_failed(self) end
  if self.plan.drop_stream_after == 0 then
    self:drop()
    return nil
  end
  if self.plan.oversized_body then
    local pad = string.rep("x", math.max(self.plan.oversized_body, 1))
    if not self:write("event: padding\ndata: " .. pad .. "\n\n") then return nil end
  end
  return true
end

-- Writes raw bytes on an open stream.
function methods:write(chunk)
  if self.closed then return nil end
  if not self.stream:write_chunk(chunk, false, WRITE_TIMEOUT) then return write_failed(self) end
  return true
end

-- Formats one event in the text/event-stream syntax.
function exchange.format_event(id, name, data)
  local out = {}
  if id then out[#out + 1] = "id: " .. tostring(id) .. "\n" end
  if name then out[#out + 1] = "event: " .. name .. "\n" end
  for line in (data .. "\n"):gmatch("([^\n]*)\n") do
    out[#out + 1] = "data: " .. line .. "\n"
  end
  out[#out + 1] = "\n"
  return table.concat(out)
end

-- Writes one event (data is JSON text), honouring the stream faults: `slow-stream` waits before
-- it, `truncated-json`/`invalid-json` corrupt the first event's data, `drop-stream-after=K`
-- closes the connection once K events were sent.
function methods:send_event(id, name, data)
  if self.closed then return nil end
  local plan = self.plan
  if plan.slow_stream then self:sleep(plan.slow_stream) end
  if self.events_sent == 0 then
    if plan.invalid_json then data = '{"error": "this body is not JSON",,}' end
    if plan.truncated_json then data = data:sub(1, math.max(1, math.floor(#data / 2))) end
  end
  if not self:write(exchange.format_event(id, name, data)) then return nil end
  self.events_sent = self.events_sent + 1
  if plan.drop_stream_after and self.events_sent >= plan.drop_stream_after then
    self:drop()
    return nil
  end
  return true
end

-- Writes a keepalive event.
function methods:send_keepalive()
  return self:write("event: keepalive\ndata: null\n\n")
end

-- Ends an open stream normally.
function methods:close_stream()
  if self.closed then return end
  self.closed = true
  self.stream:write_chunk("", true, WRITE_TIMEOUT)
end

return exchange

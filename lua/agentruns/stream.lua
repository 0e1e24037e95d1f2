--[[
Live event streams (Server-Sent Events) that survive dropped connections.

`client:stream_events(...)` returns a Stream. Iterating it yields events
  { id = "4", event = "step", data = <decoded JSON, or the text>, raw = "<data>" }
in order, each id once, keepalives left out, and ends after the endpoint's
terminal event (ToolRegistry: `end`).

How it holds on: one SSE parser lives as long as the Stream, so its last
event ID survives reconnects. When the connection drops, goes idle for
`idle_timeout` seconds (keepalives count as traffic there), or the server
closes without the terminal event, the Stream reconnects with
`Last-Event-ID`, after the server's `retry:` delay or else an exponential
backoff with jitter; a reconnect answered with a Retry-After longer than
`max_retry_wait` ends the stream with an error that says so. Events whose id was already yielded are skipped, so a
server that replays too much costs nothing. The backoff resets only after a
connection delivered an event; `max_reconnects` failed connections in a row
end the stream with an error. A 204 or a 4xx answer ends it at once (the
server says the stream is over or the request is wrong); `event_timeout`, if
set, ends a stream whose server sends nothing but keepalives.

A stream without event ids (HappyRobot's session stream) says how else to hold on in its
endpoint's `stream` table: `ends_on_close` (the server closing the response is the end, not a
drop), `backfill`/`max_backfill` (the query parameter that asks a reconnect for the recent past
again, and how much) and `dedup` (the field of an event's data that names what it carries:
one already yielded is skipped).

`s:next()` returns the next event, nil at the end, or nil, err. A for loop
gets events and has the error raised (errors.raise: it prints its line
uncaught on every Lua; agentruns.errors.from(caught) gives the table).
`s:close()` (or leaving a for loop in Lua 5.4, or collection) closes the
connection.
]]
local sse = require "agentruns.sse"
local errors = require "agentruns.errors"
local json = require "agentruns.json"
local observe = require "agentruns.observe"
local request = require "agentruns.request"
local retry = require "agentruns.retry"
local runtime = require "agentruns.runtime"
local url = require "agentruns.url"

local M = {}

M.defaults = {
  max_reconnects = 10,
  reconnect_base_delay = 0.25,
  reconnect_max_delay = 10,
}

local Stream = {}
Stream.__index = Stream
Stream.__name = "agentruns.Stream"

-- What the hooks and the log see of this stream's request.
local function shown(self)
  return { method = self.req.method, url = url.redact(self.req.url, self.client.provider.secret_query) }
end

-- Log the end of the stream once: "end", "closed" or "error".
local function ended(self, how, err)
  if self.end_logged or not self.req then return end
  self.end_logged = true
  observe.stream_end(self.client, shown(self), how, err, self.delivered)
end

local function fail(self, err)
  self.err = err
  ended(self, "error", err)
  self:close()
  return nil, err
end

-- Tell the on_response hook and the log how a connection was answered, once per connection.
local function answered(self, status, headers, err)
  if self.answered then return end
  self.answered = true
  local info = shown(self)
  info.status, info.headers, info.error = status, headers, err and tostring(err)
  info.attempt, info.elapsed, info.stream = self.connections, runtime.now() - self.connected_at, true
  observe.response(self.client, info)
end

-- Open a connection, resuming after the last event ID when there is one.
local function connect(self)
  local base = self.req
  if self.spec.backfill and self.connections > 0 then
    -- no ids to resume from: ask for the recent past again; what was yielded is skipped
    local params = {}
    for k, v in pairs(self.params or {}) do params[k] = v end
    params[self.spec.backfill] = self.spec.max_backfill
    base = assert(request.build(self.client, self.ep, self.path_values, params, self.opts))
  end
  local req = {}
  for k, v in pairs(base) do req[k] = v end
  local headers = {}
  for i, h in ipairs(base.headers) do headers[i] = h end
  local last = self.parser:last_event_id()
  if last == "" then last = self.resume_id end
  if last and last ~= "" then headers[#headers + 1] = "Last-Event-ID: " .. last end
  headers[#headers + 1] = "Cache-Control: no-cache"
  req.headers = headers
  req.timeout = nil -- a stream lasts as long as the run; idle_timeout guards it
  self.parser:reset()
  self.connections = self.connections + 1
  local info = shown(self)
  info.headers, info.attempt, info.stream = headers, self.connections, true
  info.reconnect, info.last_event_id = self.connections > 1 or nil, last
  observe.request(self.client, info)
  self.connected_at, self.answered = runtime.now(), false
  self.conn = self.client.transport:open_stream(req, self.parser)
  self.checked = false
end

local function drop_connection(self)
  if self.conn then
    self.conn:close()
    self.conn = nil
  end
end

-- After a failed or finished connection: wait, then connect again, or give up.
local function reconnect(self, cause)
  drop_connection(self)
  if self.delivered_since_connect then
    self.failures = 0
  end
  self.delivered_since_connect = false
  self.failures = self.failures + 1
  if self.failures > self.max_reconnects then
    cause.message = string.format("%s (gave up after %d reconnects without an event)",
      cause.message, self.max_reconnects)
    cause.attempts = self.connections
    return fail(self, cause)
  end
  local delay
  local server_retry = self.parser:retry()
  local max_wait = self.client.max_retry_wait
  if retry.too_long(cause, max_wait) then -- as an ordinary call would: stop, say why
    cause.attempts = self.connections
    return fail(self, cause)
  end
  if cause.retry_after then -- a 429/503 that said when to come back
    delay = cause.retry_after
  elseif server_retry then -- the server's retry: field, within reason
    delay = math.min(server_retry / 1000, max_wait)
  else
    delay = retry.backoff(self.failures, M.defaults.reconnect_base_delay, M.defaults.reconnect_max_delay)
  end
  observe.stream_drop(self.client, shown(self), cause, delay, self:last_event_id())
  self.client.transport:sleep(delay)
  if self.closed then return nil end
  connect(self)
  return true
end

local function error_fields(self, fields)
  fields = fields or {}
  fields.method = self.req.method
  fields.url = url.redact(self.req.url, self.client.provider.secret_query)
  fields.attempts = self.connections
  return fields
end

-- True when `id` was yielded before (ids are compared numerically when numeric).
local function seen(self, id)
  if id == nil then return false end
  local n = id:match("^%d+$") and tonumber(id)
  if n then
    if self.max_numeric and n <= self.max_numeric then return true end
    self.max_numeric = n
    return false
  end
  if self.seen_ids[id] then return true end
  self.seen_count = self.seen_count + 1
  if self.seen_count > 100000 then self.seen_ids, self.seen_count = {}, 1 end
  self.seen_ids[id] = true
  return false
end

-- Decode the event's data in place (the text kept as raw); false when the endpoint names a
-- field that identifies what an event carries and an event with that value was yielded before.
local function fresh(self, ev)
  local raw = ev.data
  local data = json.decode(raw)
  if data == nil then data = raw end
  ev.data, ev.raw = data, raw
  local key = self.spec.dedup and type(data) == "table" and data[self.spec.dedup]
  if key == nil or key == false then return true end
  if self.seen_keys[key] then return false end
  self.seen_keys[key] = true
  return true
end

-- Check the answer to a new connection once its headers are in.
local function check_answer(self)
  local status = self.conn:status()
  if not status then return true end
  self.checked = true
  answered(self, status, self.conn:headers())
  if status == 204 then
    return fail(self, errors.new("http", "the server answered 204 No Content: the stream is over",
      error_fields(self, { status = 204, retryable = false })))
  end
  if status >= 200 and status < 300 then
    local ctype = (self.conn:headers()["content-type"] or ""):lower()
    if not ctype:find("text/event-stream", 1, true) then
      return fail(self, errors.new("decode", "expected text/event-stream, got " .. (ctype ~= "" and ctype or
        "no content type"), error_fields(self, { status = status, retryable = false })))
    end
  end
  return true
end

--- The next event, nil when the stream ended, or nil and an error.
function Stream:next()
  while true do
    if self.err then return nil, self.err end
    if self.finished or self.closed then return nil end
    while self.qi <= #self.queue do
      local ev = self.queue[self.qi]
      self.qi = self.qi + 1
      -- an event that set no id of its own carries the last one: not a replay
      local inherited = ev.id_inherited
      ev.id_inherited = nil
      if ev.event ~= self.keepalive and (inherited or not seen(self, ev.id)) and fresh(self, ev) then
        self.delivered_since_connect = true
        self.delivered = self.delivered + 1
        self.last_event_at = runtime.now()
        if self.terminal[ev.event] then
          self.finished = true
          ended(self, "end")
          self:close()
        end
        return ev
      end
    end
    if not self.conn then connect(self) end
    local wait = self.event_timeout and math.max(self.event_timeout - (runtime.now() - self.last_event_at), 0)
    local batch, err = self.conn:read(wait)
    if not self.checked and not check_answer(self) then return nil, self.err end
    if batch and #batch > 0 then
      self.queue, self.qi = batch, 1
    elseif batch then -- an empty batch: event_timeout ran out
      if self.event_timeout and runtime.now() - self.last_event_at >= self.event_timeout then
        return fail(self, errors.new("timeout", string.format(
          "no event for %g seconds (event_timeout); the server sent only keepalives", self.event_timeout),
          error_fields(self, { retryable = true })))
      end
    elseif batch == false and self.spec.ends_on_close then -- the server's way to say it is over
      answered(self, self.conn and self.conn:status())
      self.finished = true
      ended(self, "end")
      self:close()
      return nil
    elseif batch == false then -- the server ended the response without the terminal event
      answered(self, self.conn and self.conn:status())
      if not reconnect(self, errors.new("network", "the server closed the stream before its end event",
        error_fields(self, { retryable = true }))) then
        return nil, self.err
      end
    else
      answered(self, err.status, err.headers, err.status == nil and err or nil)
      local status = err.status
      local cause
      if err.kind == "http" then -- the API's own message, status, request id
        local _
        _, cause = request.interpret(self.client, self.req, { status = status, headers = err.headers,
          body = err.body }, nil)
        for k, v in pairs(error_fields(self)) do cause[k] = v end
        if status >= 400 and status < 500 and status ~= 408 and status ~= 429 then
          cause.retryable = false
          return fail(self, cause)
        end
        cause.retryable = true
      elseif err.kind == "limit" or err.kind == "memory" then
        return fail(self, errors.new(err.kind, err.message, error_fields(self, { retryable = false })))
      else
        cause = errors.new(err.kind, err.message, error_fields(self, { status = status, retryable = true }))
      end
      if not reconnect(self, cause) then return nil, self.err end
    end
  end
end

--- Close the connection; the stream ends. Idempotent.
function Stream:close()
  if not self.closed then ended(self, "closed") end
  self.closed = true
  drop_connection(self)
end

--- The last event ID seen (what a later resume would send).
function Stream:last_event_id()
  local id = self.parser:last_event_id()
  if id == "" then return self.resume_id end
  return id
end

errors.iterable(Stream)

--- Open the stream endpoint `ep` with a method's arguments. Returns the Stream
--- four times over as the generic-for triple plus closing value.
function M.open(client, ep, ...)
  local path_values, params, opts = request.split_args(ep, ...)
  local self = setmetatable({ client = client, ep = ep, spec = ep.stream, path_values = path_values,
                              params = params, opts = opts, seen_keys = {},
                              queue = {}, qi = 1, seen_ids = {}, seen_count = 0,
                              failures = 0, connections = 0, delivered = 0, terminal = {},
                              keepalive = ep.stream.keepalive,
                              last_event_at = runtime.now(), max_reconnects = M.defaults.max_reconnects }, Stream)
  for _, name in ipairs(ep.stream.terminal or {}) do self.terminal[name] = true end
  local req, err = request.build(client, ep, path_values, params, opts)
  if not req then
    self.err = err
    return self, nil, nil, self
  end
  opts = opts or {}
  self.req = req
  self.event_timeout = opts.event_timeout
  self.max_reconnects = opts.max_reconnects or self.max_reconnects
  self.resume_id = opts.last_event_id
  -- events up to a given last_event_id count as seen, should the server replay them
  if self.resume_id and self.resume_id:match("^%d+$") then self.max_numeric = tonumber(self.resume_id) end
  self.parser = sse.parser { max_event_size = opts.max_event_size or client.max_event_size,
                                  mark_inherited_ids = true }
  -- the object itself is also the closing value of a Lua 5.4 for loop: leaving the loop closes it
  return self, nil, nil, self
end

return M

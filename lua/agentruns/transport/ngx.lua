--[[
The OpenResty transport: HTTP/1.1 over nginx cosockets.

Inside nginx a libcurl call would block the worker and every request it
serves. This transport speaks HTTP/1.1 itself on ngx.socket.tcp(), so each
wait yields to nginx. It offers the interface of transport/curl.lua (read
that file's note); transport/init.lua picks it whenever available() is true:
inside nginx, in a phase where cosockets and light threads work (rewrite,
access, content, timer).

How it works
- start(req) runs the exchange in an nginx light thread (ngx.thread.spawn):
  the request leaves at once and several can be in flight. await() reaps
  that thread with ngx.thread.wait when called from the coroutine that
  started it, and otherwise waits on a semaphore the thread signals.
- A stream is read in the caller's coroutine, only when read() asks, which
  is also its back-pressure. The first read() connects and sends (bounded by
  connect_timeout, not by its own timeout); after that read(timeout) can stop
  waiting at any point of the response and go on later: the parsing state
  and the bytes received so far are kept between calls.
- Connections go to a keep-alive pool named after scheme://host:port, and
  only after a complete response that allows reuse with no byte left over.
  A request that is not idempotent never takes a pooled connection (if a
  pooled one died unanswered, nobody could tell whether the server saw the
  request) and closes its own afterwards. An idempotent request whose reused
  connection closes before any byte of an answer is sent again, once, on a
  new connection, as libcurl does.
- The parsing faces hostile servers: the status line and headers together
  are capped at 256 KB (trailers count too), bodies at max_body_size,
  chunk sizes are hex of bounded length, header lines are scanned in linear
  time however the bytes are split, and every socket operation has a
  timeout (the smallest of what is left of `timeout`, `idle_timeout` and the
  caller's wait).
- Failures are values { kind = "network"|"timeout"|"limit"|"canceled",
  message, sent, status } with the C core's error metatable; `sent` is false
  only when the request provably never left (connect or TLS failed).
TLS: sslhandshake with verification on and the URL's host as server name
(checked against the certificate's DNS names); nginx needs
`lua_ssl_trusted_certificate` for it (see examples/nginx), and host names
need a `resolver`. The pool is per worker: a TLS connection verified in one
location may be reused by another with a different trust setting.
]]
-- luacheck: globals ngx
local exchange = require "agentruns.transport.ngx_exchange"
local host = require "agentruns.host"

local M = {}

--- True inside nginx in a phase where cosockets can be used.
M.available = host.cosockets

--[[ Buffered requests: a light thread each. ]]

local Pending = {}
Pending.__index = Pending

local function run_thread(pending)
  local ok, res, err = pcall(pending.exchange.run, pending.exchange)
  if not ok then
    pending.raised, res, err = res, nil, nil
  end
  pending.finished = true
  if pending.canceled then
    pending.exchange:close()
  else
    pending.res, pending.err = res, err
  end
  if pending.semaphore then pending.semaphore:post(1) end
end

--- Wait for the response: { status, headers, body }, or nil and an error.
function Pending:await()
  if self.canceled then return nil, self.err end
  if not self.reaped and coroutine.running() == self.parent then
    self.reaped = true
    local ok, why = ngx.thread.wait(self.thread)
    if not ok and not self.finished then error(why, 0) end
  end
  if not self.finished then
    if not self.semaphore then self.semaphore = require("ngx.semaphore").new() end
    repeat self.semaphore:wait(exchange.NO_LIMIT) until self.finished or self.canceled
    self.semaphore:post(1) -- wake the next waiter, if any
    if self.canceled then return nil, self.err end
  end
  if self.raised then error(self.raised, 0) end
  return self.res, self.err
end

--- Stop the request; await() then returns a "canceled" error.
function Pending:cancel()
  if self.canceled then return end
  local parent = coroutine.running() == self.parent
  if not self.finished then
    self.canceled, self.exchange.canceled = true, true
    self.res, self.err = nil, exchange.failure("canceled", "transfer canceled", self.exchange.sent)
    -- only the starting coroutine may kill the thread; otherwise it stops at its next receive
    if parent and not self.reaped and ngx.thread.kill(self.thread) then self.reaped = true end
    if self.reaped then self.exchange:close() end
    if self.semaphore then self.semaphore:post(1) end
  elseif parent and not self.reaped then
    self.reaped = true
    ngx.thread.wait(self.thread)
  end
end

--[[ Streams: read in the caller's coroutine. ]]

local Stream = {}
Stream.__index = Stream

local function stream_failure(self, err)
  self.err = err
  self.exchange:close()
  return nil, err
end

--- A non-empty array of events, {} when `timeout` seconds passed first, false at a clean end, or nil, err.
function Stream:read(timeout)
  if self.err then return nil, self.err end
  if self.ended then return false end
  if self.closed then return nil, exchange.failure("canceled", "stream closed", self.exchange.sent) end
  local ex = self.exchange
  local wait_until = timeout and ngx.now() + timeout
  if not self.opened then
    self.opened = true
    local err = ex:open(ex.fresh)
    if err then return stream_failure(self, err) end
  end
  if not ex.head_done then
    local ok, reason = ex:read_head(wait_until)
    if not ok then
      if reason == "wait" then return {} end
      return stream_failure(self, ex:fail(reason))
    end
    if ex.status < 200 or ex.status > 299 then -- an error answer: its body, whole
      local body, err = ex:read_body()
      if not body then return stream_failure(self, ex:fail(err)) end
      ex:finish()
      self.err = { kind = "http", status = ex.status, headers = ex.headers, body = body }
      return nil, self.err
    end
  end
  while true do
    local data, reason = ex:piece(wait_until)
    if data == false then
      self.ended = true
      ex:finish()
      return false
    end
    if not data then
      if reason == "wait" then return {} end
      return stream_failure(self, ex:fail(reason))
    end
    local events, perr = self.parser:feed(data)
    if not events then return stream_failure(self, ex:fail(perr)) end
    if #events > 0 then return events end
  end
end

--- The HTTP status once the headers arrived, else nil.
function Stream:status()
  return self.exchange.head_done and self.exchange.status or nil
end

--- The response headers once they arrived, else nil.
function Stream:headers()
  return self.exchange.head_done and self.exchange.headers or nil
end

--- Close the connection. Idempotent.
function Stream:close()
  self.closed = true
  self.exchange:close()
end

--[[ The transport. ]]

local Transport = {}
Transport.__index = Transport

--- Start `req` in a light thread; returns a pending request.
function Transport:start(req)
  local pending = setmetatable({ exchange = exchange.new(self, req), parent = coroutine.running() }, Pending)
  pending.thread = ngx.thread.spawn(run_thread, pending)
  return pending
end

--- A streaming request feeding `parser` (an agentruns.sse parser); it connects on the first read().
function Transport:open_stream(req, parser)
  if type(parser) ~= "userdata" then error("agentruns.transport.ngx: open_stream needs an SSE parser", 2) end
  return setmetatable({ exchange = exchange.new(self, req), parser = parser }, Stream)
end

--- Sleep without blocking the worker.
function Transport.sleep(_, seconds)
  if seconds > 0 then ngx.sleep(seconds) end
end

--[[
A transport. Options (all optional): keepalive_timeout (seconds an idle
pooled connection is kept, default 60), pool_size (idle connections kept per
host, default 30). Others (e.g. `session`) are for other transports.
]]
function M.new(options)
  options = options or {}
  return setmetatable({
    name = "ngx",
    keepalive_timeout = exchange.ms(options.keepalive_timeout or 60),
    pool_size = options.pool_size or 30,
  }, Transport)
end

return M

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
local sse = require "agentruns.sse"
local http1 = require "agentruns.http1"

local byte, find, lower, format = string.byte, string.find, string.lower, string.format
local concat = table.concat
local ceil = math.ceil

local M = {}

local PHASES = { rewrite = true, access = true, content = true, timer = true }
local READ_SIZE = 65536
local DEFAULT_MAX_BODY = 64 * 1024 * 1024
local DEFAULT_CONNECT_TIMEOUT = 300 -- as libcurl
local NO_LIMIT = 86400           -- seconds: one socket operation when nothing else bounds it
local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$"

--- True inside nginx in a phase where cosockets can be used.
function M.available()
  local n = rawget(_G, "ngx")
  if type(n) ~= "table" or type(n.get_phase) ~= "function" or type(n.socket) ~= "table" then
    return false
  end
  return PHASES[n.get_phase()] == true
end

local function failure(kind, message, sent, status)
  return setmetatable({ kind = kind, message = message, sent = sent, status = status }, sse.error_metatable)
end

local function ms(seconds)
  local v = ceil(seconds * 1000)
  if v < 1 then v = 1 end
  return v
end

--[[ Checking and encoding the request (misuse raises, before anything is sent). ]]

-- { scheme, host, port, authority (the Host header), target, pool } from an http(s) URL.
local function parse_url(url)
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  scheme = scheme and lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    error("agentruns.transport.ngx: only http:// and https:// URLs are supported", 4)
  end
  local host, port_text = authority:match("^(%[[%x:.]+%])(.*)$") -- an IPv6 literal
  if not host then host, port_text = authority:match("^([%w.-]+)(.*)$") end
  local port = scheme == "https" and 443 or 80
  if port_text ~= "" then port = port_text and tonumber(port_text:match("^:(%d%d?%d?%d?%d?)$")) end
  if not host or not port or port == 0 or port > 65535 then
    error("agentruns.transport.ngx: invalid host or port in URL", 4)
  end
  local target = rest:gsub("#.*$", "")
  if target == "" then target = "/" elseif byte(target) == 63 then target = "/" .. target end -- "?q"
  if find(target, "[%s%c]") then error("agentruns.transport.ngx: URL has spaces or control characters", 4) end
  local default_port = port == (scheme == "https" and 443 or 80)
  return {
    scheme = scheme, host = host, port = port, target = target,
    authority = default_port and host or (host .. ":" .. port),
    pool = scheme .. "://" .. host .. ":" .. port,
  }
end

local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- The request's bytes, as a table for sock:send.
local function encode_request(req, u)
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match(TOKEN) then
    error("agentruns.transport.ngx: invalid method", 4)
  end
  local body = req.body
  if body ~= nil and type(body) ~= "string" then error("agentruns.transport.ngx: body must be a string", 4) end
  local out = { method, " ", u.target, " HTTP/1.1\r\n" }
  local has_host = false
  for _, line in ipairs(req.headers or {}) do
    local name = type(line) == "string" and line:match("^([^:]+):")
    if not name or not name:match(TOKEN) or find(line, "[\r\n%z]") then
      error("agentruns.transport.ngx: header lines must be \"Name: value\" without CR, LF or NUL", 4)
    end
    name = lower(name)
    if name == "host" then has_host = true end
    -- the framing of the request is this module's business
    if name ~= "content-length" and name ~= "transfer-encoding" and name ~= "connection" then
      out[#out + 1] = line
      out[#out + 1] = "\r\n"
    end
  end
  if not has_host then out[#out + 1] = "Host: " .. u.authority .. "\r\n" end
  if body then
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
  elseif BODY_METHODS[method] then
    out[#out + 1] = "Content-Length: 0\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  return out
end

local function seconds_option(req, name)
  local v = req[name]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < 0 then
    error("agentruns.transport.ngx: " .. name .. " must be a non-negative number", 4)
  end
  if v == 0 then return nil end -- as libcurl: none
  return v
end

--[[
An exchange: one request and its response, on one connection (or two, when
a reused connection turned out dead). The socket reader keeps `buf`, the
bytes received, and `pos`, the first not yet consumed.
]]
local Exchange = {}
Exchange.__index = Exchange

local function new_exchange(transport, req)
  if type(req) ~= "table" or type(req.url) ~= "string" then
    error("agentruns.transport.ngx: request must be a table with a url", 3)
  end
  local u = parse_url(req.url)
  local max_body = req.max_body_size
  if max_body ~= nil and (type(max_body) ~= "number" or max_body ~= max_body or max_body < 0) then
    error("agentruns.transport.ngx: max_body_size must be a non-negative number", 3)
  end
  local timeout = seconds_option(req, "timeout")
  local self = setmetatable({
    transport = transport, u = u, method = req.method or "GET",
    bytes = encode_request(req, u),
    fresh = req.idempotent == false,
    timeout = timeout,
    deadline = timeout and ngx.now() + timeout,
    idle = seconds_option(req, "idle_timeout"),
    connect_timeout = seconds_option(req, "connect_timeout") or DEFAULT_CONNECT_TIMEOUT,
    max_body = max_body or DEFAULT_MAX_BODY,
    sent = false, retried = false,
  }, Exchange)
  return self
end

-- Seconds the next socket operation may wait, and which limit that is:
-- "timeout" (the whole request), "idle" (no byte for idle_timeout) or
-- "wait" (the caller's read timeout).
function Exchange:time_left(wait_until)
  local now = ngx.now()
  local left, why = NO_LIMIT, "idle"
  if self.deadline and self.deadline - now < left then left, why = self.deadline - now, "timeout" end
  if self.idle and self.last_activity + self.idle - now < left then
    left, why = self.last_activity + self.idle - now, "idle"
  end
  if wait_until and wait_until - now < left then left, why = wait_until - now, "wait" end
  return left, why
end

-- Connect (a new connection when `fresh`), TLS if https, then send. Returns
-- nil, or a failure.
function Exchange:open(fresh)
  local u = self.u
  local sock = ngx.socket.tcp()
  local connect_for = self.connect_timeout
  if self.deadline and self.deadline - ngx.now() < connect_for then connect_for = self.deadline - ngx.now() end
  if connect_for <= 0 then return failure("timeout", self:timeout_message("timeout"), self.sent) end
  sock:settimeouts(ms(connect_for), ms(connect_for), ms(connect_for))
  -- the fresh pool never receives a connection, so connecting through it always makes a new one
  local ok, err = sock:connect(u.host, u.port, { pool = (fresh and "agentruns-fresh:" or "agentruns:") .. u.pool })
  self.fresh_pool = fresh
  if not ok then
    sock:close()
    if err == "timeout" then
      return failure("timeout", format("connecting to %s:%d timed out after %g seconds", u.host, u.port,
        connect_for), self.sent)
    end
    return failure("network", format("cannot connect to %s:%d: %s", u.host, u.port, tostring(err)), self.sent)
  end
  self.reused = (sock:getreusedtimes() or 0) > 0
  if u.scheme == "https" and not self.reused then
    local session, herr = sock:sslhandshake(nil, u.host, true)
    if not session then
      sock:close()
      return failure(herr == "timeout" and "timeout" or "network",
        format("TLS handshake with %s:%d failed: %s", u.host, u.port, tostring(herr)), self.sent)
    end
  end
  self.sock, self.got_bytes = sock, false
  self.parser = http1.response_parser { method = self.method }
  self.last_activity = ngx.now()
  local left, why = self:time_left()
  if left <= 0 then return self:fail(why) end
  sock:settimeouts(ms(connect_for), ms(left), ms(left))
  self.sent = true -- from here on the server may see the request
  local sent, serr = sock:send(self.bytes)
  if not sent then
    if self:may_resend(serr) then return self:resend() end
    return self:fail(serr == "timeout" and why or serr)
  end
  self.last_activity = ngx.now()
end

-- True when the connection was reused from the pool and died before any
-- byte of an answer: a stale pooled connection, so sending again is safe.
function Exchange:may_resend(reason)
  return self.reused and not self.retried and not self.got_bytes and type(reason) == "string"
    and reason ~= "timeout" and reason ~= "idle" and reason ~= "wait" and reason ~= "canceled"
end

function Exchange:resend()
  self.retried = true
  self:close()
  return self:open(true)
end

-- Receive what the socket has (up to READ_SIZE bytes); nil, reason on failure.
function Exchange:recv(wait_until)
  if self.canceled then return nil, "canceled" end
  local left, why = self:time_left(wait_until)
  if left <= 0 then return nil, why end
  local sock = self.sock
  sock:settimeouts(ms(self.connect_timeout), ms(left), ms(left))
  local data, err = sock:receiveany(READ_SIZE)
  if not data then
    if err == "timeout" then return nil, why end
    return nil, err
  end
  self.last_activity = ngx.now()
  self.got_bytes = true
  return data
end

-- Receive once and push it into the response parser: true, or nil and a
-- reason (a socket reason, or a failure the parser found). A close that may
-- call for a resend is left to the caller.
function Exchange:absorb(wait_until)
  local data, err = self:recv(wait_until)
  local ok, perr
  if data then
    ok, perr = self.parser:feed(data)
  elseif err == "closed" and not self:may_resend(err) then
    ok, perr = self.parser:eof()
  else
    return nil, err
  end
  if ok then return true end
  return nil, failure(perr.kind, perr.message, self.sent, self.parser.status)
end

function Exchange:timeout_message(why)
  if why == "timeout" then
    return format("request timed out after %g seconds (timeout)", self.timeout)
  end
  return format("no data received for %g seconds (idle_timeout)", self.idle or NO_LIMIT)
end

-- The failure for `reason` (a socket error string, "timeout", "idle", or a failure already made).
function Exchange:fail(reason)
  if type(reason) == "table" then
    reason.sent = self.sent
    reason.status = reason.status or self.status
    return reason
  end
  if reason == "timeout" or reason == "idle" then
    return failure("timeout", self:timeout_message(reason), self.sent, self.status)
  end
  local message
  if reason == "closed" then
    if not self.got_bytes then
      message = "the server closed the connection without answering"
    elseif not self.head_done then
      message = "the connection closed in the middle of the response headers"
    else
      message = "the connection closed before the end of the response body"
    end
  else
    message = "connection error: " .. tostring(reason)
  end
  return failure("network", message, self.sent, self.status)
end

--[[
Read the status line and headers (the parser skips 1xx interim answers).
Returns true, or nil and a reason ("wait" when the caller's wait ran out
first; calling again goes on where this stopped).
]]
function Exchange:read_head(wait_until)
  local p = self.parser
  while not p.head_done do
    local ok, reason = self:absorb(wait_until)
    if not ok then
      if not self:may_resend(reason) then return nil, reason end
      local err = self:resend()
      if err then return nil, err end
      p = self.parser
    end
  end
  self.head_done, self.status, self.headers = true, p.status, p.headers
  return true
end

--[[
The next piece of the body: a non-empty string, false at its end, or nil
and a reason. Like read_head it can stop on "wait" and go on later.
]]
function Exchange:piece(wait_until)
  local p = self.parser
  while true do
    local data = p:take()
    if data then return data end
    if p:done() then return false end
    local ok, reason = self:absorb(wait_until)
    if not ok then return nil, reason end
  end
end

-- The whole body (at most max_body bytes); nil, reason on failure.
function Exchange:read_body()
  local ok, err = self.parser:limit_body(self.max_body)
  if not ok then return nil, failure(err.kind, err.message, self.sent, self.status) end
  local parts = {}
  while true do
    local data, reason = self:piece()
    if data == false then return concat(parts) end
    if not data then return nil, reason end
    parts[#parts + 1] = data
  end
end

-- After a complete response: back to the pool when it may be reused, else closed.
function Exchange:finish()
  local sock = self.sock
  if not sock then return end
  self.sock = nil
  local p = self.parser
  if p.keep and not self.fresh_pool and p:done() and p:leftover() == "" then
    local t = self.transport
    if sock:setkeepalive(t.keepalive_timeout, t.pool_size) then return end
  end
  sock:close()
end

function Exchange:close()
  local sock = self.sock
  self.sock = nil
  if sock then pcall(sock.close, sock) end
end

-- The whole exchange of a buffered request: { status, headers, body } or nil, err.
function Exchange:run()
  local err = self:open(self.fresh)
  if err then
    self:close()
    return nil, err
  end
  local ok, reason = self:read_head()
  local body
  if ok then body, reason = self:read_body() end
  if not body then
    self:close()
    return nil, self:fail(reason)
  end
  self:finish()
  return { status = self.status, headers = self.headers, body = body }
end

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
    repeat self.semaphore:wait(NO_LIMIT) until self.finished or self.canceled
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
    self.res, self.err = nil, failure("canceled", "transfer canceled", self.exchange.sent)
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
  if self.closed then return nil, failure("canceled", "stream closed", self.exchange.sent) end
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
  local pending = setmetatable({ exchange = new_exchange(self, req), parent = coroutine.running() }, Pending)
  pending.thread = ngx.thread.spawn(run_thread, pending)
  return pending
end

--- A streaming request feeding `parser` (an agentruns.sse parser); it connects on the first read().
function Transport:open_stream(req, parser)
  if type(parser) ~= "userdata" then error("agentruns.transport.ngx: open_stream needs an SSE parser", 2) end
  return setmetatable({ exchange = new_exchange(self, req), parser = parser }, Stream)
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
    keepalive_timeout = ms(options.keepalive_timeout or 60),
    pool_size = options.pool_size or 30,
  }, Transport)
end

return M

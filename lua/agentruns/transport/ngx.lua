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
local core = require "agentruns.core"

local byte, find, sub, lower, format = string.byte, string.find, string.sub, string.lower, string.format
local concat = table.concat
local ceil = math.ceil

local M = {}

local PHASES = { rewrite = true, access = true, content = true, timer = true }
local MAX_HEADER_BYTES = 256 * 1024
local MAX_CHUNK_LINE = 4096      -- a chunk-size line with its extensions
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
  return setmetatable({ kind = kind, message = message, sent = sent, status = status }, core.error_metatable)
end

local function ms(seconds)
  local v = ceil(seconds * 1000)
  if v < 1 then v = 1 end
  return v
end

local function trim(s)
  local i, j = 1, #s
  while i <= j and (byte(s, i) == 32 or byte(s, i) == 9) do i = i + 1 end
  while j >= i and (byte(s, j) == 32 or byte(s, j) == 9) do j = j - 1 end
  return sub(s, i, j)
end

-- True when the comma-separated header value `list` holds `token` (lower case).
local function has_token(list, token)
  if not list then return false end
  for item in list:gmatch("[^,]+") do
    if lower(trim(item)) == token then return true end
  end
  return false
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
  self.sock, self.buf, self.pos, self.got_bytes = sock, "", 1, false
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

-- Up to n bytes (n >= 1): what is buffered, else what one receive brings.
function Exchange:some(n, wait_until)
  local avail = #self.buf - self.pos + 1
  if avail <= 0 then
    local data, err = self:recv(wait_until)
    if not data then return nil, err end
    self.buf, self.pos, avail = data, 1, #data
  end
  if n > avail then n = avail end
  local out = sub(self.buf, self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return out
end

--[[
The next line without its LF (and CR), and the bytes it took. More than
`limit` bytes without a line end is nil, "long". While waiting for the end of
a line the pieces are only collected, so a line sent byte by byte still
costs linear time.
]]
function Exchange:line(limit, wait_until)
  local buf, pos = self.buf, self.pos
  local nl = find(buf, "\n", pos, true)
  if not nl then
    local parts, size = { sub(buf, pos) }, #buf - pos + 1
    repeat
      if size > limit then
        self.buf, self.pos = concat(parts), 1
        return nil, "long"
      end
      local data, err = self:recv(wait_until)
      if not data then
        self.buf, self.pos = concat(parts), 1
        return nil, err
      end
      parts[#parts + 1] = data
      size = size + #data
    until find(data, "\n", 1, true)
    buf, pos = concat(parts), 1
    nl = find(buf, "\n", 1, true)
  end
  if nl - pos > limit then
    self.buf, self.pos = buf, pos
    return nil, "long"
  end
  self.buf, self.pos = buf, nl + 1
  if nl > pos and byte(buf, nl - 1) == 13 then return sub(buf, pos, nl - 2), nl - pos + 1 end
  return sub(buf, pos, nl - 1), nl - pos + 1
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

local function bad(self, message)
  return failure("network", message, self.sent, self.status)
end

local function headers_too_large(self)
  return failure("limit", format("response headers exceed %d bytes", MAX_HEADER_BYTES), self.sent, self.status)
end

-- Decide how the body is delimited, once the headers are in (RFC 9112 6.3).
function Exchange:frame()
  local h, status = self.headers, self.status
  self.keep = self.version == "1.1" and status ~= 101 and not has_token(h.connection, "close")
    and not self.fresh_pool
  if self.method == "HEAD" or status < 200 or status == 204 or status == 304 then
    self.body_state = "done"
  elseif h["transfer-encoding"] then
    local last = h["transfer-encoding"]:match(".*,(.*)$") or h["transfer-encoding"]
    if lower(trim(last)) == "chunked" then
      self.body_state = "size"
    else
      self.body_state, self.keep = "close", false
    end
    if h["content-length"] then self.keep = false end -- both: never trust this connection again
  elseif h["content-length"] then
    local n
    for item in h["content-length"]:gmatch("[^,]+") do -- "N, N" from repeated headers
      local v = trim(item)
      if not v:match("^%d+$") or #v > 15 or (n and tonumber(v) ~= n) then
        return bad(self, "invalid Content-Length in the response")
      end
      n = tonumber(v)
    end
    if not n then return bad(self, "invalid Content-Length in the response") end
    self.body_state, self.left = "length", n
    if n == 0 then self.body_state = "done" end
  else
    self.body_state, self.keep = "close", false
  end
end

--[[
Read the status line and headers (skipping 1xx interim answers). Returns
true, or nil and a reason ("wait" when the caller's wait ran out first;
calling again goes on where this stopped).
]]
function Exchange:read_head(wait_until)
  while not self.head_done do
    local line, used = self:line(MAX_HEADER_BYTES - (self.head_bytes or 0), wait_until)
    if not line then
      if used == "long" then return nil, headers_too_large(self) end
      if self:may_resend(used) then
        local err = self:resend()
        if err then return nil, err end
      else
        return nil, used
      end
    else
      self.head_bytes = (self.head_bytes or 0) + used
      if not self.status then
        local version, code, after = line:match("^HTTP/(1%.%d) (%d%d%d)(.?)")
        if not version or (after ~= "" and after ~= " ") then
          return nil, bad(self, "the server's answer is not HTTP/1.x")
        end
        self.version, self.status, self.headers, self.last_name = version, tonumber(code), {}, nil
      elseif line == "" then
        if self.status >= 100 and self.status < 200 and self.status ~= 101 then
          self.status = nil -- an interim answer: the real one follows
        else
          self.head_done = true
          local err = self:frame()
          if err then return nil, err end
        end
      elseif byte(line) == 32 or byte(line) == 9 then -- obsolete line folding: part of the previous value
        if not self.last_name then return nil, bad(self, "invalid header line in the response") end
        local h = self.headers
        h[self.last_name] = h[self.last_name] .. " " .. trim(line)
      else
        local colon = find(line, ":", 1, true)
        local name = colon and sub(line, 1, colon - 1)
        if not name or not name:match(TOKEN) then return nil, bad(self, "invalid header line in the response") end
        name = lower(name)
        local value, h = trim(sub(line, colon + 1)), self.headers
        h[name] = h[name] and (h[name] .. ", " .. value) or value
        self.last_name = name
      end
    end
  end
  return true
end

--[[
The next piece of the body: a non-empty string, false at its end, or nil
and a reason. Like read_head it can stop on "wait" and go on later.
]]
function Exchange:piece(wait_until)
  while true do
    local state = self.body_state
    if state == "done" then
      return false
    elseif state == "length" or state == "data" then
      local data, err = self:some(self.left, wait_until)
      if not data then
        if err == "closed" then
          return nil, bad(self, format("the connection closed %d bytes before the end of the response body",
            self.left))
        end
        return nil, err
      end
      self.left = self.left - #data
      if self.left == 0 then self.body_state = state == "length" and "done" or "data_end" end
      return data
    elseif state == "close" then -- until the server closes
      local data, err = self:some(READ_SIZE, wait_until)
      if data then return data end
      if err ~= "closed" then return nil, err end
      self.body_state = "done"
      return false
    elseif state == "size" then
      local line, err = self:line(MAX_CHUNK_LINE, wait_until)
      if not line then
        if err == "long" then return nil, bad(self, "invalid chunk size line in the response body") end
        if err == "closed" then return nil, bad(self, "the connection closed in the middle of a chunked body") end
        return nil, err
      end
      local digits, rest = line:match("^(%x+)(.*)$")
      if not digits or #digits > 12 or not (find(rest, "^[ \t]*$") or find(rest, "^[ \t]*;")) then
        return nil, bad(self, "invalid chunk size line in the response body")
      end
      local n = tonumber(digits, 16)
      if n == 0 then
        self.body_state = "trailer"
      else
        self.body_state, self.left = "data", n
      end
    elseif state == "data_end" then -- the CRLF after a chunk's data
      local line, err = self:line(2, wait_until)
      if line ~= "" then
        if err == "closed" then return nil, bad(self, "the connection closed in the middle of a chunked body") end
        if line or err == "long" then return nil, bad(self, "invalid chunked body: no line end after a chunk") end
        return nil, err
      end
      self.body_state = "size"
    else -- "trailer": fields after the last chunk, read and left out
      local line, used = self:line(MAX_HEADER_BYTES - self.head_bytes, wait_until)
      if not line then
        if used == "long" then return nil, headers_too_large(self) end
        if used == "closed" then return nil, bad(self, "the connection closed in the middle of a chunked body") end
        return nil, used
      end
      self.head_bytes = self.head_bytes + used
      if line == "" then self.body_state = "done" end
    end
  end
end

-- The whole body (at most max_body bytes); nil, reason on failure.
function Exchange:read_body()
  local max, parts, size = self.max_body, {}, 0
  if self.body_state == "length" and self.left > max then
    return nil, failure("limit", format("response body exceeds max_body_size (%.0f bytes)", max), self.sent,
      self.status)
  end
  while true do
    local data, err = self:piece()
    if data == false then break end
    if not data then return nil, err end
    size = size + #data
    if size > max then
      return nil, failure("limit", format("response body exceeds max_body_size (%.0f bytes)", max), self.sent,
        self.status)
    end
    parts[#parts + 1] = data
  end
  return concat(parts)
end

-- After a complete response: back to the pool when it may be reused, else closed.
function Exchange:finish()
  local sock = self.sock
  if not sock then return end
  self.sock = nil
  if self.keep and self.body_state == "done" and self.pos > #self.buf then
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

--- A streaming request feeding `parser` (an agentruns.core.sse_parser); it connects on the first read().
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

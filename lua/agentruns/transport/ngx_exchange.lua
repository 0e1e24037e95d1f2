--[[
One HTTP/1.1 exchange over an nginx cosocket, for agentruns.transport.ngx:
the request encoded and sent, the answer read through the push parser of
agentruns.http1 (which holds every cap and all the framing), the connection
pooled afterwards when it may be.

  local ex = exchange.new(transport, req)   -- misuse raises here, before anything is sent
  local err = ex:open(fresh)                 -- connect, TLS, send
  ex:read_head(wait_until); ex:piece(wait_until); ex:read_body(); ex:finish(); ex:close()
  ex:run()                                   -- all of it, for a buffered request

Every socket operation has a timeout: the smallest of what is left of
`timeout`, `idle_timeout` and the caller's wait (`wait_until`). A wait that
runs out first returns the reason "wait", and calling again goes on where it
stopped.
]]
-- luacheck: globals ngx
local sse = require "agentruns.sse"
local http1 = require "agentruns.http1"

local byte, find, lower, format = string.byte, string.find, string.lower, string.format
local concat = table.concat
local ceil = math.ceil

local M = {}

local READ_SIZE = 65536
local DEFAULT_MAX_BODY = 64 * 1024 * 1024
local DEFAULT_CONNECT_TIMEOUT = 300 -- as libcurl
local NO_LIMIT = 86400           -- seconds: one socket operation when nothing else bounds it
local TOKEN = http1.TOKEN
M.NO_LIMIT = NO_LIMIT

function M.failure(kind, message, sent, status)
  return setmetatable({ kind = kind, message = message, sent = sent, status = status }, sse.error_metatable)
end

function M.ms(seconds)
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

function M.new(transport, req)
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
  if connect_for <= 0 then return M.failure("timeout", self:timeout_message("timeout"), self.sent) end
  sock:settimeouts(M.ms(connect_for), M.ms(connect_for), M.ms(connect_for))
  -- the fresh pool never receives a connection, so connecting through it always makes a new one
  local ok, err = sock:connect(u.host, u.port, { pool = (fresh and "agentruns-fresh:" or "agentruns:") .. u.pool })
  self.fresh_pool = fresh
  if not ok then
    sock:close()
    if err == "timeout" then
      return M.failure("timeout", format("connecting to %s:%d timed out after %g seconds", u.host, u.port,
        connect_for), self.sent)
    end
    return M.failure("network", format("cannot connect to %s:%d: %s", u.host, u.port, tostring(err)), self.sent)
  end
  self.reused = (sock:getreusedtimes() or 0) > 0
  if u.scheme == "https" and not self.reused then
    local session, herr = sock:sslhandshake(nil, u.host, true)
    if not session then
      sock:close()
      return M.failure(herr == "timeout" and "timeout" or "network",
        format("TLS handshake with %s:%d failed: %s", u.host, u.port, tostring(herr)), self.sent)
    end
  end
  self.sock, self.got_bytes = sock, false
  self.parser = http1.response_parser { method = self.method }
  self.last_activity = ngx.now()
  local left, why = self:time_left()
  if left <= 0 then return self:fail(why) end
  sock:settimeouts(M.ms(connect_for), M.ms(left), M.ms(left))
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
  sock:settimeouts(M.ms(self.connect_timeout), M.ms(left), M.ms(left))
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
  return nil, M.failure(perr.kind, perr.message, self.sent, self.parser.status)
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
    return M.failure("timeout", self:timeout_message(reason), self.sent, self.status)
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
  return M.failure("network", message, self.sent, self.status)
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
  if not ok then return nil, M.failure(err.kind, err.message, self.sent, self.status) end
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


return M

--[[
An HTTP/1.1 response parser that is pushed bytes: no socket, no clock.

  local p = http1.response_parser { method = "GET", max_body_size = 64 * 1024 * 1024 }
  assert(p:feed(bytes))          -- any split of the response, as it arrives
  if p.head_done then ... p.status, p.version, p.headers ... end
  local piece = p:take()         -- the body bytes parsed since the last take, or nil
  p:done()                       -- the whole response is in
  assert(p:eof())                -- the server closed: the end of a body read to close, or an error

feed() and eof() return true, or nil and an error { kind = "network" | "limit",
message }; after an error the parser keeps returning it. Interim 1xx answers are
skipped (101 ends the head like any final answer). Headers are lower-cased;
repeated ones are joined with ", ", obsolete folded lines with a space.

The framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and 304;
chunked (trailers are read and left out; any other transfer coding is refused,
as this client could not decode it);
else Content-Length (repeats must agree); else until the server closes.
`p.keep` tells whether the connection may be reused once the response is done:
HTTP/1.1, no `Connection: close`, a body delimited by length or chunks, and
nothing contradictory. Bytes after the end are kept by `p:leftover()`.

It faces hostile servers: the status line, headers and trailers together are
capped at `max_header_bytes` (256 KB), a chunk-size line at 4096 bytes with 12
hex digits, the body at `max_body_size` when given (streams pass none: their
events are capped by the SSE parser), and lines are scanned in linear time
however the bytes are split.
]]
local byte, find, sub, lower, format = string.byte, string.find, string.sub, string.lower, string.format
local concat = table.concat

local M = {}

M.MAX_HEADER_BYTES = 256 * 1024
local MAX_CHUNK_LINE = 4096
local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$" -- an RFC 9110 token: header names, methods
M.TOKEN = TOKEN

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

local Parser = {}
Parser.__index = Parser
Parser.__name = "agentruns.http1.Parser"

local LINE_STATES = { status = true, header = true, size = true, data_end = true, trailer = true }

--- A parser for the response to a request made with `opts.method`.
function M.response_parser(opts)
  opts = opts or {}
  return setmetatable({
    method = opts.method or "GET",
    max_head = opts.max_header_bytes or M.MAX_HEADER_BYTES,
    max_body = opts.max_body_size,
    state = "status", head_bytes = 0, body_bytes = 0, fed = false,
    buf = "", pos = 1,          -- the bytes of the current feed not yet consumed
    parts = nil, parts_size = 0, -- an unfinished line, in pieces
    body = {}, extra = {},
    head_done = false, keep = false,
  }, Parser)
end

local function failure(self, kind, message)
  self.err = { kind = kind, message = message }
  self.state = "failed"
  return nil, self.err
end

local function too_large(self)
  return failure(self, "limit", format("response headers exceed %d bytes", self.max_head))
end

local function bad(self, message)
  return failure(self, "network", message)
end

-- The longest line (without its LF) the current state accepts.
local function line_limit(self)
  local state = self.state
  if state == "size" then return MAX_CHUNK_LINE end
  if state == "data_end" then return 2 end
  return self.max_head - self.head_bytes
end

-- A line was too long for the current state.
local function long_line(self)
  local state = self.state
  if state == "size" then return bad(self, "invalid chunk size line in the response body") end
  if state == "data_end" then return bad(self, "invalid chunked body: no line end after a chunk") end
  return too_large(self)
end

-- Decide how the body is delimited, once the headers are in (RFC 9112 6.3).
local function frame(self)
  local h, status = self.headers, self.status
  self.keep = self.version == "1.1" and status ~= 101 and not has_token(h.connection, "close")
  if self.method == "HEAD" or status < 200 or status == 204 or status == 304 then
    self.state = "done"
  elseif h["transfer-encoding"] then
    -- chunked is all this client decodes: another coding would hand the caller encoded bytes
    if lower(trim(h["transfer-encoding"])) ~= "chunked" then
      return bad(self, "unsupported Transfer-Encoding in the response (only chunked is read)")
    end
    self.state = "size"
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
    self.state, self.left = "length", n
    if n == 0 then self.state = "done" end
    return self:limit_body(self.max_body)
  else
    self.state, self.keep = "close", false
  end
  return true
end

-- One line of the head (status line or header), without its line end.
local function head_line(self, line)
  if not self.status then
    local version, code, after = line:match("^HTTP/(1%.%d) (%d%d%d)(.?)")
    if not version or (after ~= "" and after ~= " ") then return bad(self, "the server's answer is not HTTP/1.x") end
    self.version, self.status, self.headers, self.last_name = version, tonumber(code), {}, nil
    self.state = "header"
  elseif line == "" then
    if self.status >= 100 and self.status < 200 and self.status ~= 101 then
      self.status, self.state = nil, "status" -- an interim answer: the real one follows
    else
      self.head_done = true
      return frame(self)
    end
  elseif byte(line) == 32 or byte(line) == 9 then -- obsolete line folding: part of the previous value
    if not self.last_name then return bad(self, "invalid header line in the response") end
    local h = self.headers
    h[self.last_name] = h[self.last_name] .. " " .. trim(line)
  else
    local colon = find(line, ":", 1, true)
    local name = colon and sub(line, 1, colon - 1)
    if not name or not name:match(TOKEN) or find(line, "[%z\1-\8\10-\31\127]", colon) then
      return bad(self, "invalid header line in the response")
    end
    name = lower(name)
    local value, h = trim(sub(line, colon + 1)), self.headers
    h[name] = h[name] and (h[name] .. ", " .. value) or value
    self.last_name = name
  end
  return true
end

-- One line of a chunked body: a size line, the end of a chunk's data, or a trailer.
local function chunk_line(self, line)
  local state = self.state
  if state == "size" then
    local digits, rest = line:match("^(%x+)(.*)$")
    if not digits or #digits > 12 or not (find(rest, "^[ \t]*$") or find(rest, "^[ \t]*;")) then
      return bad(self, "invalid chunk size line in the response body")
    end
    local n = tonumber(digits, 16)
    if n == 0 then
      self.state = "trailer"
    else
      self.state, self.left = "data", n
    end
  elseif state == "data_end" then
    if line ~= "" then return bad(self, "invalid chunked body: no line end after a chunk") end
    self.state = "size"
  elseif line == "" then -- the end of the trailers
    self.state = "done"
  end
  return true
end

local function body_too_large(self)
  return failure(self, "limit", format("response body exceeds max_body_size (%.0f bytes)", self.max_body))
end

local function body_piece(self, piece)
  self.body_bytes = self.body_bytes + #piece
  if self.max_body and self.body_bytes > self.max_body then return body_too_large(self) end
  self.body[#self.body + 1] = piece
  return true
end

-- Consume self.buf from self.pos as far as the state machine goes.
local function run(self)
  local buf = self.buf
  while self.pos <= #buf do
    local state, pos = self.state, self.pos
    if LINE_STATES[state] then
      local limit = line_limit(self)
      local nl = find(buf, "\n", pos, true)
      if not nl then -- keep the start of the line for the next feed
        if #buf - pos + 1 > limit then return long_line(self) end
        self.parts, self.parts_size = { sub(buf, pos) }, #buf - pos + 1
        self.buf, self.pos = "", 1
        return true
      end
      if nl - pos > limit then return long_line(self) end
      local stop = nl - 1
      if stop >= pos and byte(buf, stop) == 13 then stop = stop - 1 end
      local line = sub(buf, pos, stop)
      self.pos = nl + 1
      if state == "status" or state == "header" or state == "trailer" then
        self.head_bytes = self.head_bytes + (nl - pos + 1)
      end
      local ok, err
      if state == "status" or state == "header" then
        ok, err = head_line(self, line)
      else
        ok, err = chunk_line(self, line)
      end
      if not ok then return nil, err end
    elseif state == "length" or state == "data" then
      local n = #buf - pos + 1
      if n > self.left then n = self.left end
      self.pos = pos + n
      self.left = self.left - n
      if self.left == 0 then self.state = state == "length" and "done" or "data_end" end
      local ok, err = body_piece(self, sub(buf, pos, pos + n - 1))
      if not ok then return nil, err end
    elseif state == "close" then
      self.pos = #buf + 1
      local ok, err = body_piece(self, sub(buf, pos))
      if not ok then return nil, err end
    else -- "done": whatever follows is not part of this response
      self.extra[#self.extra + 1] = sub(buf, pos)
      self.pos = #buf + 1
    end
  end
  self.buf, self.pos = "", 1
  return true
end

--- Cap the body at `max` bytes (nil: no cap) from now on; a known longer length fails at once.
function Parser:limit_body(max)
  self.max_body = max
  if self.err then return nil, self.err end
  if max and (self.body_bytes > max or (self.state == "length" and self.body_bytes + self.left > max)) then
    return body_too_large(self)
  end
  return true
end

--- Push the next bytes of the response; true, or nil and an error.
function Parser:feed(data)
  if self.err then return nil, self.err end
  if data == "" then return true end
  self.fed = true
  if self.parts then -- in the middle of a line: collect until its end arrives (linear time)
    local parts = self.parts
    parts[#parts + 1] = data
    self.parts_size = self.parts_size + #data
    if not find(data, "\n", 1, true) then
      if self.parts_size > line_limit(self) then return long_line(self) end
      return true
    end
    data = concat(parts)
    self.parts, self.parts_size = nil, 0
  end
  self.buf, self.pos = data, 1
  return run(self)
end

--- The server closed the connection: true when that ends the response, else nil and the error.
function Parser:eof()
  if self.err then return nil, self.err end
  local state = self.state
  if state == "close" then self.state = "done" end
  if self.state == "done" then return true end
  if not self.fed then return bad(self, "the server closed the connection without answering") end
  if not self.head_done then return bad(self, "the connection closed in the middle of the response headers") end
  if state == "length" or state == "data" then
    return bad(self, format("the connection closed %d bytes before the end of the response body", self.left))
  end
  return bad(self, "the connection closed in the middle of a chunked body")
end

--- The body bytes parsed since the last call, or nil when there are none.
function Parser:take()
  local body = self.body
  if #body == 0 then return nil end
  self.body = {}
  if #body == 1 then return body[1] end
  return concat(body)
end

--- True once the whole response is in.
function Parser:done()
  return self.state == "done"
end

--- The bytes received after the end of the response ("" when none).
function Parser:leftover()
  return concat(self.extra)
end

return M

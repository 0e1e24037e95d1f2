--[[
The default transport: agentruns.curl sessions (libcurl multi).

The interface every transport offers (the request layer knows no other):

  t = transport.new{ session = <agentruns.curl session, optional> }
  p = t:start(req)          start a request; it makes progress whenever the
                            session is driven, so several can be in flight
  res, err = p:await()      { status, headers, body } or nil, err
  p:cancel()
  s = t:open_stream(req, parser)   a streaming request feeding `parser`
  events, err = s:read([timeout])
                            a non-empty array of events; an empty one when
                            `timeout` seconds passed first; false at a clean
                            end of the response; nil, err on failure (an
                            answer that is not 2xx is nil, {kind = "http",
                            status, headers, body})
  s:close()

req = { method, url, headers = {"Name: value", ...}, body, timeout,
        connect_timeout, idle_timeout, max_body_size, idempotent }.

Waiting goes through agentruns.runtime, so the same code blocks in a plain
script and yields inside a scheduler.
]]
local curl = require "agentruns.curl"
local runtime = require "agentruns.runtime"

local M = {}

local shared_session

--- The process-wide session that clients share unless given their own.
function M.shared_session()
  if not shared_session then shared_session = curl.session() end
  return shared_session
end

-- The driver (see agentruns.runtime) of a session: one per session.
local Driver = {}
Driver.__index = Driver

function Driver:drive(wait)
  return self.session:perform(wait)
end

-- The keys (transfer:key()) of the transfers that got data, headers or their end since the
-- last call; true when that is not known; nil when none did.
function Driver:changed()
  return self.session:take_changed()
end

local drivers = setmetatable({}, { __mode = "k" })

--- The driver of `session`, the same object every time.
function M.driver(session)
  local d = drivers[session]
  if not d then
    d = setmetatable({ session = session }, Driver)
    drivers[session] = d
  end
  return d
end

local Pending = {}
Pending.__index = Pending

function Pending:await()
  local t = self.transfer
  runtime.wait(self.driver, function() return t:done() end, nil, t:key())
  local res, err = t:result()
  t:close()
  return res, err
end

function Pending:cancel()
  self.transfer:close()
end

local Stream = {}
Stream.__index = Stream

-- The ready() of a stream's waits, made once per stream: it drains what the
-- transfer completed into self.got (a waiter may ask more than once).
local function stream_ready(self)
  local t = self.transfer
  return function()
    local more = t:events()
    if #more > 0 then
      local got = self.got
      if got then
        for i = 1, #more do got[#got + 1] = more[i] end
      else
        self.got = more
      end
      return true
    end
    return self.got ~= nil or t:done()
  end
end

function Stream:read(timeout)
  local t = self.transfer
  local events = t:events()
  if #events > 0 then return events end
  self.got = nil
  runtime.wait(self.driver, self.ready, timeout, self.key)
  local got = self.got
  self.got = nil
  if got then return got end
  if not t:done() then return events end -- empty: the timeout passed
  local res, err = t:result()
  if not res then return nil, err end
  if res.status < 200 or res.status > 299 then
    return nil, { kind = "http", status = res.status, headers = res.headers, body = res.body }
  end
  return false
end

function Stream:status()
  return self.transfer:status()
end

function Stream:headers()
  return self.transfer:headers()
end

function Stream:close()
  self.transfer:close()
end

local Transport = {}
Transport.__index = Transport

local function transfer_options(req, parser)
  return {
    url = req.url, method = req.method, headers = req.headers, body = req.body,
    timeout = req.timeout, connect_timeout = req.connect_timeout, idle_timeout = req.idle_timeout,
    max_body_size = req.max_body_size, stream = parser,
    -- curl re-sends a request on its own when a reused connection dies
    -- unanswered; a request that must not run twice gets a new connection
    fresh_connect = req.idempotent == false,
  }
end

function Transport:start(req)
  local session = self.session
  -- session:request reads a request table as it is (idempotent = false is
  -- fresh_connect); one that names either option itself is copied
  local transfer = session:request((req.stream == nil and req.fresh_connect == nil) and req
    or transfer_options(req))
  session:perform(0) -- send it now: the server works while the caller does
  runtime.notify()
  return setmetatable({ transfer = transfer, driver = self.driver }, Pending)
end

function Transport:open_stream(req, parser)
  local session = self.session
  local transfer = session:request(transfer_options(req, parser))
  session:perform(0)
  runtime.notify()
  local stream = setmetatable({ transfer = transfer, driver = self.driver, key = transfer:key() }, Stream)
  stream.ready = stream_ready(stream)
  return stream
end

function Transport:sleep(seconds)
  runtime.sleep(seconds, self.driver)
end

--- A transport over `opts.session`, or over the shared session.
function M.new(opts)
  local session = opts and opts.session or M.shared_session()
  return setmetatable({ session = session, driver = M.driver(session), name = "curl" }, Transport)
end

return M

--[[
The request layer, shared by every provider.

A provider module is data: its base URL, how it authenticates, how its error
bodies read, and a table of endpoints. `client.define(provider)` turns that
into a class whose methods are the endpoints:

  endpoint = {
    method = "GET", path = "/reports/runs/{run_id}",
    params = { run_id = T.uuid },               -- types of the path parameters
    query = { limit = T.integer(1, 100) },      -- query parameters (the options table)
    body = { intent = T.required(T.string) },   -- JSON body fields (the options table)
    fixed_query = { active = "true" },          -- sent as given
    prepare = function(client, path_values, params) -> params,  -- fill implied fields
    paginate = { ... }, each = "each_run",      -- see agentruns.paginate
    idempotent = true/false,                    -- default: by method
    stream = true,                              -- an SSE endpoint, see agentruns.stream
  }

The generated method takes the path parameters in the order the path names
them, then one table of query parameters or body fields, then a table of
per-call options (timeout, max_retries, headers). Arguments are checked
before anything is sent; a bad one returns nil, err (kind "invalid_argument",
err.argument naming it). Each call runs: build request -> hooks -> transport
-> status, decode, errors -> retry when safe (see `retry_decision`).
]]
local errors = require "agentruns.errors"
local json = require "agentruns.json"
local observe = require "agentruns.observe"
local runtime = require "agentruns.runtime"
local url = require "agentruns.url"
local transports = require "agentruns.transport"

local M = {}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }
local RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

M.defaults = {
  timeout = 60,                  -- seconds for a whole request
  connect_timeout = 10,
  idle_timeout = 60,             -- streams: no byte for this long -> reconnect
  max_retries = 2,
  retry_base_delay = 0.5,        -- first backoff, doubling
  retry_max_delay = 8,
  max_retry_wait = 60,           -- longest Retry-After honoured
  max_body_size = 64 * 1024 * 1024,
  max_event_size = 16 * 1024 * 1024,
  max_redirects = 5,             -- when follow_redirects is set
}

--[[
Every option `new` knows, the one list of them: an option added to clients
goes here (and is read in `define`'s `new`). A name not in it is refused
with the nearest known ones, so that a typo (`api_kye`) cannot fall back
silently to the environment's key, another account's. The numeric ones are
those of M.defaults. organization_id counts only for providers that have an
organization; a provider may add its own with `options`.
]]
M.client_options = {
  api_key = true, organization_id = true, base_url = true, allow_insecure = true,
  timeout = true, connect_timeout = true, idle_timeout = true, max_retries = true,
  retry_base_delay = true, retry_max_delay = true, max_retry_wait = true,
  max_body_size = true, max_event_size = true, max_redirects = true, follow_redirects = true,
  user_agent = true, on_request = true, on_response = true, log = true, session = true, transport = true,
}
for k in pairs(M.defaults) do assert(M.client_options[k], "client option " .. k .. " is not in client_options") end

local REDIRECT_STATUS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

M.is_secret_header = observe.is_secret_header

local function preview(body)
  local s = body:sub(1, 64):gsub("[%c]", " ")
  if #body > 64 then s = s .. "..." end
  return s
end

--[[ Parse Retry-After: delta seconds or an HTTP date. Returns seconds or nil. ]]
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
function M.parse_retry_after(value, now_epoch)
  if not value then return nil end
  if value:match("^%s*%d+%s*$") then return math.min(tonumber(value), 2 ^ 31) end
  local d, mon, y, h, mi, s = value:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then return nil end
  -- days since the epoch of a civil date (UTC), without os.time's local time zone
  local yy, mm = tonumber(y), MONTHS[mon]
  if mm <= 2 then yy = yy - 1 end
  local era = math.floor(yy / 400)
  local yoe = yy - era * 400
  local mp = (mm + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + tonumber(d) - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  local epoch = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  local delta = epoch - (now_epoch or os.time())
  return delta > 0 and delta or 0
end

-- Validate `value` against `ty`; returns nil on success, else an error value
-- naming the argument, or the field inside it at fault (source.type).
local function check(name, ty, value)
  local ok, why, path = ty.check(value)
  if not ok then return errors.invalid_argument(name .. (path or ""), why) end
end

-- Check a params table against a map of types: required ones, unknown keys.
local function check_fields(where, types, params)
  if params == nil then params = {} end
  if type(params) ~= "table" then
    return errors.invalid_argument(where, "must be a table, got " .. type(params))
  end
  for k in pairs(params) do
    if type(k) ~= "string" or not types[k] then
      local known = {}
      for n in pairs(types) do known[#known + 1] = n end
      table.sort(known)
      return errors.invalid_argument(tostring(k), "is not a parameter of this call (known: " ..
        (#known > 0 and table.concat(known, ", ") or "none") .. ")")
    end
  end
  local names = {}
  for n in pairs(types) do names[#names + 1] = n end
  table.sort(names)
  for _, n in ipairs(names) do
    local v = params[n]
    if v == nil then
      if types[n].required then return errors.invalid_argument(n, "is required") end
    else
      local err = check(n, types[n], v)
      if err then return err end
    end
  end
end

local CALL_OPTIONS = { timeout = true, connect_timeout = true, max_retries = true, headers = true,
                       idle_timeout = true, event_timeout = true, max_items = true, max_event_size = true,
                       max_body_size = true, last_event_id = true, max_reconnects = true }

local function check_call_options(opts)
  if opts == nil then return end
  if type(opts) ~= "table" then return errors.invalid_argument("options", "must be a table, got " .. type(opts)) end
  for k, v in pairs(opts) do
    if not CALL_OPTIONS[k] then
      return errors.invalid_argument(tostring(k), "is not an option of this call" ..
        errors.did_you_mean(k, CALL_OPTIONS))
    end
    if k == "headers" then
      if type(v) ~= "table" then return errors.invalid_argument("headers", "must be a table of name = value") end
      for name, value in pairs(v) do
        if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then
          return errors.invalid_argument("headers",
            "has an invalid header name " .. string.format("%q", tostring(name)))
        end
        if type(value) ~= "string" or value:find("[%z\r\n]") then
          return errors.invalid_argument("headers." .. name, "must be a string without CR, LF or NUL")
        end
      end
    elseif k == "last_event_id" then
      if type(v) ~= "string" or v:find("[%z\r\n]") then
        return errors.invalid_argument("last_event_id", "must be a string without CR, LF or NUL")
      end
    elseif type(v) ~= "number" or not (v >= 0 and v < math.huge) then
      return errors.invalid_argument(k, "must be a non-negative number")
    end
  end
end

--[[
Build the request for `ep` from the method's arguments. Returns the request
table, or nil and an invalid_argument error (nothing is sent then).
]]
function M.build(client, ep, path_values, params, opts)
  local err = check_call_options(opts)
  if err then return nil, err end
  opts = opts or {}
  for _, name in ipairs(ep.path_names) do
    local v = path_values[name]
    if v == nil then return nil, errors.invalid_argument(name, "is required") end
    err = check(name, ep.params[name], v)
    if err then return nil, err end
  end
  local path, bad, why = url.fill_path(ep.path, path_values)
  if not path then return nil, errors.invalid_argument(bad, why) end
  if ep.prepare and (params == nil or type(params) == "table") then
    params = ep.prepare(client, path_values, params)
  end
  local query, body = {}, nil
  if ep.body then
    err = check_fields("body", ep.body, params)
    if err then return nil, err end
    -- Each field as its type sends it: an array as one even when empty, a
    -- time from os.time() as its ISO-8601 string.
    local fields = {}
    for k, v in pairs(params or {}) do
      local to_json = ep.body[k].to_json
      if to_json then v = to_json(v) end
      fields[k] = v
    end
    body, err = json.encode(fields)
    if not body then return nil, errors.invalid_argument("body", err) end
  elseif ep.query then
    err = check_fields("query", ep.query, params)
    if err then return nil, err end
  elseif params ~= nil and (type(params) ~= "table" or next(params) ~= nil) then
    return nil, errors.invalid_argument("params", "this call takes no parameters")
  end
  if ep.query and not ep.body and params then
    local names = {}
    for n in pairs(params) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do
      local q = ep.query[n].to_query(params[n])
      if type(q) == "table" then
        for _, item in ipairs(q) do query[#query + 1] = { n, item } end
      else
        query[#query + 1] = { n, q }
      end
    end
  end
  if ep.fixed_query then
    for _, kv in ipairs(ep.fixed_query) do query[#query + 1] = kv end
  end
  local headers = { "Accept: " .. (ep.stream and "text/event-stream" or "application/json"),
                    "User-Agent: " .. client.user_agent }
  if body then headers[#headers + 1] = "Content-Type: application/json" end
  local auth_query = client.provider.authenticate(client, headers, ep)
  if auth_query then
    for _, kv in ipairs(auth_query) do query[#query + 1] = kv end
  end
  if opts.headers then -- a per-call header replaces the client's own of the same name
    local names = {}
    for n in pairs(opts.headers) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do
      local lname = n:lower()
      for i = #headers, 1, -1 do
        if headers[i]:match("^[^:]+"):lower() == lname then table.remove(headers, i) end
      end
      headers[#headers + 1] = n .. ": " .. opts.headers[n]
    end
  end
  local full = client.base_url .. path
  if #query > 0 then full = full .. "?" .. url.query(query) end
  local idempotent = ep.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT[ep.method] or false end
  return {
    method = ep.method, url = full, headers = headers, body = body,
    timeout = opts.timeout or client.timeout, connect_timeout = opts.connect_timeout or client.connect_timeout,
    idle_timeout = opts.idle_timeout or client.idle_timeout,
    max_body_size = opts.max_body_size or client.max_body_size,
    max_retries = opts.max_retries or client.max_retries,
    idempotent = idempotent, endpoint = ep, options = opts,
  }
end

-- The fields every error of this request carries.
local function request_fields(client, req, fields)
  fields = fields or {}
  fields.method = req.method
  fields.url = url.redact(req.url, client.provider.secret_query)
  return fields
end

--[[
Turn a transport outcome into the call's result: decoded JSON for 2xx (true
for an empty body), or an error value.
]]
function M.interpret(client, req, res, terr)
  if not res then
    local e = errors.new(terr.kind or "network", terr.message or tostring(terr),
      request_fields(client, req, { status = terr.status, sent = terr.sent, curl_code = terr.curl_code }))
    return nil, e
  end
  local status, headers, body = res.status, res.headers or {}, res.body or ""
  local ctype = (headers["content-type"] or ""):lower()
  local request_id = headers["x-request-id"] or headers["request-id"] or headers["x-amzn-requestid"]
  if status >= 200 and status < 300 then
    if body == "" or status == 204 then return true end
    if not (ctype:find("json", 1, true) or ctype == "") then
      return nil, errors.new("decode", string.format("expected JSON, got %s (%d bytes): %s",
        ctype, #body, preview(body)), request_fields(client, req, { status = status, request_id = request_id,
        body = body:sub(1, 4096), retryable = false }))
    end
    local value, why = json.decode(body)
    if value == nil then
      return nil, errors.new("decode", string.format("invalid JSON in response (%d bytes, %s): %s",
        #body, why, preview(body)), request_fields(client, req, { status = status, request_id = request_id,
        body = body:sub(1, 4096), retryable = false }))
    end
    return value
  end
  local decoded = ctype:find("json", 1, true) and json.decode(body) or nil
  local message, code = client.provider.error_message(decoded)
  if not message then
    if status >= 300 and status < 400 and headers.location then
      message = "redirect to " .. url.redact(headers.location) .. " not followed"
    elseif body ~= "" then
      message = string.format("HTTP %d (%s, %d bytes): %s", status, ctype ~= "" and ctype or "no content type",
        #body, preview(body))
    else
      message = "HTTP " .. status
    end
  end
  return nil, errors.new("http", message, request_fields(client, req, {
    status = status, code = code, request_id = request_id,
    body = decoded ~= nil and decoded or body:sub(1, 4096),
    retry_after = M.parse_retry_after(headers["retry-after"]),
  }))
end

--[[
Whether err may be retried, and why not when it may not. A request that is
not idempotent is retried only when it provably never reached the server.
]]
function M.retry_decision(req, err)
  local kind = err.kind
  if kind == "network" or kind == "timeout" then
    if req.idempotent then return true end
    if err.sent == false then return true end
    return false, "the request may have reached the server; retrying could duplicate it"
  end
  if kind == "http" and RETRY_STATUS[err.status] then
    if req.idempotent then return true end
    return false, "the request is not idempotent and the server may have acted on it"
  end
  return false
end

local Call = {}
Call.__index = Call

-- Start one attempt (hooks, then the transport); a redirect is not an attempt.
local function launch(call, redirect)
  local client, req = call.client, call.req
  if not redirect then call.attempts = call.attempts + 1 end
  call.started = runtime.now()
  observe.request(client, { method = req.method, url = url.redact(req.url, client.provider.secret_query),
                            headers = req.headers, body = req.body, attempt = call.attempts })
  call.pending = client.transport:start(req)
end

--- Wait for the call's result: the decoded value, or nil and an error.
function Call:await()
  if self.result ~= nil or self.err then return self.result, self.err end
  local client, req = self.client, self.req
  while true do
    local res, terr = self.pending:await()
    self.pending = nil
    observe.response(client, { method = req.method, url = url.redact(req.url, client.provider.secret_query),
                               status = res and res.status, headers = res and res.headers,
                               error = terr and tostring(terr), attempt = self.attempts,
                               elapsed = runtime.now() - self.started })
    local next_req = res and M.redirect_request(client, req, res, self.redirects)
    if next_req then
      self.redirects = self.redirects + 1
      self.req, req = next_req, next_req
      launch(self, true)
    else
      local value, err = M.interpret(client, req, res, terr)
      local done, result, final_err = self:settle(value, err)
      if done then
        if final_err then return nil, final_err end
        return result
      end
    end
  end
end

--[[
The request to send after redirect `res`, when the client follows redirects
and this one may be followed: GET and HEAD always, other methods only on 307
and 308 (which keep the method and body). Credentials (every header whose name
looks secret) are dropped when the target is another origin, and a target
that is neither https nor loopback http is not followed.
]]
function M.redirect_request(client, req, res, count)
  if not client.follow_redirects or not REDIRECT_STATUS[res.status] then return nil end
  local location = res.headers and res.headers.location
  if not location or count >= client.max_redirects then return nil end
  if not (req.method == "GET" or req.method == "HEAD" or res.status == 307 or res.status == 308) then
    return nil
  end
  local target = url.resolve(req.url, location)
  if not target or not url.check_base(target:match("^[^?#]*"), client.allow_insecure) then return nil end
  local next_req = {}
  for k, v in pairs(req) do next_req[k] = v end
  next_req.url = target
  if url.origin(target) ~= url.origin(req.url) then
    local kept = {}
    for _, line in ipairs(req.headers) do
      if not M.is_secret_header(line:match("^[^:]+")) then kept[#kept + 1] = line end
    end
    next_req.headers = kept
    next_req.cross_origin = true
  end
  return next_req
end

-- Decide what a finished attempt means: (true, value) or (true, nil, err)
-- when the call is over, false after a retry has been started.
function Call:settle(value, err)
  local client, req = self.client, self.req
  if value ~= nil then
    self.result = value
    return true, value
  end
  local may, why = M.retry_decision(req, err)
  err.attempts = self.attempts
  err.retryable = may
  if why then err.message = err.message .. " (not retried: " .. why .. ")" end
  local delay
  if may and self.attempts <= req.max_retries then
    delay = client.retry_base_delay * 2 ^ (self.attempts - 1)
    if delay > client.retry_max_delay then delay = client.retry_max_delay end
    delay = delay / 2 + runtime.random() * delay / 2 -- jitter: spread the herd
    if err.retry_after then
      if err.retry_after > client.max_retry_wait then
        err.message = string.format("%s (the server asked to wait %.0f s, more than max_retry_wait %.0f s)",
          err.message, err.retry_after, client.max_retry_wait)
        delay = nil
      elseif err.retry_after > delay then
        delay = err.retry_after
      end
    end
  end
  if not delay then
    self.err = err
    return true, nil, err
  end
  observe.retry(client, { method = req.method, url = url.redact(req.url, client.provider.secret_query) }, err, delay)
  client.transport:sleep(delay)
  if self.err then return true, nil, self.err end -- canceled while it slept
  launch(self)
  return false
end

--- Cancel the call if it is still in flight.
function Call:cancel()
  if self.pending then
    self.pending:cancel()
    self.pending = nil
  end
  if self.result == nil and not self.err then
    self.err = errors.new("canceled", "call canceled", request_fields(self.client, self.req))
  end
end

--- Start the call for `req` (a request from M.build); returns a Call.
function M.start(client, req)
  local call = setmetatable({ client = client, req = req, attempts = 0, redirects = 0 }, Call)
  launch(call)
  return call
end

--- A Call that has already failed (used for invalid arguments).
function M.failed(err)
  return setmetatable({ err = err }, Call)
end

-- Split a method's arguments into path values, params and options.
local function split_args(ep, ...)
  local n = #ep.path_names
  local path_values = {}
  for i = 1, n do path_values[ep.path_names[i]] = select(i, ...) end
  return path_values, (select(n + 1, ...)), (select(n + 2, ...))
end

--- Start the call `ep` with a method's arguments; returns a Call.
function M.start_endpoint(client, ep, ...)
  local path_values, params, opts = split_args(ep, ...)
  local req, err = M.build(client, ep, path_values, params, opts)
  if not req then return M.failed(err) end
  return M.start(client, req)
end

local function prepare_endpoint(name, ep)
  ep.name = name
  ep.params = ep.params or {}
  ep.path_names = {}
  for p in ep.path:gmatch("{([%w_]+)}") do
    assert(ep.params[p], name .. ": no type for path parameter " .. p)
    ep.path_names[#ep.path_names + 1] = p
  end
  if ep.fixed_query then
    local list = {}
    for k, v in pairs(ep.fixed_query) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    ep.fixed_query = list
  end
  return ep
end

-- A credential-like option: the given value, else the environment's; raises
-- when it is missing or could not be sent in a header (the value is never
-- shown: it may be a key).
local function credential(provider, opts, name, env_name)
  local v, from = opts[name], ""
  if v == nil and env_name then v, from = os.getenv(env_name), " (from " .. env_name .. ")" end
  if v == "" then v = nil end
  local where = "agentruns." .. provider.name .. ".new: "
  if v == nil then error(string.format("%s%s is required (or set %s)", where, name, env_name), 3) end
  if type(v) ~= "string" then error(string.format("%s%s must be a string, got %s", where, name, type(v)), 3) end
  if v:find("[%z\r\n]") then
    error(string.format("%s%s%s must not contain CR, LF or NUL", where, name, from), 3)
  end
  return v
end

-- Refuse an option `new` does not know, naming the nearest known ones.
local function check_options(provider, opts)
  local known = {}
  for k in pairs(M.client_options) do known[k] = true end
  if not provider.organization then known.organization_id = nil end
  for _, k in ipairs(provider.options or {}) do known[k] = true end
  local unknown = {}
  for k in pairs(opts) do
    if not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown == 0 then return end
  table.sort(unknown)
  local k = unknown[1]
  local hint = errors.did_you_mean(k, known)
  if k == "organization_id" and hint == "" then hint = " (" .. provider.name .. " has no organization)" end
  error(string.format("agentruns.%s.new: unknown option '%s'%s", provider.name, k, hint), 3)
end

-- Fields a client holds or may leave unset: looking one up is not a mistake.
local CLIENT_FIELDS = { provider = true }
for k in pairs(M.client_options) do CLIENT_FIELDS[k] = true end

--[[
The __index of a client: its methods; nil for the fields it may leave
unset (on_request, ...) and for names starting with "_" (inspectors probing for
metamethod-like fields); anything else is a mistake -- most often a method
name misspelt -- and raises naming the client and the nearest methods (or
all of them when none is near), instead of Lua's "attempt to call a nil
value".
]]
local function client_index(provider, methods)
  local fields = CLIENT_FIELDS
  if provider.options then
    fields = {}
    for k in pairs(CLIENT_FIELDS) do fields[k] = true end
    for _, k in ipairs(provider.options) do fields[k] = true end
  end
  return function(_, k)
    local m = methods[k]
    if m ~= nil or type(k) ~= "string" or fields[k] or k:sub(1, 1) == "_" then return m end
    local hint = errors.did_you_mean(k, methods)
    if hint == "" then
      local names = {}
      for name in pairs(methods) do names[#names + 1] = name end
      table.sort(names)
      hint = " (its methods: " .. table.concat(names, ", ") .. ")"
    end
    error(string.format("agentruns.%s client has no method '%s'%s", provider.name, k, hint), 2)
  end
end

--[[
Define a provider class. `provider` = { name, default_base_url, env = {...},
authenticate(client, headers, ep) -> extra query pairs, error_message(body)
-> message, code, endpoints = {...}, methods = {...} (hand-written ones),
options = { names of extra client options } }.
]]
function M.define(provider)
  local class = { provider = provider, endpoints = {} }
  local methods = {}
  class.methods = methods
  class.mt = { __index = client_index(provider, methods), __name = "agentruns." .. provider.name }
  class.mt.__tostring = function(c) return "agentruns." .. provider.name .. " client (" .. c.base_url .. ")" end

  local paginate = require "agentruns.paginate"
  local stream = require "agentruns.stream"
  for name, ep in pairs(provider.endpoints) do
    prepare_endpoint(name, ep)
    class.endpoints[name] = ep
    if ep.stream then
      methods[name] = function(self, ...) return stream.open(self, ep, ...) end
    else
      methods[name] = function(self, ...)
        return M.start_endpoint(self, ep, ...):await()
      end
    end
    if ep.each then
      methods[ep.each] = function(self, ...) return paginate.each(self, ep, ...) end
    end
  end
  for name, fn in pairs(provider.methods or {}) do methods[name] = fn end

  --- Create a client. See README for the options.
  function class.new(opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("agentruns." .. provider.name .. ".new: options must be a table", 2) end
    check_options(provider, opts) -- before the environment is read: a typo must not fall back to it
    local env = provider.env or {}
    local self = setmetatable({ provider = provider }, class.mt)
    self.api_key = credential(provider, opts, "api_key", env.api_key)
    if provider.organization then
      self.organization_id = credential(provider, opts, "organization_id", env.organization_id)
    end
    local base = opts.base_url
    if base == nil and env.base_url then base = os.getenv(env.base_url) end
    if base == "" then base = nil end
    base = base or provider.default_base_url
    local checked, why = url.check_base(base, opts.allow_insecure)
    if not checked then error(string.format("agentruns.%s.new: base_url %s", provider.name, why), 2) end
    self.base_url = provider.normalize_base and provider.normalize_base(checked) or checked
    for k, v in pairs(M.defaults) do
      local given = opts[k]
      if given ~= nil and (type(given) ~= "number" or not (given >= 0 and given < math.huge)) then
        error(string.format("agentruns.%s.new: %s must be a non-negative number", provider.name, k), 2)
      end
      self[k] = given or v
    end
    observe.setup(self, opts, "agentruns." .. provider.name .. ".new", 2)
    self.follow_redirects = opts.follow_redirects == true
    self.allow_insecure = opts.allow_insecure == true
    self.user_agent = opts.user_agent or ("agentruns/" .. require("agentruns.sse").version .. " (" .. _VERSION
      .. (jit and ("; " .. jit.version) or "") .. ")")
    if type(self.user_agent) ~= "string" or self.user_agent:find("[%z\r\n]") then
      error(string.format("agentruns.%s.new: user_agent must be a string without CR or LF", provider.name), 2)
    end
    self.transport = opts.transport or transports.new { session = opts.session }
    return self
  end

  return class
end

return M

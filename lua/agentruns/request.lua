--[[
Requests for endpoints: check the arguments, build the request, and turn
what the transport got back into the call's result or an error value.

An endpoint (a provider's table entry, see agentruns.client) is prepared once
by prepare_endpoint; build(client, ep, path_values, params, opts) then checks
every argument against it before anything is sent -- a bad one is an
invalid_argument error naming it -- and returns the request table the
transports take. interpret(client, req, res, terr) gives decoded JSON (true
for an empty body) or an error value with the API's own message, status,
code, request id and Retry-After.
]]
local errors = require "agentruns.errors"
local json = require "agentruns.json"
local retry = require "agentruns.retry"
local url = require "agentruns.url"

local M = {}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- The keys of `t`, sorted: what is sent and what is reported comes in one order.
local function sorted_keys(t)
  local names = {}
  for n in pairs(t) do names[#names + 1] = n end
  table.sort(names)
  return names
end

--- Fill in what the endpoint table leaves implied (its name, the path parameters in order).
function M.prepare_endpoint(name, ep)
  ep.name = name
  ep.params = ep.params or {}
  ep.path_names = {}
  ep.path_parts = url.split_path(ep.path)
  for p in ep.path:gmatch("{([%w_]+)}") do
    assert(ep.params[p], name .. ": no type for path parameter " .. p)
    ep.path_names[#ep.path_names + 1] = p
    if rawget(ep.params[p], "path_safe") then -- its values go into the path as they are
      ep.path_safe = ep.path_safe or {}
      ep.path_safe[p] = true
    end
  end
  if ep.fixed_query then
    local list = {}
    for k, v in pairs(ep.fixed_query) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    ep.fixed_query = list
  end
  return ep
end

--- Split a method's arguments into path values, params and options.
function M.split_args(ep, ...)
  local n = #ep.path_names
  local path_values = {}
  for i = 1, n do path_values[ep.path_names[i]] = select(i, ...) end
  return path_values, (select(n + 1, ...)), (select(n + 2, ...))
end

local function preview(body)
  local s = body:sub(1, 64):gsub("[%c]", " ")
  if #body > 64 then s = s .. "..." end
  return s
end

-- Validate `value` against `ty`; returns nil on success, else an error value
-- naming the argument, or the field inside it at fault (source.type).
local function check(name, ty, value)
  local ok, why, path = ty.check(value)
  if not ok then return errors.invalid_argument(name .. (path or ""), why) end
end

-- The sorted names of a map of types (an endpoint's query or body), made once per map:
-- endpoint tables do not change once prepared.
local type_names = setmetatable({}, { __mode = "k" })

local function names_of(types)
  local names = type_names[types]
  if not names then
    names = sorted_keys(types)
    type_names[types] = names
  end
  return names
end

-- Check a params table against a map of types: required ones, unknown keys.
local function check_fields(where, types, params)
  if params ~= nil and type(params) ~= "table" then
    return errors.invalid_argument(where, "must be a table, got " .. type(params))
  end
  local names = names_of(types)
  if params == nil then -- nothing given: only the required ones can be missing
    for i = 1, #names do
      local n = names[i]
      if types[n].required then return errors.invalid_argument(n, "is required") end
    end
    return
  end
  for k in pairs(params) do
    if type(k) ~= "string" or not types[k] then
      return errors.invalid_argument(tostring(k), "is not a parameter of this call (known: " ..
        (#names > 0 and table.concat(names, ", ") or "none") .. ")")
    end
  end
  for i = 1, #names do
    local n = names[i]
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
  -- every path value passed its type's check above
  local path, bad, why = url.fill_parts(ep.path_parts, path_values, ep.path_safe)
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
    for _, n in ipairs(sorted_keys(params)) do
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
  local headers = { ep.stream and "Accept: text/event-stream" or "Accept: application/json",
                    "User-Agent: " .. client.user_agent }
  if body then headers[#headers + 1] = "Content-Type: application/json" end
  local auth_query = client.provider.authenticate(client, headers, ep)
  if auth_query then
    for _, kv in ipairs(auth_query) do query[#query + 1] = kv end
  end
  if opts.headers then -- a per-call header replaces the client's own of the same name
    for _, n in ipairs(sorted_keys(opts.headers)) do
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
function M.fields(client, req, fields)
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
      M.fields(client, req, { status = terr.status, sent = terr.sent, curl_code = terr.curl_code }))
    return nil, e
  end
  local status, headers, body = res.status, res.headers or {}, res.body or ""
  local ctype = (headers["content-type"] or ""):lower()
  local request_id = headers["x-request-id"] or headers["request-id"] or headers["x-amzn-requestid"]
  if status >= 200 and status < 300 then
    if body == "" or status == 204 then return true end
    if not (ctype:find("json", 1, true) or ctype == "") then
      return nil, errors.new("decode", string.format("expected JSON, got %s (%d bytes): %s",
        ctype, #body, preview(body)), M.fields(client, req, { status = status, request_id = request_id,
        body = body:sub(1, 4096), retryable = false }))
    end
    local value, why = json.decode(body)
    if value == nil then
      return nil, errors.new("decode", string.format("invalid JSON in response (%d bytes, %s): %s",
        #body, why, preview(body)), M.fields(client, req, { status = status, request_id = request_id,
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
  return nil, errors.new("http", message, M.fields(client, req, {
    status = status, code = code, request_id = request_id,
    body = decoded ~= nil and decoded or body:sub(1, 4096),
    retry_after = retry.parse_retry_after(headers["retry-after"]),
  }))
end

return M

--[[
Provider classes: a provider's table of endpoints turned into a client class.

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
    doc = "...",                                -- what the reference says beyond the table
  }

The generated method takes the path parameters in the order the path names
them, then one table of query parameters or body fields, then a table of
per-call options (timeout, max_retries, headers). Arguments are checked
before anything is sent; a bad one returns nil, err (kind "invalid_argument",
err.argument naming it). Each call runs: build request (agentruns.request) ->
hooks -> transport -> status, decode, errors -> retry when safe
(agentruns.call, agentruns.retry).
]]
local call = require "agentruns.call"
local compat = require "agentruns.compat"
local errors = require "agentruns.errors"
local observe = require "agentruns.observe"
local paginate = require "agentruns.paginate"
local request = require "agentruns.request"
local stream = require "agentruns.stream"
local url = require "agentruns.url"
local transports = require "agentruns.transport"

local M = {}

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

  for name, ep in pairs(provider.endpoints) do
    request.prepare_endpoint(name, ep)
    class.endpoints[name] = ep
    if ep.stream then
      methods[name] = function(self, ...) return stream.open(self, ep, ...) end
    else
      methods[name] = function(self, ...)
        return call.start_endpoint(self, ep, ...):await()
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
      .. (compat.jit and ("; " .. compat.jit.version) or "") .. ")")
    if type(self.user_agent) ~= "string" or self.user_agent:find("[%z\r\n]") then
      error(string.format("agentruns.%s.new: user_agent must be a string without CR or LF", provider.name), 2)
    end
    self.transport = opts.transport or transports.new { session = opts.session }
    return self
  end

  return class
end

return M

--[[
Helpers shared by the provider specs (toolregistry, happyrobot, humm, wire).

  local support = require "spec.support.providers"
  local ctl = support.control(sb)     -- sb from spec.support.sandbox
  ctl.requests()                      -- what clients sent, oldest first (GET /_sandbox/requests)
  ctl.clear()                         -- DELETE /_sandbox/requests
  ctl.fixtures(), ctl.stats(), ctl.reset(), ctl.close()
  support.client(sb, "humm", opts)    -- a client of the sandbox with its keys, opts on top
  support.eventually(fn, seconds)     -- bounded polling
  support.test_api(name, endpoints)   -- a provider of spec/support/test_server.lua (x-api-key auth)
  it("refuses ...", support.refusal_test(case, function() return ctl end))  -- nothing sent

The control routes are read over a core session of their own and decoded with a private
lua-cjson, so what a spec checks never passes through the clients it checks.
]]
local cjson = require("cjson").new()
local curl = require "agentruns.curl"

local M = {}

local TIMEOUT = 10

-- Where each provider lives in the sandbox.
local BASE = { toolregistry = "/toolregistry", happyrobot = "/happyrobot/api/v1", humm = "/humm" }

--[[ A provider class for spec/support/test_server.lua's routes: `endpoints` as in
agentruns.client, an x-api-key header, error bodies { message = }. ]]
function M.test_api(name, endpoints)
  return require("agentruns.client").define {
    name = name,
    env = { api_key = name:upper() .. "_KEY" },
    default_base_url = "https://example.invalid",
    authenticate = function(c, headers) headers[#headers + 1] = "x-api-key: " .. c.api_key end,
    error_message = function(body)
      if type(body) == "table" then return body.message end
    end,
    endpoints = endpoints,
  }
end

--- A client of provider `name` for the sandbox `sb`, with its keys; `opts` override.
function M.client(sb, name, opts)
  local keys = sb.keys[name]
  local o = { api_key = keys.api_key, organization_id = keys.organization_id, base_url = sb.url .. BASE[name],
              timeout = TIMEOUT }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("agentruns")[name].new(o)
end

--- The sandbox's control routes, for the sandbox `sb`.
function M.control(sb)
  local session = curl.session()
  local ctl = {}

  -- One control request; raises unless it answers `expect`.
  local function call(method, path, expect, body)
    local t = session:request { url = sb.url .. path, method = method, timeout = TIMEOUT,
                                body = body and cjson.encode(body),
                                headers = body and { "Content-Type: application/json" } or nil }
    local res, err = t:wait()
    t:close()
    assert(res, err and tostring(err))
    assert(res.status == expect, method .. " " .. path .. " answered " .. res.status .. ": " .. res.body)
    if res.body == "" then return nil end
    return cjson.decode(res.body)
  end

  --- Every request recorded since the last clear, oldest first.
  function ctl.requests(query)
    return call("GET", "/_sandbox/requests" .. (query or ""), 200).requests
  end

  function ctl.clear()
    call("DELETE", "/_sandbox/requests", 204)
  end

  function ctl.fixtures()
    return call("GET", "/_sandbox/fixtures", 200)
  end

  --- {in_flight, max_in_flight, requests} (GET /_sandbox/stats).
  function ctl.stats()
    return call("GET", "/_sandbox/stats", 200)
  end

  --- Re-seed every API (created objects gone, ids as at start).
  function ctl.reset()
    call("POST", "/_sandbox/reset", 200)
  end

  --- Queue faults (POST /_sandbox/faults): one entry `{ path, method, fault, times }` or a list.
  function ctl.faults(entries)
    return call("POST", "/_sandbox/faults", 201, entries).queued
  end

  --- Start a live run (POST /_sandbox/<provider>/runs) whose status changes every `step` seconds.
  function ctl.live_run(provider, opts)
    return call("POST", "/_sandbox/" .. provider .. "/runs", 201, opts or {})
  end

  --- One step of a live run started with `manual = true`; returns its status after the step.
  function ctl.advance(provider, id)
    return call("POST", "/_sandbox/" .. provider .. "/runs/" .. id .. "/advance", 200, {}).status
  end

  function ctl.close()
    session:close()
  end

  return ctl
end

--- Polls `fn` every 20 ms until it returns a true value or `seconds` pass; returns that value or nil.
function M.eventually(fn, seconds)
  local deadline = curl.now() + (seconds or 5)
  repeat
    local v = fn()
    if v then return v end
    curl.sleep(0.02)
  until curl.now() > deadline
  return nil
end

--- The keys of table `t`, sorted.
function M.keys_of(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

--- A sorted copy of the array `list`.
function M.sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

--- `field` of every item of `list`.
function M.pluck(list, field)
  local out = {}
  for i, item in ipairs(list) do out[i] = item[field] end
  return out
end

--- How many times each value occurs in `list`, as { value = count }.
function M.counts(list)
  local out = {}
  for _, v in ipairs(list) do out[v] = (out[v] or 0) + 1 end
  return out
end

--- True when no value occurs twice in `list`.
function M.distinct(list)
  for _, n in pairs(M.counts(list)) do
    if n > 1 then return false end
  end
  return true
end

--[[
Every item an iterator (an `each_*` iterator or an event stream) gives, through its `next`
method: the items and the error that ended it, if any. Bounded by `limit` items (default 10000).
]]
function M.drain(it, limit)
  local items = {}
  for _ = 1, limit or 10000 do
    local item, err = it:next()
    if err then return items, err end
    if item == nil then return items end
    items[#items + 1] = item
  end
  error("the iterator did not end within " .. (limit or 10000) .. " items")
end

--- An HTTP error as specs compare it: { kind, status, message, code, retryable }.
function M.http_error(err)
  return { err.kind, err.status, err.message, err.code, err.retryable }
end

--[[
The body of a table-driven argument-error test. `case` is { description, call, argument,
message }: the call must return nil and an invalid_argument error naming `argument` with exactly
`message`, and the sandbox (`control()` gives the spec's control object when the test runs) must
have recorded no request.
]]
function M.refusal_test(case, control)
  local check = require "luassert"
  return function()
    local res, err = case[2]()
    check.is_nil(res)
    check.same({ "invalid_argument", case[3], case[4], false },
               { err.kind, err.argument, err.message, err.retryable })
    check.equal("invalid_argument: " .. case[4], tostring(err))
    check.same({}, control().requests())
  end
end

return M

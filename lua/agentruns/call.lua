--[[
A call: one request's attempts, redirects and retries, over a transport.

  local c = call.start(client, req)    -- the first attempt leaves at once
  local value, err = c:await()         -- the result, after redirects and retries
  c:cancel()

Each attempt fires the on_request/on_response hooks and the log
(agentruns.observe); a failed one is retried by agentruns.retry's rule, after
its backoff or the server's Retry-After. A redirect is not an attempt.
]]
local errors = require "agentruns.errors"
local observe = require "agentruns.observe"
local request = require "agentruns.request"
local retry = require "agentruns.retry"
local runtime = require "agentruns.runtime"
local url = require "agentruns.url"

local M = {}

local REDIRECT_STATUS = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local Call = {}
Call.__index = Call

-- Start one attempt (hooks, then the transport); a redirect is not an attempt.
local function launch(call, redirect)
  local client, req = call.client, call.req
  if not redirect then call.attempts = call.attempts + 1 end
  call.started = runtime.now()
  if observe.watched(client, "on_request") then -- the redacted URL only when someone sees it
    observe.request(client, { method = req.method, url = url.redact(req.url, client.provider.secret_query),
                              headers = req.headers, body = req.body, attempt = call.attempts })
  end
  call.pending = client.transport:start(req)
end

--- Wait for the call's result: the decoded value, or nil and an error.
function Call:await()
  if self.result ~= nil or self.err then return self.result, self.err end
  local client, req = self.client, self.req
  while true do
    local res, terr = self.pending:await()
    self.pending = nil
    if observe.watched(client, "on_response") then
      observe.response(client, { method = req.method, url = url.redact(req.url, client.provider.secret_query),
                                 status = res and res.status, headers = res and res.headers,
                                 error = terr and tostring(terr), attempt = self.attempts,
                                 elapsed = runtime.now() - self.started })
    end
    local next_req = res and M.redirect_request(client, req, res, self.redirects)
    if next_req then
      self.redirects = self.redirects + 1
      self.req, req = next_req, next_req
      launch(self, true)
    else
      local value, err = request.interpret(client, req, res, terr)
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
      if not observe.is_secret_header(line:match("^[^:]+")) then kept[#kept + 1] = line end
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
  local may, why = retry.decision(req, err)
  err.attempts = self.attempts
  err.retryable = may
  if why then err.message = err.message .. " (not retried: " .. why .. ")" end
  local delay
  if may and self.attempts <= req.max_retries then
    delay = retry.backoff(self.attempts, client.retry_base_delay, client.retry_max_delay)
    if retry.too_long(err, client.max_retry_wait) then
      delay = nil
    elseif err.retry_after and err.retry_after > delay then
      delay = err.retry_after
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
    self.err = errors.new("canceled", "call canceled", request.fields(self.client, self.req))
  end
end

--- Start the call for `req` (a request from request.build); returns a Call.
function M.start(client, req)
  local call = setmetatable({ client = client, req = req, attempts = 0, redirects = 0 }, Call)
  launch(call)
  return call
end

--- A Call that has already failed (used for invalid arguments).
function M.failed(err)
  return setmetatable({ err = err }, Call)
end

--- Start the call `ep` with a method's arguments; returns a Call.
function M.start_endpoint(client, ep, ...)
  local path_values, params, opts = request.split_args(ep, ...)
  local req, err = request.build(client, ep, path_values, params, opts)
  if not req then return M.failed(err) end
  return M.start(client, req)
end

return M

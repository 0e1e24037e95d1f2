--[[
The one retry rule, for calls and stream reconnects alike.

  retry.decision(req, err)            -> may, why_not: may a failed attempt be tried again
  retry.backoff(attempt, base, max)   -> seconds: doubling from base, capped, with jitter
  retry.too_long(err, max_wait)       -> true when the server's Retry-After is longer than
                                         max_wait (err.message then says so)
  retry.parse_retry_after(value)      -> seconds, from delta seconds or an HTTP date

Connection failures, timeouts, 408, 429 and 5xx may be retried. A request
that is not idempotent only when it provably never reached the server (it
was never sent), so that retrying cannot make the server act twice.
]]
local runtime = require "agentruns.runtime"

local M = {}

local RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

--[[
Whether err may be retried, and why not when it may not. A request that is
not idempotent is retried only when it provably never reached the server.
]]
function M.decision(req, err)
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

--- Seconds to wait before try `attempt` + 1: base * 2^(attempt-1), at most max, half of it jittered.
function M.backoff(attempt, base, max)
  local delay = base * 2 ^ (attempt - 1)
  if delay > max then delay = max end
  return delay / 2 + runtime.random() * delay / 2 -- jitter: spread the herd
end

--- True when err asks for a wait longer than max_wait; err.message then names the limit.
function M.too_long(err, max_wait)
  if not err.retry_after or err.retry_after <= max_wait then return false end
  err.message = string.format("%s (the server asked to wait %.0f s, more than max_retry_wait %.0f s)",
    err.message, err.retry_after, max_wait)
  return true
end

-- Retry-After: delta seconds or an HTTP date (RFC 9110 10.2.3). Returns seconds or nil.
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

return M

--[[
Error values.

Every runtime failure of the library is returned as `nil, err`, where `err` is
a table with these fields (absent when they do not apply):

  kind        "http" | "network" | "timeout" | "decode" | "invalid_argument"
              | "canceled" | "limit"
  message     what went wrong, one line
  status      HTTP status
  code        the API's own error code, when it sends one
  request_id  the API's request id header, when it sends one
  method, url the request (the URL has credentials removed)
  body        the response body (decoded JSON when it was JSON), for http errors
  retryable   true when trying again may succeed and cannot duplicate anything
  attempts    how many tries were made
  argument    for invalid_argument: the name of the offending argument

`tostring(err)` gives one readable line. The C modules' own failures (from
agentruns.sse or agentruns.curl directly) carry only kind and message and print the message;
the request layer turns them into errors of this module.
]]
local sse = require "agentruns.sse"

local mt = { __name = "agentruns.Error" }
local M = { metatable = mt }

local function describe(err)
  local where = {}
  if err.method and err.url then where[#where + 1] = err.method .. " " .. err.url end
  if err.status then where[#where + 1] = "status " .. err.status end
  if err.request_id then where[#where + 1] = "request id " .. err.request_id end
  if err.attempts and err.attempts > 1 then where[#where + 1] = err.attempts .. " attempts" end
  local line = (err.kind or "error") .. ": " .. tostring(err.message or "unknown error")
  if #where > 0 then line = line .. " (" .. table.concat(where, ", ") .. ")" end
  return line
end

mt.__tostring = describe

--- Make an error value of `kind` with `message` and the given extra fields.
function M.new(kind, message, fields)
  local err = {}
  if fields then for k, v in pairs(fields) do err[k] = v end end
  err.kind = kind
  err.message = message
  return setmetatable(err, mt)
end

--- An invalid_argument error naming `argument`.
function M.invalid_argument(argument, message)
  return M.new("invalid_argument", argument .. ": " .. message, { argument = argument, retryable = false })
end

--- True when `v` is an error value of this library (or of its C core).
function M.is_error(v)
  local m = type(v) == "table" and getmetatable(v)
  return m == mt or m == sse.error_metatable
end

return M

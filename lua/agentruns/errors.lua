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

Raising an error value (a `for` loop over an iterator or a stream, or
`agentruns.assert`) goes through `M.raise`, because interpreters differ in
what an uncaught error object prints:

  Lua 5.2+, LuaJIT  `error(err)` and `assert(nil, err)` raise the table, and
                    the interpreter prints it through __tostring: the table
                    itself is raised, and pcall gives it back.
  PUC Lua 5.1       `assert` refuses a table message ("bad argument #2 to
                    'assert' (string expected, got table)") and lua.c prints
                    "(error object is not a string)" for one. So the one-line
                    message is raised as a string, and `M.from(caught)` gives
                    the table back (the last 32 raised are remembered).

Which of the two applies is found out when this module loads, by trying
whether `assert` raises a table as it is (`M.raises_objects`). Code that
catches errors and wants their fields writes, on every interpreter:

  local ok, caught = pcall(fn)
  local err = agentruns.errors.from(caught)   -- the error table, or nil
]]
local sse = require "agentruns.sse"

local mt = { __name = "agentruns.Error" }
local M = { metatable = mt }

-- Does `assert` raise a table message as it is (and lua.c print it)?
do
  local probe = {}
  local _, raised = pcall(assert, false, probe)
  M.raises_objects = raised == probe
end

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

--- True when `v` is an error value of this library (or of its C modules).
function M.is_error(v)
  local m = type(v) == "table" and getmetatable(v)
  return m == mt or m == sse.error_metatable
end

-- Lua 5.1: the messages raised lately, message -> error value, oldest first
-- in `raised_order`. Strings are never collected from weak tables, so the
-- memory is bounded by count instead.
local RAISED_KEPT = 32
local raised, raised_order = {}, {}

local function remember(message, err)
  if raised[message] == nil then
    raised_order[#raised_order + 1] = message
    if #raised_order > RAISED_KEPT then raised[table.remove(raised_order, 1)] = nil end
  end
  raised[message] = err
end

--[[
Raise `err` so that, uncaught, it prints its one-line message on this
interpreter: the value itself where error objects print (Lua 5.2+, LuaJIT),
else (Lua 5.1) `tostring(err)` as a string that `M.from` maps back to `err`.
Strings and numbers are raised as they are. No position is added.
]]
function M.raise(err)
  local t = type(err)
  if M.raises_objects or t == "string" or t == "number" or err == nil then error(err, 0) end
  local message = tostring(err)
  remember(message, err)
  error(message, 0)
end

--[[
Make `class` (with :next() -> value | nil | nil, err, and :close()) work as a
generic for: calling it gives the next value and raises an error through
M.raise (so it prints its line even on Lua 5.1), and leaving a Lua 5.4 for
loop, or collection, closes it.
]]
function M.iterable(class)
  class.__call = function(self)
    local v, err = self:next()
    if err then M.raise(err) end
    return v
  end
  class.__close = class.close
  class.__gc = class.close
  return class
end

--- The error value behind `caught` (what pcall gave back): `caught` itself
--- when it is an error value, the value `M.raise` raised as that string on
--- Lua 5.1, else nil.
function M.from(caught)
  if M.is_error(caught) then return caught end
  if type(caught) == "string" then return raised[caught] end
  return nil
end

--[[
Like `assert`, on every interpreter: returns all its arguments when `v` is
true, else raises `message` (default "assertion failed!") through M.raise,
so an error value prints its one line even on Lua 5.1:

  local run = agentruns.assert(tr:get_run(id))
]]
function M.assert(v, message, ...)
  if v then return v, message, ... end
  if message == nil then message = "assertion failed!" end
  return M.raise(message)
end

-- Edit distance between a and b (optimal string alignment: an adjacent
-- transposition counts as one edit, so "api_kye" is one from "api_key").
local function distance(a, b)
  local la, lb = #a, #b
  local prev2, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local row = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local d = math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, prev2[j - 2] + 1)
      end
      row[j] = d
    end
    prev2, prev = prev, row
  end
  return prev[lb]
end
M.distance = distance

--[[
The names among `candidates` (an array, or a set { name = true }) nearest to
`name`, for a "did you mean" hint: those at the smallest edit distance (case
ignored) when that is at most a third of the name's length (at least 1),
sorted, at most three. An empty array when none is near.
]]
function M.suggest(name, candidates)
  if type(name) ~= "string" then return {} end
  local list = {}
  if #candidates > 0 then
    for _, c in ipairs(candidates) do list[#list + 1] = c end
  else
    for c in pairs(candidates) do
      if type(c) == "string" then list[#list + 1] = c end
    end
  end
  local lname = name:lower()
  local limit = math.max(1, math.floor(#name / 3))
  local best, near = limit + 1, {}
  for _, c in ipairs(list) do
    local d = distance(lname, c:lower())
    if d < best then
      best, near = d, { c }
    elseif d == best then
      near[#near + 1] = c
    end
  end
  table.sort(near)
  while #near > 3 do near[#near] = nil end
  return near
end

--- " (did you mean 'a'?)" or " (did you mean 'a' or 'b'?)" for M.suggest's
--- names, or "" when there are none.
function M.did_you_mean(name, candidates)
  local near = M.suggest(name, candidates)
  if #near == 0 then return "" end
  for i, n in ipairs(near) do near[i] = "'" .. n .. "'" end
  local last = table.remove(near)
  local head = #near > 0 and (table.concat(near, ", ") .. " or ") or ""
  return " (did you mean " .. head .. last .. "?)"
end

return M

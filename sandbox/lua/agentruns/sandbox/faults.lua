-- Fault injection: parsing fault specs and deciding which faults apply to a request.
--
-- A spec is a comma-separated list of faults, each `name[=value][;param=value...]`, e.g.
-- `status=503;times=2` or `delay=0.5,truncated-json`. Faults reach a request in two ways:
--   * the `x-sandbox-fault` request header. A fault with `times=N` applies to the first N
--     requests carrying the same `x-sandbox-fault-id` (or, without that header, the same method,
--     path and spec), then stops applying; a fault without `times` applies every time.
--   * a queue filled through `POST /_sandbox/faults`: each entry `{path, method, fault, times}`
--     applies to the next `times` requests matching it (path exact, or a prefix when it ends in
--     `*`; method any when absent). The first matching entry is used and consumed.
-- `faults.plan` merges the faults into one table the exchange consults while answering.
local faults = {}

-- name -> kind of value: "none", "status", "number" (>= 0), "integer" (>= 0).
local KINDS = {
  ["status"] = "status",
  ["delay"] = "number",
  ["drop"] = "none",
  ["drop-after-body"] = "none",
  ["drop-mid-body"] = "none",
  ["drop-stream-after"] = "integer",
  ["truncated-json"] = "none",
  ["invalid-json"] = "none",
  ["html-error"] = "none",
  ["wrong-content-type"] = "none",
  ["oversized-body"] = "integer",
  ["slow-stream"] = "number",
  ["keepalive-only"] = "none",
}

local PARAMS = { ["retry-after"] = "number", ["times"] = "integer" }

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function check_value(kind, value, what)
  if kind == "none" then
    if value ~= nil then return nil, what .. " takes no value" end
    return true
  end
  local n = tonumber(value or "")
  if not n or n < 0 or n ~= n or n == math.huge then
    return nil, what .. " needs a number >= 0"
  end
  if (kind == "integer" or kind == "status") and n ~= math.floor(n) then
    return nil, what .. " needs a whole number"
  end
  if kind == "status" and (n < 100 or n > 599) then
    return nil, what .. " needs an HTTP status code (100-599)"
  end
  return n
end

-- Parses a spec into `{ {name=, value=, params={...}}, ... }`, or returns nil and a message.
function faults.parse(spec)
  if type(spec) ~= "string" or trim(spec) == "" then
    return nil, "empty fault spec"
  end
  local list = {}
  for item in (spec .. ","):gmatch("([^,]*),") do
    item = trim(item)
    if item ~= "" then
      local parts = {}
      for part in (item .. ";"):gmatch("([^;]*);") do parts[#parts + 1] = trim(part) end
      local name, value = parts[1]:match("^([%w%-]+)=(.*)$")
      name = name or parts[1]
      local kind = KINDS[name]
      if not kind then
        return nil, "unknown fault '" .. name .. "'"
      end
      local checked, err = check_value(kind, value, "fault '" .. name .. "'")
      if not checked then return nil, err end
      local fault = { name = name, value = kind ~= "none" and checked or true, params = {} }
      for i = 2, #parts do
        local key, v = parts[i]:match("^([%w%-]+)=(.*)$")
        if not key or not PARAMS[key] then
          return nil, "unknown parameter '" .. parts[i] .. "' of fault '" .. name .. "'"
        end
        if key == "retry-after" and name ~= "status" then
          return nil, "parameter 'retry-after' belongs to fault 'status'"
        end
        local n, perr = check_value(PARAMS[key], v, "parameter '" .. key .. "'")
        if not n then return nil, perr end
        fault.params[key] = n
      end
      list[#list + 1] = fault
    end
  end
  if #list == 0 then
    return nil, "empty fault spec"
  end
  return list
end

local methods = {}
local mt = { __index = methods, __name = "agentruns.sandbox.Faults" }

-- A fault state: header counters and the control endpoint's queue.
function faults.new()
  return setmetatable({ counters = {}, queue = {} }, mt)
end

function methods:reset()
  self.counters, self.queue = {}, {}
end

-- Queues an entry from the control endpoint; returns the stored entry or nil and a message.
function methods:enqueue(entry)
  if type(entry) ~= "table" then return nil, "a fault entry must be an object" end
  if type(entry.path) ~= "string" or entry.path:sub(1, 1) ~= "/" then
    return nil, "path must be a string starting with '/'"
  end
  if entry.method ~= nil and type(entry.method) ~= "string" then
    return nil, "method must be a string"
  end
  local times = entry.times
  if times == nil then times = 1 end
  if type(times) ~= "number" or times < 1 or times ~= math.floor(times) then
    return nil, "times must be a whole number >= 1"
  end
  local list, err = faults.parse(entry.fault)
  if not list then return nil, err end
  local stored = {
    path = entry.path, method = entry.method and entry.method:upper() or nil,
    fault = entry.fault, times = times, remaining = times, list = list,
  }
  self.queue[#self.queue + 1] = stored
  return stored
end

local function path_matches(pattern, path)
  if pattern:sub(-1) == "*" then
    return path:sub(1, #pattern - 1) == pattern:sub(1, -2)
  end
  return path == pattern
end

-- Takes the faults queued for this request, consuming one use of the first matching entry.
function methods:take_queued(method, path)
  for i, entry in ipairs(self.queue) do
    if (entry.method == nil or entry.method == method) and path_matches(entry.path, path) then
      entry.remaining = entry.remaining - 1
      if entry.remaining <= 0 then table.remove(self.queue, i) end
      return entry.list
    end
  end
  return nil
end

-- Filters header faults through their `times` counters.
function methods:count_header(list, key)
  local active = {}
  for i, fault in ipairs(list) do
    local times = fault.params.times
    if times == nil then
      active[#active + 1] = fault
    else
      local counter = key .. "#" .. i
      local used = self.counters[counter] or 0
      if used < times then
        self.counters[counter] = used + 1
        active[#active + 1] = fault
      end
    end
  end
  return active
end

-- Merges fault lists into one plan: `{ status = {code=, retry_after=}, delay = s, drop = true,
-- drop_after_body = true, ... }` (names with "-" become "_").
function faults.plan(...)
  local plan = {}
  for i = 1, select("#", ...) do
    local list = select(i, ...)
    for _, fault in ipairs(list or {}) do
      local key = fault.name:gsub("%-", "_")
      if fault.name == "status" then
        plan.status = { code = fault.value, retry_after = fault.params["retry-after"] }
      else
        plan[key] = fault.value
      end
    end
  end
  return plan
end

return faults

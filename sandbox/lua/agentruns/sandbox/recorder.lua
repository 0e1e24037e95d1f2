-- Request recording and concurrency statistics.
--
-- The recorder keeps the last `limit` requests (method, path, raw query, lower-cased headers and
-- body) in a ring, so specs can prove exactly what a client sent, and counts requests in flight
-- so concurrency specs can prove that requests overlapped (`max_in_flight`).
local json = require "agentruns.sandbox.json"

local recorder = {}

local methods = {}
local mt = { __index = methods, __name = "agentruns.sandbox.Recorder" }

-- Bodies longer than this are recorded cut, with `body_truncated = true`.
local BODY_LIMIT = 65536

function recorder.new(limit)
  return setmetatable({
    limit = limit or 1000, entries = {}, first = 1, count = 0, sequence = 0,
    in_flight = 0, max_in_flight = 0, requests = 0,
  }, mt)
end

-- Records one request; `headers` is a lua-http headers object.
function methods:record(method, path, query, headers, body, time)
  self.sequence = self.sequence + 1
  local map, list = {}, json.array()
  for name, value in headers:each() do
    if name:sub(1, 1) ~= ":" then
      name = name:lower()
      list[#list + 1] = json.array { name, value }
      map[name] = map[name] and (map[name] .. ", " .. value) or value
    end
  end
  local entry = {
    sequence = self.sequence, time = time, method = method, path = path, query = query or "",
    headers = map, raw_headers = list, body = body or "",
  }
  if #entry.body > BODY_LIMIT then
    entry.body, entry.body_truncated = entry.body:sub(1, BODY_LIMIT), true
  end
  local index = self.first + self.count
  self.entries[index] = entry
  if self.count < self.limit then
    self.count = self.count + 1
  else
    self.entries[self.first] = nil
    self.first = self.first + 1
  end
  return entry
end

-- The recorded requests, oldest first; only the last `n` when given.
function methods:list(n)
  local out = json.array()
  local start = self.first
  if n and n < self.count then start = self.first + self.count - n end
  for i = start, self.first + self.count - 1 do
    out[#out + 1] = self.entries[i]
  end
  return out
end

function methods:clear()
  self.entries, self.first, self.count = {}, 1, 0
end

function methods:enter()
  self.requests = self.requests + 1
  self.in_flight = self.in_flight + 1
  if self.in_flight > self.max_in_flight then self.max_in_flight = self.in_flight end
end

function methods:leave()
  self.in_flight = self.in_flight - 1
end

function methods:stats()
  return { in_flight = self.in_flight, max_in_flight = self.max_in_flight, requests = self.requests }
end

-- Resets the counters; requests still in flight stay counted.
function methods:reset_stats()
  self.requests, self.max_in_flight = 0, self.in_flight
end

return recorder

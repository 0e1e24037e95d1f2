-- Seeded, deterministic data generation shared by the three emulated APIs.
--
-- A generator is a Park-Miller "minimal standard" linear congruential generator (multiplier
-- 48271, modulus 2^31 - 1). Every intermediate value stays below 2^47, so the arithmetic is exact
-- in doubles (Lua 5.1, LuaJIT) and in integers (Lua 5.4): the same seed yields the same sequence
-- on every interpreter. Each provider draws from its own generator, named by a namespace, so
-- adding data to one provider never shifts the ids of another.
--
-- The module also holds the time helpers (ISO-8601 formatting and parsing in UTC, without the
-- host's time zone) and the UUID helpers the providers share.
local data = {}

local MODULUS = 2147483647
local MULTIPLIER = 48271

-- The seeded data's "now": 2025-11-06T12:00:00Z. Seeded timestamps lie before it.
data.EPOCH = 1762430400

local generator_methods = {}
local generator_mt = { __index = generator_methods, __name = "agentruns.sandbox.Generator" }

-- Hashes a string to a valid generator state (1 .. MODULUS - 1).
local function hash(s)
  local h = 7
  for i = 1, #s do
    h = (h * 31 + s:byte(i)) % MODULUS
  end
  if h == 0 then h = 1 end
  return h
end

-- Returns a generator for `seed` (string or number) and `namespace`.
function data.generator(seed, namespace)
  local self = setmetatable({ state = hash(tostring(seed) .. "/" .. tostring(namespace)) }, generator_mt)
  -- Stir a few times so that nearby seeds diverge at once.
  for _ = 1, 8 do self:next() end
  return self
end

-- Advances and returns the raw state (1 .. MODULUS - 1).
function generator_methods:next()
  self.state = (self.state * MULTIPLIER) % MODULUS
  return self.state
end

-- An integer in lo .. hi (inclusive).
function generator_methods:int(lo, hi)
  return lo + self:next() % (hi - lo + 1)
end

-- True with probability `p` (0 .. 1), decided on a 1/1000 grid.
function generator_methods:chance(p)
  return self:int(0, 999) < p * 1000
end

-- One element of the array `list`.
function generator_methods:pick(list)
  return list[self:int(1, #list)]
end

-- A pick from `{ {value, weight}, ... }` proportional to the integer weights.
function generator_methods:weighted(choices)
  local total = 0
  for _, c in ipairs(choices) do total = total + c[2] end
  local r = self:int(1, total)
  for _, c in ipairs(choices) do
    r = r - c[2]
    if r <= 0 then return c[1] end
  end
  return choices[#choices][1]
end

-- `n` lower-case hexadecimal digits.
function generator_methods:hex(n)
  local out = {}
  for i = 1, n do
    out[i] = string.format("%x", self:next() % 16)
  end
  return table.concat(out)
end

-- A UUID in version 4 shape (version nibble 4, variant bits 10).
function generator_methods:uuid()
  local g = {}
  for i = 1, 8 do g[i] = self:next() % 65536 end
  g[4] = 16384 + g[4] % 4096
  g[5] = 32768 + g[5] % 16384
  return string.format("%04x%04x-%04x-%04x-%04x-%04x%04x%04x", g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8])
end

-- Shuffles the array `list` in place (Fisher-Yates) and returns it.
function generator_methods:shuffle(list)
  for i = #list, 2, -1 do
    local j = self:int(1, i)
    list[i], list[j] = list[j], list[i]
  end
  return list
end

local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- True when `s` is a UUID (any version, either case).
function data.is_uuid(s)
  return type(s) == "string" and s:match(UUID_PATTERN) ~= nil
end

-- Formats epoch seconds (fractions kept to the millisecond) as `2025-11-06T12:00:00.000Z`.
function data.iso_ms(t)
  local whole = math.floor(t)
  local ms = math.floor((t - whole) * 1000 + 0.5)
  if ms >= 1000 then whole, ms = whole + 1, ms - 1000 end
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", ms)
end

-- Epoch seconds as whole epoch milliseconds (exact comparisons at the wire's precision).
function data.ms(t)
  return math.floor(t * 1000 + 0.5)
end

-- Formats epoch seconds as `2025-11-06T12:00:00Z` (whole seconds, Humm style).
function data.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

-- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Parses an ISO-8601 date or date-time (`2025-11-06`, `2025-11-06T12:00:00.5Z`,
-- `2025-11-06T12:00:00+02:00`; no zone means UTC) into epoch seconds, or nil.
function data.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return nil end
  local h, mi, sec, frac, zone = 0, 0, 0, "", ""
  if rest ~= "" then
    h, mi, sec, frac, zone = rest:match("^[Tt ](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
    if not h then return nil end
    h, mi, sec = tonumber(h), tonumber(mi), tonumber(sec)
    if h > 23 or mi > 59 or sec > 60 then return nil end
    if frac == "." then return nil end
  end
  local offset = 0
  if zone ~= "" and zone ~= "Z" and zone ~= "z" then
    local sign, zh, zm = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(zh) * 60 + tonumber(zm)) * 60
    if sign == "-" then offset = -offset end
  end
  local t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
  if frac ~= "" then t = t + tonumber("0" .. frac) end
  return t
end

-- Deep copy of plain data (tables keep their metatables, so JSON array marks survive).
function data.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = data.copy(x) end
  return setmetatable(out, getmetatable(v))
end

return data

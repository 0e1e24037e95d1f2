--[[
Parameter types, as used in the providers' endpoint tables.

A type is a table with `check(value) -> true | nil, reason [, path]`, for
query parameters `to_query(value) -> string | array of strings`, and, when
a value is sent in a JSON body as something else than itself, `to_json(value)`.
The reasons are what users read after the argument's name ("limit: must be
an integer from 1 to 100, got 0"), so they say what is expected and what
came. `path` is said when the fault lies inside the value (".type" for
source.type, "[2]" for an item): the argument named is then "source.type".
]]
local json = require "agentruns.json"

local M = {}

local function show(v)
  if type(v) == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return string.format("%q", v)
  end
  if json.is_null(v) then return "null" end
  return tostring(v)
end

local function is_integer(v)
  return type(v) == "number" and v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53
end

local function define(t)
  t.to_query = t.to_query or tostring
  return t
end

--- A string of at most `max` bytes (nil: any), at least `min` (default 0).
function M.string_len(min, max)
  local doc = "string"
  if max then doc = doc .. " of " .. (min and min > 0 and (min .. " to ") or "at most ") .. max .. " bytes"
  elseif min == 1 then doc = "non-empty string"
  elseif min and min > 0 then doc = doc .. " of at least " .. min .. " bytes" end
  return define {
    name = "string", doc = doc, lua_type = "string",
    check = function(v)
      if type(v) ~= "string" then return nil, "must be a string, got " .. type(v) end
      if #v < (min or 0) then return nil, "must not be shorter than " .. min .. " bytes" end
      if max and #v > max then return nil, "must not be longer than " .. max .. " bytes" end
      return true
    end,
  }
end

M.string = M.string_len()

M.uuid = define {
  name = "uuid", doc = "UUID string", lua_type = "string",
  path_safe = true, -- what check accepts is hex digits and '-': it goes into a path as it is
  check = function(v)
    if type(v) ~= "string" then return nil, "must be a UUID string, got " .. type(v) end
    if not v:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") then
      return nil, "must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got " .. show(v)
    end
    return true
  end,
}

M.boolean = define {
  name = "boolean", doc = "boolean", lua_type = "boolean",
  check = function(v)
    if type(v) ~= "boolean" then return nil, "must be a boolean, got " .. type(v) end
    return true
  end,
}

--- An integer, optionally bounded (either bound may be nil).
function M.integer(min, max)
  local range
  if min and max then range = " from " .. min .. " to " .. max
  elseif min then range = " of at least " .. min
  elseif max then range = " of at most " .. max
  else range = "" end
  return define {
    name = "integer", doc = "integer" .. range, lua_type = "integer",
    check = function(v)
      if not is_integer(v) or (min and v < min) or (max and v > max) then
        return nil, "must be an integer" .. range .. ", got " .. show(v)
      end
      return true
    end,
    to_query = function(v) return string.format("%d", v) end,
  }
end

--- A finite number, optionally bounded below.
function M.number(min)
  return define {
    name = "number", doc = "number" .. (min and (" of at least " .. min) or ""), lua_type = "number",
    check = function(v)
      if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge or (min and v < min) then
        return nil, "must be a number" .. (min and (" of at least " .. min) or "") .. ", got " .. show(v)
      end
      return true
    end,
    to_query = function(v)
      if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return string.format("%d", v) end
      local s = string.format("%.14g", v)
      if tonumber(s) ~= v then s = string.format("%.17g", v) end
      return s
    end,
  }
end

--- One of the listed strings.
function M.enum(values)
  local set = {}
  for _, v in ipairs(values) do set[v] = true end
  local list = table.concat(values, ", ")
  local quoted = {}
  for i, v in ipairs(values) do quoted[i] = string.format("%q", v) end
  return define {
    name = "enum", doc = "one of " .. list, lua_type = table.concat(quoted, "|"),
    values = values,
    check = function(v)
      if not set[v] then return nil, "must be one of " .. list .. ", got " .. show(v) end
      return true
    end,
  }
end

-- The latest time an ISO-8601 date-time of four-digit years can say: 9999-12-31T23:59:59Z.
local MAX_TIME = 253402300799

--- Seconds since the epoch (as os.time() gives them) as an ISO-8601 UTC date-time.
function M.iso8601_utc(t)
  local floor = math.floor
  local days = floor(t / 86400)
  local secs = t - days * 86400
  -- the civil date of a day number (days since 1970-01-01), in 400-year eras
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local day = doy - floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02dZ", year, month, day,
    floor(secs / 3600), floor(secs % 3600 / 60), floor(secs % 60))
end

local function time_of(v)
  return type(v) == "number" and is_integer(v) and v >= 0 and v <= MAX_TIME
end

--[[
A date-time: an ISO-8601 string ("2025-11-03T09:00:04Z", offsets and
fractions allowed), or seconds since the epoch as os.time() gives them (an
integer from 0 to 253402300799), sent as the ISO-8601 UTC string.
]]
M.datetime = define {
  name = "datetime", doc = "ISO-8601 date-time string, or seconds since the epoch (os.time())",
  lua_type = "string|integer",
  check = function(v)
    if time_of(v) then return true end
    local rest = type(v) == "string" and v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d(.*)$")
    if rest then rest = rest:gsub("^%.%d+", "") end
    if not (rest == "" or rest == "Z" or (rest and rest:match("^[+-]%d%d:?%d%d$"))) then
      return nil, "must be an ISO-8601 date-time like 2025-11-03T09:00:04Z, or os.time() seconds " ..
        "(an integer from 0 to " .. MAX_TIME .. "), got " .. show(v)
    end
    return true
  end,
  to_query = function(v)
    if type(v) == "number" then return M.iso8601_utc(v) end
    return v
  end,
}
M.datetime.to_json = M.datetime.to_query

--- A JSON object (a Lua table that is not a sequence).
M.object = define {
  name = "object", doc = "table (a JSON object)", lua_type = "table",
  check = function(v)
    if type(v) ~= "table" then return nil, "must be a table (a JSON object), got " .. type(v) end
    if getmetatable(v) == json.array_mt or v[1] ~= nil then
      return nil, "must be a table (a JSON object), got an array"
    end
    local text, why = json.encode(v) -- all of it must be sayable in JSON
    if not text then return nil, "cannot be sent as JSON: " .. why end
    return true
  end,
  to_query = function(v) return assert(json.encode(v)) end,
}

--[[
A JSON object whose fields are documented: `fields` maps each name to its
type (T.required for the ones it must have). Each field is checked like a
parameter, and a name not in `fields` is refused: a typo would otherwise be
dropped by the server without a word. A fault names the field by its path
(source.type, source.metadata.platform).
]]
function M.fields(fields)
  local names = {}
  for n in pairs(fields) do names[#names + 1] = n end
  table.sort(names)
  local known = table.concat(names, ", ")
  local function check(v)
    local ok, why = M.object.check(v)
    if not ok then return nil, why end
    for k in pairs(v) do
      if not fields[k] then
        return nil, "is not a field of this object (known: " .. known .. ")", "." .. tostring(k)
      end
    end
    for _, n in ipairs(names) do
      local x = v[n]
      if x == nil then
        if fields[n].required then return nil, "is required", "." .. n end
      else
        local fine, reason, path = fields[n].check(x)
        if not fine then return nil, reason, "." .. n .. (path or "") end
      end
    end
    return true
  end
  local shown = {}
  for i, n in ipairs(names) do shown[i] = n .. (fields[n].required and "" or "?") .. ": " .. (fields[n].doc or "") end
  return define {
    name = "object", doc = "table { " .. table.concat(shown, "; ") .. " }", lua_type = "table",
    fields = fields,
    check = check,
    to_query = M.object.to_query,
    to_json = function(v)
      local out = {}
      for k, x in pairs(v) do
        local to_json = fields[k].to_json
        if to_json then x = to_json(x) end
        out[k] = x
      end
      return out
    end,
  }
end

--- An array whose items are of type `item` (at least `min` of them).
function M.array(item, min)
  return define {
    name = "array", doc = "array of " .. (item.doc or item.name) .. (min and (", at least " .. min) or ""),
    lua_type = (item.lua_type or "any"):find("|", 1, true) and ("(" .. item.lua_type .. ")[]")
      or ((item.lua_type or "any") .. "[]"),
    item = item,
    check = function(v)
      if type(v) ~= "table" then return nil, "must be an array, got " .. type(v) end
      local n = 0
      for k in pairs(v) do
        if type(k) ~= "number" or k % 1 ~= 0 or k < 1 then return nil, "must be an array (keys 1..n)" end
        n = n + 1
      end
      for i = 1, n do
        if v[i] == nil then return nil, "must be an array without holes" end
        local ok, why, path = item.check(v[i])
        if not ok then
          if path then return nil, why, "[" .. i .. "]" .. path end
          return nil, "item " .. i .. " " .. why
        end
      end
      if min and n < min then return nil, "must have at least " .. min .. " item" .. (min > 1 and "s" or "") end
      return true
    end,
    to_query = function(v)
      local out = {}
      for i = 1, #v do out[i] = item.to_query(v[i]) end
      return out
    end,
    -- a JSON array even when empty, its items as they are sent
    to_json = function(v)
      local out = json.array()
      for i = 1, #v do
        local x = v[i]
        if item.to_json then x = item.to_json(x) end
        out[i] = x
      end
      return out
    end,
  }
end

--- Anything JSON can carry.
M.any = define {
  name = "any", doc = "any JSON value", lua_type = "any",
  check = function() return true end,
}

--- `t`, but required.
function M.required(t)
  local r = setmetatable({ required = true }, { __index = t })
  return r
end

--- What a type accepts, in words, for reference documentation.
function M.describe(t)
  return t.doc or t.name or "value"
end

--- `t`, also accepting JSON null (agentruns.null) as a value.
function M.nullable(t)
  return setmetatable({
    doc = (t.doc or t.name) .. ", or agentruns.null", lua_type = (t.lua_type or "any") .. "|userdata",
    check = function(v)
      if json.is_null(v) then return true end
      return t.check(v)
    end,
    to_json = t.to_json and function(v)
      if json.is_null(v) then return v end
      return t.to_json(v)
    end,
  }, { __index = t })
end

return M

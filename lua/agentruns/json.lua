--[[
JSON for request and response bodies.

Decoding is agentruns.sse's json_decode, in C, wherever that module loads; a
bare sandbox (no C modules) decodes with lua-cjson (a private instance, so the
user's cjson settings are neither changed nor relied on). Either way a
malformed body is an error value, never a raise.

JSON null is `json.null` (= agentruns.null = agentruns.sse.null): a userdata
of its own that prints as "null" and, like every userdata, is truthy, so test
for it with `v == json.null` or `json.is_null(v)`. Decoding gives it where
cjson gives its own null (a light userdata that prints as "userdata: (nil)");
encoding writes null for it, and for cjson.null too, so values from a user's
own cjson still encode. The sandbox uses this module too and may run without the
C modules (from a checkout, under any interpreter); there, and only there,
json.null is cjson's null.

Encoding is done here, in Lua, because request bodies are small and cjson
2.1.0 cannot tell an empty array from an empty object: a table is an array
when it is a non-empty sequence or carries `json.array_mt`
(`json.array{}` makes one), otherwise an object.
]]
local cjson = require("cjson").new()

cjson.decode_max_depth(200)

local cjson_null = cjson.null
local has_sse, sse = pcall(require, "agentruns.sse")
local null = has_sse and sse.null or cjson_null

local M = {
  null = null,
  array_mt = { __name = "agentruns.json_array" },
}

--- True when `v` is JSON null (agentruns.null, or cjson.null).
function M.is_null(v)
  return v == null or v == cjson_null
end

--- Mark `t` (default a new table) as a JSON array, so that {} encodes as [].
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

-- Where agentruns.sse is loaded (every host but a bare sandbox), decoding is
-- its sse.json_decode: one pass in C that gives whole numbers as integers
-- where Lua has them and JSON null as ours. Without it, cjson decodes and one
-- walk over its result does the same: cjson 2.1.0 gives every number as a
-- float, and its own null.
local compat = require "agentruns.compat"
local tointeger = compat.tointeger

local function fix(v)
  for k, x in pairs(v) do
    local tx = type(x)
    if tx == "table" then
      fix(x)
    elseif x == cjson_null then
      v[k] = null
    elseif tx == "number" and tointeger then
      local i = tointeger(x)
      if i then v[k] = i end
    end
  end
  return v
end

local function cjson_decode(text)
  local ok, value = pcall(cjson.decode, text)
  if not ok then return nil, (tostring(value):gsub("^.-:%d+: ", "")) end
  local tv = type(value)
  if tv == "table" then
    -- where Lua has integers the walk is made anyway; on Lua 5.1 and LuaJIT
    -- text without "null" has no null in it: no walk at all
    if tointeger or text:find("null", 1, true) then return fix(value) end
  elseif value == cjson_null then
    return null
  elseif tv == "number" and tointeger then
    return tointeger(value) or value
  end
  return value
end

local c_decode = has_sse and sse.json_decode

--- Decode `text`; returns the value, or nil and a message.
function M.decode(text)
  if not c_decode then return cjson_decode(text) end
  if type(text) ~= "string" then return nil, "expected JSON text, got " .. type(text) end
  return c_decode(text)
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', escape_char) .. '"'
end

-- A table's length if it is a sequence (keys 1..n, nothing else), else nil.
local function sequence_length(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k <= 0 or k % 1 ~= 0 then return nil end
    if k > n then n = k end
  end
  for i = 1, n do
    if t[i] == nil then return nil end
  end
  return n
end

local encode_value

local function encode_table(t, out, depth)
  if depth > 100 then error("cannot encode nesting deeper than 100", 0) end
  local n = sequence_length(t)
  if n and (n > 0 or getmetatable(t) == M.array_mt) then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("cannot encode a table mixing array and object keys", 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encode_string(k)
    out[#out + 1] = ":"
    encode_value(t[k], out, depth + 1)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out, depth)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v), 0) end
    if compat.math_type and compat.math_type(v) == "integer" then
      out[#out + 1] = tostring(v)
    else -- the shortest form that reads back as the same number
      local s = string.format("%.14g", v)
      if tonumber(s) ~= v then s = string.format("%.17g", v) end
      out[#out + 1] = s
    end
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif v == null or v == cjson_null then
    out[#out + 1] = "null"
  elseif tv == "table" then
    encode_table(v, out, depth)
  else
    error("cannot encode a " .. tv, 0)
  end
end

--- Encode `value`; returns the text, or nil and a message.
function M.encode(value)
  local out = {}
  local ok, err = pcall(encode_value, value, out, 0)
  if not ok then return nil, err end
  return table.concat(out)
end

return M

-- JSON for the sandbox: a small deterministic encoder plus lua-cjson for decoding.
--
-- The encoder exists because the sandbox's answers must be byte-identical for the same seed and
-- must tell empty arrays from empty objects: objects are written with their keys sorted, tables
-- marked with `json.array` always encode as arrays (`[]` when empty), other tables with a
-- positive sequence encode as arrays, and `json.null` (which is `cjson.null`) encodes as `null`.
-- Decoding is lua-cjson's, wrapped so that malformed text returns `nil, message`.
local cjson = require "cjson"

local json = {}

json.null = cjson.null

local array_mt = { __name = "agentruns.sandbox.json.array" }

-- Marks a table as a JSON array (so an empty one encodes as `[]`) and returns it.
function json.array(t)
  return setmetatable(t or {}, array_mt)
end

function json.is_array(t)
  return getmetatable(t) == array_mt
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode_number(n)
  if n ~= n or n == math.huge or n == -math.huge then
    error("cannot encode a non-finite number", 3)
  end
  if n == math.floor(n) and n > -1e15 and n < 1e15 then
    return string.format("%d", n)
  end
  return string.format("%.14g", n)
end

-- Length of the positive sequence 1..n when `t` holds nothing else, otherwise nil.
local function sequence_length(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k <= 0 or k ~= math.floor(k) then
      return nil
    end
    if k > n then n = k end
  end
  if n == 0 then
    return nil
  end
  for i = 1, n do
    if t[i] == nil then return nil end
  end
  return n
end

local encode_value

local function encode_table(t, out, depth)
  if depth > 64 then
    error("cannot encode a table nested deeper than 64 levels", 3)
  end
  local n = sequence_length(t)
  if n or getmetatable(t) == array_mt then
    out[#out + 1] = "["
    for i = 1, n or #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("cannot encode a table with a " .. type(k) .. " key", 3)
    end
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
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = encode_string(v)
  elseif tv == "table" then
    encode_table(v, out, depth)
  else
    error("cannot encode a value of type " .. tv, 3)
  end
end

-- Encodes a Lua value as JSON text.
function json.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return table.concat(out)
end

-- Decodes JSON text; returns the value, or nil and a message when the text is not JSON.
function json.decode(text)
  local ok, value = pcall(cjson.decode, text)
  if not ok then
    return nil, (tostring(value):gsub("^.-: ", ""))
  end
  return value
end

return json

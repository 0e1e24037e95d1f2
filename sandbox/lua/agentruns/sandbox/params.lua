-- Parsing of query-string values shared by the route handlers.
--
-- Each function takes the raw string (or nil when the parameter is absent) and returns the parsed
-- value, or nil when the text is not of that type; the handlers turn a nil into their API's own
-- validation error.
local params = {}

-- A whole number written in decimal ("12", "-3"), or nil.
function params.integer(s)
  local digits = type(s) == "string" and s:match("^%s*[+]?(%-?%d+)%s*$")
  if not digits then return nil end
  return math.floor(tonumber(digits))
end

-- A finite decimal number ("1", "0.5"), or nil.
function params.number(s)
  if type(s) ~= "string" or not s:match("^%s*[+-]?%d*%.?%d+%s*$") then return nil end
  return tonumber(s)
end

-- "true" / "false" (any case) as a boolean; nil for anything else.
function params.boolean(s)
  if type(s) ~= "string" then return nil end
  local lower = s:lower()
  if lower == "true" then return true end
  if lower == "false" then return false end
  return nil
end

-- True when `value` is one of the strings in `list`.
function params.one_of(value, list)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

-- Slices `list` by `offset` (0-based) and `limit`, returning a JSON array.
function params.slice(list, offset, limit, array)
  local out = array or {}
  for i = offset + 1, math.min(#list, offset + limit) do
    out[#out + 1] = list[i]
  end
  return out
end

return params

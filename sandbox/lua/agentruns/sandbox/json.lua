-- JSON for the sandbox: the library's own encoder and decoder (agentruns.json), which already
-- give what the sandbox needs: objects with sorted keys, so the same seed gives byte-identical
-- answers, and tables marked with `json.array` encoding as arrays even when empty. Encoding
-- failures raise here: in the sandbox they are programming errors, not runtime conditions.
local json = require "agentruns.json"

local M = { null = json.null, array = json.array, decode = json.decode }

function M.is_array(t)
  return getmetatable(t) == json.array_mt
end

-- Encodes a Lua value (nil as null) as JSON text.
function M.encode(v)
  if v == nil then return "null" end
  return assert(json.encode(v))
end

return M

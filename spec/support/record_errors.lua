--[[
busted helper (--helper): writes every error value the library makes, and
every string its __tostring gives, to the file named by AGENTRUNS_ERROR_LOG,
one per line. The test runner then searches that file for the API keys the
suite uses: none may appear in any error the whole suite produced.
]]
local path = os.getenv "AGENTRUNS_ERROR_LOG"
if not path then return end

local errors = require "agentruns.errors"
local log = assert(io.open(path, "a"))
log:setvbuf("line")

local function write(s)
  log:write((tostring(s):gsub("\n", "\\n")), "\n")
end

local function write_fields(err, depth)
  for k, v in pairs(err) do
    if type(v) == "string" then
      write(tostring(k) .. "=" .. v)
    elseif type(v) == "table" and depth < 3 then
      write_fields(v, depth + 1)
    end
  end
end

local new = errors.new
errors.new = function(...)
  local err = new(...)
  write_fields(err, 0)
  return err
end

local tostring_error = errors.metatable.__tostring
errors.metatable.__tostring = function(err)
  local s = tostring_error(err)
  write_fields(err, 0)
  write(s)
  return s
end

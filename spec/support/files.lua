-- Reading the checkout from specs, and running commands.
--   files.read(path) -> the whole file;  files.list(command) -> the lines a shell command prints
--   files.shell_quote(s) -> s as one word for sh
local M = {}

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

function M.list(command)
  local p = assert(io.popen(command))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

return M

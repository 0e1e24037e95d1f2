-- Reading the checkout from specs.
--   files.read(path) -> the whole file;  files.list(command) -> the lines a shell command prints
local M = {}

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

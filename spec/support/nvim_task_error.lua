--[[
Run inside headless Neovim by spec/task_errors_spec.lua: after use_loop, a
task that fails in a loop callback and that nobody joins must reach
vim.notify at ERROR level, once; a joined one must not. Writes what
vim.notify received as JSON to $AGENTRUNS_RESULT.
]]
local cjson = require "cjson"
local agentruns = require "agentruns"

local notes = {}
vim.notify = function(message, level) notes[#notes + 1] = { message = message, level = level } end

agentruns.use_loop(vim.loop)
local joined = agentruns.spawn(function() agentruns.sleep(0.01); error("joined, so never reported") end)
agentruns.spawn(function()
  agentruns.sleep(0.01) -- fails later, in a callback of the editor's loop
  vim.api.nvim_buf_get_lines(0, 0, -1, false) -- E5560: vim.api is not allowed in a luv callback
end)
vim.wait(5000, function() return joined:done() end, 5)
assert(joined:done(), "the tasks never ran")
local _, err = joined:join()
for _ = 1, 3 do collectgarbage() end
vim.wait(2000, function() return #notes > 0 end, 5)
vim.wait(50) -- anything more that was scheduled lands too
local f = assert(io.open(os.getenv "AGENTRUNS_RESULT", "w"))
f:write(cjson.encode { notes = notes, error_level = vim.log.levels.ERROR, joined_error = tostring(err) })
f:close()

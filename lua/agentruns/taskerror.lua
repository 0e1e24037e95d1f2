--[[
What becomes of an error raised in a task (agentruns.spawn).

The error keeps its traceback: a string error gets it appended (as
debug.traceback writes it, naming the file and line that raised), a table
error (an agentruns error, say) gets it as its `traceback` field and stays
a table. `task:join()` and `gather` return it so.

A task whose error nobody takes with join() is reported once, when the task
is collected: dropped by the program, or at the latest when Lua closes at the
end of the script or the host. Joining it, before or after it failed, means
it is never reported. The report goes to the handler set with
agentruns.on_task_error(fn) — fn(message, err), message being the whole text
with the traceback — or else, by host: ngx.log(ngx.ERR, ...) inside nginx,
vim.notify(..., ERROR) (scheduled) once agentruns.use_loop has handed the
tasks to Neovim's loop, stderr everywhere else.
]]
local M = {}

local handler     -- the user's, or nil
local loop_sink   -- set by agentruns.loop inside Neovim

--[[
The error `err` with a traceback added: of the dead coroutine `co`, or (co
nil) of the running code from `level` up, for a message handler of xpcall.
]]
function M.with_traceback(co, err, level)
  local function traceback(msg)
    if co then return debug.traceback(co, msg) end
    return debug.traceback(msg, level)
  end
  if type(err) == "table" then
    if rawget(err, "traceback") == nil then rawset(err, "traceback", (traceback(""):gsub("^\n", ""))) end
    return err
  end
  if type(err) ~= "string" then err = "(error object is a " .. type(err) .. " value)" end
  return traceback(err)
end

--- The text a report prints for `err` (from with_traceback).
function M.describe(err)
  if type(err) == "table" then
    local tb = rawget(err, "traceback")
    return tostring(err) .. (tb and ("\n" .. tb) or "")
  end
  return tostring(err)
end

local function default_sink(message)
  if require("agentruns.host").log_error(message) then
    return
  elseif loop_sink then
    loop_sink(message)
  else
    io.stderr:write(message, "\n")
  end
end

--- Report `err`, an error no one joined.
function M.report(err)
  local message = "agentruns: a task failed and was never joined: " .. M.describe(err)
  local ok = handler and pcall(handler, message, err)
  if not ok then pcall(default_sink, message) end
end

--- Set the handler (nil: the host's default); returns the previous one.
function M.set_handler(fn)
  if fn ~= nil and type(fn) ~= "function" then error("agentruns.on_task_error: expected a function or nil", 2) end
  local previous = handler
  handler = fn
  return previous
end

--- Where reports go by default inside an event loop's host (nil: stderr).
function M.set_loop_sink(fn)
  loop_sink = fn
end

local newproxy = rawget(_G, "newproxy") -- Lua 5.1 and LuaJIT: tables have no __gc there

--[[
An object to keep in a task: when it is collected with `state.err` set and
`state.joined` not, the error is reported. State is a table the task updates.
]]
function M.guard(state)
  local function collect()
    if state.err ~= nil and not state.joined then
      state.joined = true -- once
      M.report(state.err)
    end
  end
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = collect
    return proxy
  end
  return setmetatable({}, { __gc = collect })
end

return M

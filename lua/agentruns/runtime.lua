--[[
How the library waits.

Everything that waits goes through `runtime.wait(session, ready, timeout)`:
drive `session` until `ready()` is true or `timeout` seconds pass, and
`runtime.sleep(seconds)`. The plain implementation below blocks the caller,
driving the session itself. A scheduler (coroutines, a host event loop)
installs its own `waiter` so that the same library code yields instead;
nothing above this module knows which one is in use.
]]
local M = {}

local core = require "agentruns.core"

--- Seconds on a clock that only moves forward.
M.now = core.now

-- The blocking waiter: drive the session until ready() or the deadline.
local blocking = {}

function blocking.wait(session, ready, timeout)
  local deadline = timeout and M.now() + timeout
  while not ready() do
    local wait = 1
    if deadline then
      local left = deadline - M.now()
      if left <= 0 then return false end
      if left < wait then wait = left end
    end
    session:perform(wait)
  end
  return true
end

function blocking.sleep(seconds, session)
  if seconds <= 0 then return end
  local deadline = M.now() + seconds
  if session then -- keep other transfers of the session moving meanwhile
    blocking.wait(session, function() return M.now() >= deadline end, seconds)
    return
  end
  core.sleep(seconds)
end

local waiters = {}

--- Install `w` (with wait/sleep like `blocking`) as the waiter for `key` (a coroutine).
function M.set_waiter(key, w)
  waiters[key] = w
end

local function current()
  local co = coroutine.running()
  return co and waiters[co] or blocking
end

--- Wait until ready() is true (true) or timeout seconds passed (false).
function M.wait(session, ready, timeout)
  return current().wait(session, ready, timeout)
end

--- Sleep for `seconds` without stopping the session's other transfers.
function M.sleep(seconds, session)
  return current().sleep(seconds, session)
end

return M

--[[
How the library waits.

Everything that waits goes through `runtime.wait(driver, ready, timeout, key)`:
drive `driver` until `ready()` is true or `timeout` seconds pass, and
`runtime.sleep(seconds, driver)`. `key` (optional) names what `ready()`
depends on, when the driver can tell which keys changed (`driver:changed()`,
see agentruns.scheduler): a scheduler then asks `ready()` only after that key
changed or the timeout passed, instead of on every pass. A driver is what a transport hands out for
the work it has in flight: an object whose `driver:drive(wait)` does the work
that is ready and waits at most `wait` seconds for more (the curl transport's
drives a curl multi session; the nginx transport needs none, nginx drives
it). The plain implementation below blocks the caller, driving the driver
itself. A scheduler (coroutines, a host event loop) installs its own `waiter`
so that the same library code yields instead; nothing above this module
knows which one is in use, and this module knows no transport.
]]
local M = {}

-- The clock and the thread sleep: nginx's inside nginx (so nothing there loads libcurl),
-- else the C module's monotonic clock.
local ngx = require("agentruns.host").ngx()
local clock, sleep_thread
if ngx then
  clock, sleep_thread = ngx.now, ngx.sleep
else
  local curl = require "agentruns.curl"
  clock, sleep_thread = curl.now, curl.sleep
end

--- Seconds on a clock that only moves forward.
M.now = clock

-- Jitter needs numbers that differ between processes, without touching the
-- program's own math.random state (Lua 5.1 and LuaJIT start it unseeded):
-- a private xorshift seeded from the clock and an address.
local state = math.floor((clock() * 1e6) % 2147483647)
  + (tonumber(tostring({}):match("0x(%x+)") or "1", 16) or 1) % 65536 + 1

--- A number in [0, 1) for backoff jitter.
function M.random()
  state = (state * 16807) % 2147483647
  return (state - 1) / 2147483646
end

--- Block the whole thread (no transfer moves meanwhile).
M.sleep_thread = sleep_thread

-- What a blocking wait does for up to `wait` seconds (it may return early,
-- once ready() holds): drive the session. The scheduler replaces it so that
-- its tasks move while plain code waits; an event loop adapter, so that the
-- loop keeps turning.
local function drive(driver, wait)
  if driver then driver:drive(wait) else M.sleep_thread(wait) end
end

--- Replace what a blocking wait does each round (fn(driver, seconds, ready)).
function M.set_driver(fn)
  drive = fn
end

-- The blocking waiter: drive until ready() or the deadline.
local blocking = {}

function blocking.wait(driver, ready, timeout)
  local deadline = timeout and M.now() + timeout
  while not ready() do
    local wait = 1
    if deadline then
      local left = deadline - M.now()
      if left <= 0 then return false end
      if left < wait then wait = left end
    end
    drive(driver, wait, ready)
  end
  return true
end

function blocking.sleep(seconds, driver)
  if seconds <= 0 then return end
  local deadline = M.now() + seconds
  blocking.wait(driver, function() return M.now() >= deadline end, seconds)
end

local notify_fn = function() end

--- Tell whoever drives the drivers that new work (a transfer, a task) started.
function M.notify()
  notify_fn()
end

--- Set what notify() does (an event loop adapter schedules a pass of its own).
function M.set_notify(fn)
  notify_fn = fn or function() end
end

local waiters = setmetatable({}, { __mode = "k" })

--- Install `w` (with wait/sleep like `blocking`) as the waiter for coroutine `key` (nil removes it).
function M.set_waiter(key, w)
  waiters[key] = w
end

local function current()
  local co = coroutine.running()
  return co and waiters[co] or blocking
end

--- Wait until ready() is true (true) or timeout seconds passed (false); `key` as above.
function M.wait(driver, ready, timeout, key)
  return current().wait(driver, ready, timeout, key)
end

--- Sleep for `seconds` without stopping the driver's other work.
function M.sleep(seconds, driver)
  return current().sleep(seconds, driver)
end

return M

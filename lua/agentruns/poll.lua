--[[
Waiting for a run by asking again: get_run, a pause, get_run, ... until the run's status is
one it never leaves. For the providers whose runs have no event stream (HappyRobot, Humm);
ToolRegistry's wait_run follows the run's stream instead.

`on_update(run)` is called with the first answer and with each that changed the status,
`on_poll(run)` with every answer (after on_update). The pause starts at `interval` (1 s: no
provider is asked more than once a second unless the caller says so), grows by half after
each answer that brought no change, up to
`max_interval`, and starts over when the status changes. A 429 or 503 answer waits at least
its Retry-After; an answer a retry cannot mend (a 404, a bad key) ends the wait with its
error, and so do `max_failures` failed polls in a row. The pauses go through the client's
transport, so waiting yields to the other tasks under agentruns.run, Neovim's loop or nginx.
]]
local errors = require "agentruns.errors"
local runtime = require "agentruns.runtime"

local M = {}

M.defaults = { interval = 1, max_interval = 15, growth = 1.5, max_failures = 5 }

local function positive(opts, name)
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or not (v > 0 and v < math.huge)) then
    return errors.invalid_argument(name, "must be a positive number of seconds")
  end
end

-- The options checked, with the defaults filled in; or nil, err.
local function options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then return nil, errors.invalid_argument("options", "must be a table") end
  for _, name in ipairs { "on_update", "on_poll" } do
    if opts[name] ~= nil and type(opts[name]) ~= "function" then
      return nil, errors.invalid_argument(name, "must be a function")
    end
  end
  for _, name in ipairs { "timeout", "interval", "max_interval" } do
    local err = positive(opts, name)
    if err then return nil, err end
  end
  local mf = opts.max_failures
  if mf ~= nil and (type(mf) ~= "number" or mf < 1 or mf % 1 ~= 0) then
    return nil, errors.invalid_argument("max_failures", "must be a positive integer")
  end
  local o = { on_update = opts.on_update, on_poll = opts.on_poll, timeout = opts.timeout,
              interval = opts.interval or M.defaults.interval,
              max_failures = mf or M.defaults.max_failures }
  o.max_interval = math.max(opts.max_interval or M.defaults.max_interval, o.interval)
  return o
end

--[[
Poll `client:get_run(run_id)` until `read(answer)` says the run is done. `read` returns the
status and whether it is terminal. Returns the last answer, or nil and an error: the get_run
error, or a "timeout" error (retryable, with the last answer in err.run) after opts.timeout.
]]
function M.wait(client, run_id, opts, read)
  local o, err = options(opts)
  if not o then return nil, err end
  local deadline = o.timeout and runtime.now() + o.timeout
  local delay, last_status, last, failures, first = o.interval, nil, nil, 0, true
  while true do
    local run, perr = client:get_run(run_id)
    if run then
      failures = 0
      last = run
      local status, done = read(run)
      if first or status ~= last_status then
        first, last_status, delay = false, status, o.interval
        if o.on_update then o.on_update(run) end
      else
        delay = math.min(delay * M.defaults.growth, o.max_interval)
      end
      if o.on_poll then o.on_poll(run) end
      if done then return run end
    else
      if not perr.retryable or perr.kind == "invalid_argument" then return nil, perr end
      failures = failures + 1
      if failures >= o.max_failures then return nil, perr end
      delay = math.min(delay * M.defaults.growth, o.max_interval)
      if perr.retry_after then delay = math.max(delay, perr.retry_after) end
    end
    local now = runtime.now()
    if deadline and now >= deadline then
      return nil, errors.new("timeout", string.format("run %s was still %s after %g s (timeout)",
        tostring(run_id), last_status and ("'" .. tostring(last_status) .. "'") or "unread", o.timeout),
        { retryable = true, run = last })
    end
    client.transport:sleep(deadline and math.min(delay, deadline - now) or delay)
  end
end

return M

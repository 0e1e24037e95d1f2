--[[
agentruns: Lua clients for the HappyRobot, Humm and ToolRegistry agent-run APIs.

  local agentruns = require "agentruns"
  local tr = agentruns.toolregistry.new{ api_key = ... }
  local hr = agentruns.happyrobot.new{ api_key = ..., organization_id = ... }
  local humm = agentruns.humm.new{ api_key = ..., organization_id = ... }

The provider modules load on first use, and so do the two C modules:
`agentruns.sse` (the SSE parser, nothing but Lua linked) and `agentruns.curl`
(libcurl sessions). `agentruns.null` is JSON null as results carry
it (it prints as "null" and is truthy: compare with `== agentruns.null`);
`agentruns.array(t)` marks a table to be sent as a JSON array even when
empty. `agentruns.assert(v, err, ...)` is `assert` that prints an error
value's line when uncaught on every Lua, 5.1 included (agentruns.errors).

Concurrency: `agentruns.spawn(fn, ...)`, `agentruns.gather{fn, ...}` and
`agentruns.sleep(s)` (agentruns.scheduler) run calls as coroutines over one
curl multi session; `agentruns.use_loop(vim.uv or vim.loop)` (agentruns.loop)
hands them to a libuv loop. A task's error that nobody joins is reported
(agentruns.on_task_error(fn) chooses where; see agentruns.taskerror).
]]
local errors = require "agentruns.errors"
local json = require "agentruns.json"

local PROVIDERS = { toolregistry = true, happyrobot = true, humm = true }
local SCHEDULER = { spawn = true, gather = true, sleep = true }

local agentruns = {
  _VERSION = require("agentruns.sse").version,
  null = json.null,
  array = json.array,
  errors = errors,
  assert = errors.assert,
}

return setmetatable(agentruns, {
  __index = function(t, name)
    if name == "sse" or name == "curl" then -- the C modules, for code that wants them directly
      local mod = require("agentruns." .. name)
      rawset(t, name, mod)
      return mod
    end
    if PROVIDERS[name] then
      local mod = require("agentruns." .. name)
      rawset(t, name, mod)
      return mod
    end
    if name == "on_task_error" then
      local fn = require("agentruns.taskerror").set_handler
      rawset(t, name, fn)
      return fn
    end
    if name == "use_loop" then
      local fn = require("agentruns.loop").use
      rawset(t, name, fn)
      return fn
    end
    if SCHEDULER[name] then
      local fn = require("agentruns.scheduler")[name]
      rawset(t, name, fn)
      return fn
    end
  end,
})

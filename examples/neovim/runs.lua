--[[
A Neovim snippet: ToolRegistry runs in a scratch buffer, without freezing the
editor. Requests and streams run in agentruns tasks driven by Neovim's own
libuv loop; results reach the editor through vim.schedule (vim.api may not be
called from loop callbacks).

  :luafile examples/neovim/runs.lua   -- or require it from your config
  :lua AgentrunsRuns.setup{}          -- TOOLREGISTRY_API_KEY / TOOLREGISTRY_BASE_URL from the environment
  :lua AgentrunsRuns.show_runs()      -- a buffer listing the latest runs
  :lua AgentrunsRuns.follow_run(id)   -- appends the run's events live
]]
local agentruns = require "agentruns"

local M = {}

--- Create the client and hand agentruns to Neovim's loop.
function M.setup(opts)
  agentruns.use_loop(vim.uv or vim.loop)
  M.tr = agentruns.toolregistry.new(opts)
  return M
end

-- A scratch buffer in a new window, or the one given.
local function scratch(buf)
  if buf then return buf end
  buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, "agentruns://" .. tostring(buf))
  return buf
end

local function append(buf, lines)
  vim.schedule(function()
    if vim.api.nvim_buf_is_valid(buf) then
      vim.api.nvim_buf_set_lines(buf, -1, -1, false, lines)
    end
  end)
end

--[[
List the newest runs into a buffer. Returns the task; task:done() tells when
it finished and task:join() (inside another task) its result: the number of
runs listed, or nil and an error.
]]
function M.show_runs(opts)
  opts = opts or {}
  local buf = scratch(opts.buf)
  return agentruns.spawn(function()
    local page, err = M.tr:list_runs({ pageSize = opts.count or 10 }, opts.call_options)
    if not page then
      append(buf, { "error: " .. tostring(err) })
      return nil, err
    end
    local lines = {}
    for i, run in ipairs(page.runs or page) do
      lines[i] = string.format("%s  %-16s %s", run.runId, run.status, tostring(run.intent))
    end
    append(buf, lines)
    return #lines
  end)
end

--[[
Follow a run's events into a buffer until it ends. Returns the task; its
result is the number of events seen, or nil and an error.
]]
function M.follow_run(run_id, opts)
  opts = opts or {}
  local buf = scratch(opts.buf)
  return agentruns.spawn(function()
    local stream = M.tr:stream_events(run_id)
    local n = 0
    while true do
      local ev, err = stream:next()
      if err then
        append(buf, { "error: " .. tostring(err) })
        return nil, err
      end
      if not ev then return n end
      n = n + 1
      append(buf, { string.format("[%s] %s %s", ev.id, ev.event,
        type(ev.data) == "table" and tostring(ev.data.runStatus) or "") })
      if opts.on_event then opts.on_event(ev) end
    end
  end)
end

_G.AgentrunsRuns = M
return M

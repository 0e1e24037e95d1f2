--[[
Driving agentruns from a libuv loop (Neovim's vim.uv / vim.loop, or luv).

  agentruns.use_loop(vim.uv or vim.loop)
  agentruns.spawn(function()
    local run = assert(tr:get_run(id))
    vim.schedule(function() vim.notify(run.status) end)  -- vim.api only via vim.schedule
  end)

How: the shared session switches to curl's socket/timer interface
(session:use_callbacks). After every piece of work the adapter takes the
changes curl asked for (take_watches) and mirrors them: one uv poll handle
per socket, one uv timer for curl's timeout. When a socket is ready or the
timer fires it calls session:socket_action, then resumes every spawned task
whose wait is over (scheduler.run_ready) and arms a timer for the nearest
task deadline (agentruns.sleep). New work (a request, a task) schedules a
pass at once through runtime.notify. Nothing blocks the loop, so the editor
stays responsive while requests and streams are in flight. Idle timeouts of
streams are checked by a 250 ms tick that runs only while transfers are in
flight.

Outside spawned tasks a call still blocks its caller: under Neovim by
running vim.wait (the loop keeps turning), elsewhere by running the loop
once per round.

Callbacks run from the loop, where Neovim forbids most of vim.api: use
vim.schedule in your code, as above.
]]
local runtime = require "agentruns.runtime"
local scheduler = require "agentruns.scheduler"
local taskerror = require "agentruns.taskerror"
local curl_transport = require "agentruns.transport.curl"

local M = {}

local active

--- Hand the shared session (and every spawned task) to the libuv loop `uv`.
function M.use(uv, options)
  if type(uv) ~= "table" or type(uv.new_timer) ~= "function" or type(uv.new_socket_poll) ~= "function" then
    error("agentruns.use_loop: expected a luv module (vim.uv or vim.loop)", 2)
  end
  if active then
    if active.uv == uv then return active end
    error("agentruns.use_loop: a loop is already in use", 2)
  end
  options = options or {}
  local session = options.session or curl_transport.shared_session()
  session:use_callbacks()
  local state = { uv = uv, session = session, polls = {} }
  local curl_timer, wake_timer, kick_timer, tick_timer = uv.new_timer(), uv.new_timer(), uv.new_timer(),
    uv.new_timer()
  local pass

  -- Mirror curl's socket and timer requests onto uv handles.
  local function apply_watches()
    local changes, timer_ms = session:take_watches()
    for _, change in ipairs(changes) do
      local fd, what = change[1], change[2]
      local poll = state.polls[fd]
      if what == "remove" then
        if poll then
          poll:stop()
          poll:close()
          state.polls[fd] = nil
        end
      elseif what ~= "none" then
        if not poll then
          poll = uv.new_socket_poll(fd)
          state.polls[fd] = poll
        end
        local events = (what == "in" and "r") or (what == "out" and "w") or "rw"
        poll:start(events, function(_, ready)
          session:socket_action(fd, ready or events)
          pass()
        end)
      end
    end
    if timer_ms then
      curl_timer:stop()
      if timer_ms >= 0 then
        curl_timer:start(timer_ms, 0, function()
          session:socket_action()
          pass()
        end)
      end
    end
  end

  -- One pass: apply what curl asked for, run the tasks that can run, arm timers.
  function pass()
    for _ = 1, 100 do -- tasks that start transfers change the watches again
      apply_watches()
      if not scheduler.run_ready() then break end
    end
    apply_watches()
    local deadline = scheduler.next_deadline()
    wake_timer:stop()
    if deadline then
      wake_timer:start(math.max(0, math.ceil((deadline - runtime.now()) * 1000)), 0, pass)
    end
    if session:pending() > 0 then
      if not tick_timer:is_active() then
        tick_timer:start(250, 250, function()
          session:perform(0)
          pass()
        end)
      end
    else
      tick_timer:stop()
    end
  end

  runtime.set_notify(function()
    if not kick_timer:is_active() then kick_timer:start(0, 0, pass) end
  end)

  -- A blocking wait outside any task keeps the loop turning.
  local vim = rawget(_G, "vim")
  if vim and vim.schedule and vim.notify then -- errors nobody joined reach the editor's messages
    taskerror.set_loop_sink(function(message)
      vim.schedule(function() vim.notify(message, vim.log and vim.log.levels.ERROR) end)
    end)
  end
  runtime.set_driver(function(d, wait, ready)
    if d and d.session ~= session then -- a session of its own: the loop does not watch it
      d:drive(wait)
      return
    end
    if vim and vim.wait then
      vim.wait(math.max(1, math.floor(wait * 1000)), ready or function() return false end, 5)
    else
      -- with no active handle a pass returns at once: do not spin
      if not uv.run("once") then runtime.sleep_thread(math.min(wait, 0.01)) end
    end
  end)

  active = state
  pass()
  return state
end

return M

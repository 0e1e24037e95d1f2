--[[
Coroutines over the transports' drivers: spawn, gather, sleep.

  local task = agentruns.spawn(function(a) return tr:get_run(a) end, id)
  local results = agentruns.gather{ f1, f2, f3 }  -- { {n=, values...}, ... } in order
  agentruns.sleep(0.5)

A task is a coroutine with its own waiter (see agentruns.runtime): when
library code inside it has to wait for a transfer or a timer, the task
yields its wait condition to the scheduler instead of blocking. The
scheduler resumes every task whose condition holds, and when none does it
drives the drivers for the shortest time any task can afford to wait, so
the transfers of all tasks progress together (in one curl multi loop, say).

Tasks run whenever the scheduler runs: during gather(), task:join(), and
while code outside any task waits for a call (a blocking wait steps the
scheduler too). Outside a task, the library blocks exactly as before.
]]
local compat = require "agentruns.compat"
local host = require "agentruns.host"
local runtime = require "agentruns.runtime"
local taskerror = require "agentruns.taskerror"

local M = {}

local pack, unpack = compat.pack, compat.unpack

local tasks = {}        -- runnable or waiting tasks, in spawn order
local drivers = setmetatable({}, { __mode = "k" }) -- what the tasks' transfers run on

local Task = {}
Task.__index = Task
Task.__name = "agentruns.Task"

-- The waiter given to every task: yield the condition to the scheduler.
local task_waiter = {}

function task_waiter.wait(driver, ready, timeout)
  local deadline = timeout and runtime.now() + timeout
  if driver then drivers[driver] = true end
  while not ready() do
    if deadline and runtime.now() >= deadline then return false end
    coroutine.yield { driver = driver, ready = ready, deadline = deadline }
  end
  return true
end

function task_waiter.sleep(seconds, driver)
  local deadline = runtime.now() + seconds
  task_waiter.wait(driver, function() return runtime.now() >= deadline end, seconds)
end

-- Resume a task once; record its result when it finishes.
local function resume(task)
  local ok, wait = coroutine.resume(task.co, unpack(task.args, 1, task.args.n))
  task.args = { n = 0 }
  if not ok then
    local err = taskerror.with_traceback(task.co, wait)
    task.finished, task.result, task.state.err = true, { n = 2, nil, err }, err
  elseif coroutine.status(task.co) == "dead" then
    task.finished = true
  else
    task.wait = wait
  end
  if task.finished then runtime.set_waiter(task.co, nil) end
end

--- Resume every task whose wait is over, once; returns true if any ran.
function M.run_ready()
  local ran = false
  -- Over a snapshot: a resumed task may re-enter here (a library call made
  -- in a nested coroutine waits the blocking way, which steps the tasks).
  local snapshot = {}
  for i, task in ipairs(tasks) do snapshot[i] = task end
  for _, task in ipairs(snapshot) do
    local w = task.wait
    if not task.finished and coroutine.status(task.co) == "suspended"
      and (not w or w.ready() or (w.deadline and runtime.now() >= w.deadline)) then
      task.wait = nil
      resume(task)
      ran = true
    end
  end
  for i = #tasks, 1, -1 do -- drop finished tasks, by identity
    if tasks[i].finished then table.remove(tasks, i) end
  end
  return ran
end

--- The earliest deadline a waiting task has (runtime.now() scale), or nil.
function M.next_deadline()
  local d
  for _, task in ipairs(tasks) do
    local td = task.wait and task.wait.deadline
    if td and (not d or td < d) then d = td end
  end
  return d
end

--[[
One round: resume every task whose wait is over; if none could run, drive
the drivers for at most `max_wait` seconds (less if a task's deadline is
nearer). Returns true while tasks remain.
]]
function M.step(max_wait)
  local ran = M.run_ready()
  if #tasks == 0 then return false end
  local wait = ran and 0 or (max_wait or 1)
  local d = M.next_deadline()
  if d and d - runtime.now() < wait then wait = math.max(d - runtime.now(), 0) end
  local first = next(drivers)
  if first and next(drivers, first) == nil then
    first:drive(wait)
  else
    for other in pairs(drivers) do other:drive(0) end
    if wait > 0 then runtime.sleep_thread(math.min(wait, 0.005)) end
  end
  return true
end

-- Inside nginx, tasks are nginx light threads: nginx itself drives them, and
-- the cosocket transport yields to it. A Task then wraps the thread.
local NgxTask = {}
NgxTask.__index = NgxTask
NgxTask.__name = "agentruns.Task"

function NgxTask:done()
  return self.finished == true
end

function NgxTask:join()
  self.state.joined = true
  if not self.result then
    local out = pack(host.ngx().thread.wait(self.thread))
    if out[1] then
      self.result = pack(unpack(out, 2, out.n))
    else
      self.result = { n = 2, nil, out[2] }
    end
    self.finished = true
  end
  return unpack(self.result, 1, self.result.n)
end

--- Start fn(...) as a task; it runs until its first wait right away.
function M.spawn(fn, ...)
  if type(fn) ~= "function" then error("agentruns.spawn: fn must be a function", 2) end
  if host.cosockets() then -- nginx light threads
    local task = setmetatable({ state = {} }, NgxTask)
    task.guard = taskerror.guard(task.state)
    task.thread = host.ngx().thread.spawn(function(...)
      local args = pack(...)
      -- caught here (LuaJIT yields across xpcall), so the error keeps its traceback
      local out = pack(xpcall(function() return fn(unpack(args, 1, args.n)) end,
                              function(e) return taskerror.with_traceback(nil, e, 2) end))
      task.finished = true
      if not out[1] then
        task.state.err = out[2]
        return nil, out[2]
      end
      return unpack(out, 2, out.n)
    end, ...)
    return task
  end
  local task = setmetatable({ args = pack(...), state = {} }, Task)
  task.guard = taskerror.guard(task.state) -- reports an error nobody joined, when collected
  task.co = coroutine.create(function(...)
    task.result = pack(fn(...))
  end)
  runtime.set_waiter(task.co, task_waiter)
  tasks[#tasks + 1] = task
  resume(task)
  runtime.notify()
  if task.finished then
    for i, t in ipairs(tasks) do
      if t == task then table.remove(tasks, i) break end
    end
  end
  return task
end

--- True when the task has finished.
function Task:done()
  return self.finished == true
end

--[[
Wait for the task and return what its function returned (or nil and the
error it raised, with its traceback: see agentruns.taskerror). Inside
another task this yields; outside, it drives the scheduler.
]]
function Task:join()
  self.state.joined = true
  if not self.finished then
    runtime.wait(nil, function() return self.finished end)
  end
  return unpack(self.result, 1, self.result.n)
end

--- Run the functions as tasks and return each one's results, in order.
function M.gather(fns)
  if type(fns) ~= "table" then error("agentruns.gather: expected an array of functions", 2) end
  for i, fn in ipairs(fns) do -- all checked before any starts
    if type(fn) ~= "function" then error("agentruns.gather: item " .. i .. " is not a function", 2) end
  end
  local list = {}
  for i, fn in ipairs(fns) do list[i] = M.spawn(fn) end
  local results = {}
  for i, task in ipairs(list) do
    task:join()
    results[i] = task.result
  end
  return results -- each { n =, values... }
end

--- Sleep: yields inside a task, blocks (while driving the tasks) outside.
function M.sleep(seconds)
  if type(seconds) ~= "number" or seconds < 0 then error("agentruns.sleep: seconds must be >= 0", 2) end
  runtime.sleep(seconds)
end

--- Number of unfinished tasks.
function M.pending()
  return #tasks
end

--- What a blocking wait does while tasks exist (the default; loop.lua replaces it).
function M.driver(driver, wait)
  if #tasks > 0 then
    if driver then drivers[driver] = true end
    M.step(wait)
  elseif driver then
    driver:drive(wait)
  else
    runtime.sleep_thread(wait)
  end
end

runtime.set_driver(M.driver)

return M

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
local deadlines = require "agentruns.deadlines"
local host = require "agentruns.host"
local runtime = require "agentruns.runtime"
local taskerror = require "agentruns.taskerror"

local M = {}

local pack, unpack = compat.pack, compat.unpack

local ntasks = 0          -- unfinished tasks
local drivers = setmetatable({}, { __mode = "k" }) -- what the tasks' transfers run on

--[[
Where waiting tasks are kept, so that a pass costs what is ready and not what
waits. A wait with a key its driver reports (driver:changed(), the transfers
that got something) is filed under that key and asked only once the key
changed; so is a join, under the task it waits for. A wait with a deadline is
also in a heap of deadlines, the earliest first. A sleep is only in the heap.
Any other wait (no key, or a driver that cannot tell) is asked on every pass.
]]
local keyed = {}          -- key -> the task waiting on it, or { [task] = true } when several do
local polled = {}         -- tasks asked on every pass, in the order they began waiting
local heap = deadlines.new() -- tasks with a deadline, the earliest first
local finished_keys = {}  -- tasks that finished since the last pass with a join waiting on them

local TIMER = setmetatable({}, { __name = "agentruns.scheduler.TIMER" }) -- the key of a wait only time ends

local Task = {}
Task.__index = Task
Task.__name = "agentruns.Task"

-- Whether something will say when `w.key` changed.
local function reported(w)
  local key = w.key
  if key == nil then return false end
  return (w.driver ~= nil and w.driver.changed ~= nil) or getmetatable(key) == Task
end

-- Whether `task` is filed under `key`. A key most often has one task waiting on it, which
-- keyed holds as it is (a set is made only for a second one): no table per wait.
local function filed(key, task)
  local cur = keyed[key]
  return cur == task or (cur ~= nil and getmetatable(cur) ~= Task and cur[task] == true)
end

-- File a waiting task where its wait can end: under its key, or with the tasks asked every pass.
local function file(task)
  local w = task.wait
  if type(w) == "table" and w.key == TIMER and w.deadline then return end -- the heap holds it
  if type(w) == "table" and reported(w) then
    local cur = keyed[w.key]
    if cur == nil then
      keyed[w.key] = task
    elseif getmetatable(cur) == Task then
      if cur ~= task then keyed[w.key] = { [cur] = true, [task] = true } end
    else
      cur[task] = true
    end
  else
    polled[#polled + 1] = task
  end
end

-- Take a task out of every index (it is about to run).
local function unfile(task)
  local w = task.wait
  if type(w) == "table" and w.key ~= nil then
    local cur = keyed[w.key]
    if cur == task then
      keyed[w.key] = nil
    elseif cur ~= nil and getmetatable(cur) ~= Task then
      cur[task] = nil
      if next(cur) == nil then keyed[w.key] = nil end
    end
  end
  heap:remove(task)
end

-- The waiter given to every task: yield the condition to the scheduler, as WAIT and the
-- four parts of the wait (resume files them in the task's one wait record).
local task_waiter = {}
local WAIT = setmetatable({}, { __name = "agentruns.scheduler.WAIT" })
local NO_ARGS = { n = 0 }

function task_waiter.wait(driver, ready, timeout, key)
  local deadline = timeout and runtime.now() + timeout
  if driver then drivers[driver] = true end
  while not ready() do
    if deadline and runtime.now() >= deadline then return false end
    coroutine.yield(WAIT, driver, ready, deadline, key)
  end
  return true
end

function task_waiter.sleep(seconds, driver)
  local deadline = runtime.now() + seconds
  task_waiter.wait(driver, function() return runtime.now() >= deadline end, seconds, TIMER)
end

-- Resume a task once; record its result when it finishes, else file its new wait.
local function resume(task)
  local ok, wait, driver, ready, deadline, key = coroutine.resume(task.co, unpack(task.args, 1, task.args.n))
  task.args = NO_ARGS
  if not ok then
    local err = taskerror.with_traceback(task.co, wait)
    task.finished, task.result, task.state.err = true, { n = 2, nil, err }, err
  elseif coroutine.status(task.co) == "dead" then
    task.finished = true
  else
    if wait == WAIT then -- the record is free again: a task runs only after its wait was unfiled
      local w = task.record
      if not w then
        w = {}
        task.record = w
      end
      w.driver, w.ready, w.deadline, w.key = driver, ready, deadline, key
      task.wait = w
      if deadline then heap:push(task) end
    else
      task.wait = true -- a bare coroutine.yield: run it again next pass
    end
    file(task)
  end
  if task.finished then
    ntasks = ntasks - 1
    if keyed[task] then finished_keys[#finished_keys + 1] = task end -- a join waits on it
    runtime.set_waiter(task.co, nil)
  end
end

--[[
Resume every task whose wait may be over, once; returns true if any ran.
The tasks asked are those whose key changed (what the drivers report, and
the tasks that finished), those whose deadline passed, and those asked on
every pass; a task asked whose wait still holds is filed again.
]]
-- A pass's list of tasks to ask (list[i], and seen[task] = true for each), kept between passes
-- so that a pass allocates nothing. A pass takes the spare pair while it runs: one that
-- re-enters (see below) makes its own, and one that raised leaves the next to make new ones.
local spare_list, spare_seen

local function add(list, seen, task)
  if not seen[task] then
    seen[task] = true
    list[#list + 1] = task
  end
end

local function wake(list, seen, key)
  local cur = keyed[key]
  if cur ~= nil then
    keyed[key] = nil
    if getmetatable(cur) == Task then
      add(list, seen, cur)
    else
      for task in pairs(cur) do add(list, seen, task) end
    end
  end
end

function M.run_ready()
  local list, seen = spare_list or {}, spare_seen or {}
  spare_list, spare_seen = nil, nil
  local everything = false
  for d in pairs(drivers) do
    if d.changed then
      local keys = d:changed()
      if keys == true then
        everything = true
      elseif keys then
        for i = 1, #keys do wake(list, seen, keys[i]) end
      end
    end
  end
  if #finished_keys > 0 then
    local done = finished_keys
    finished_keys = {}
    for i = 1, #done do wake(list, seen, done[i]) end
  end
  if everything then
    for key in pairs(keyed) do wake(list, seen, key) end
  end
  local now = runtime.now()
  local due = heap:first()
  while due and due.wait.deadline <= now do
    heap:remove(due)
    add(list, seen, due)
    due = heap:first()
  end
  if #polled > 0 then
    local asked = polled
    polled = {}
    for i = 1, #asked do add(list, seen, asked[i]) end
  end

  local ran = false
  -- A resumed task may re-enter here (a library call made in a nested
  -- coroutine waits the blocking way, which steps the tasks): the list is
  -- this pass's own, and a task is resumed only while suspended.
  for i = 1, #list do
    local task = list[i]
    local w = task.wait
    if not task.finished and coroutine.status(task.co) == "suspended" then
      if type(w) ~= "table" or w.ready() or (w.deadline and runtime.now() >= w.deadline) then
        unfile(task)
        task.wait = nil
        resume(task)
        ran = true
      elseif not (w.key ~= nil and filed(w.key, task)) then
        file(task) -- still waiting: until its key changes again, or the next pass
      end
    end
  end
  for i = #list, 1, -1 do
    seen[list[i]] = nil
    list[i] = nil
  end
  spare_list, spare_seen = list, seen
  return ran
end

--- The earliest deadline a waiting task has (runtime.now() scale), or nil.
function M.next_deadline()
  local first = heap:first()
  return first and first.wait.deadline
end

--[[
One round: resume every task whose wait is over; if none could run, drive
the drivers for at most `max_wait` seconds (less if a task's deadline is
nearer). Returns true while tasks remain.
]]
function M.step(max_wait)
  local ran = M.run_ready()
  if ntasks == 0 then return false end
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
  ntasks = ntasks + 1
  resume(task)
  runtime.notify()
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
    runtime.wait(nil, function() return self.finished end, nil, self)
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
  return ntasks
end

--- What a blocking wait does while tasks exist (the default; loop.lua replaces it).
function M.driver(driver, wait)
  if ntasks > 0 then
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

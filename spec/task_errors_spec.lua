-- An error in a task is never lost: join() and gather return it with its traceback; a task that
-- fails and is never joined is reported once, when it is collected, to the handler or the host.
local agentruns = require "agentruns"
local errors = require "agentruns.errors"
local sandbox = require "spec.support.sandbox"

local THIS = "spec/task_errors_spec%.lua"

local shell_quote = require("spec.support.files").shell_quote

-- Run `code` in a child interpreter; returns what it wrote to stdout and stderr, apart.
local function child(code)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local err_file = os.tmpname()
  local cmd = "env LUA_PATH=" .. shell_quote(package.path) .. " LUA_CPATH=" .. shell_quote(package.cpath)
    .. " " .. sandbox.interpreter() .. " " .. script .. " 2>" .. err_file
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  f = assert(io.open(err_file))
  local err = f:read("*a")
  f:close()
  os.remove(script)
  os.remove(err_file)
  return out, err, script
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("a task's error", function()
  local reports
  before_each(function()
    reports = {}
    agentruns.on_task_error(function(message, err) reports[#reports + 1] = { message = message, err = err } end)
  end)
  after_each(function()
    agentruns.on_task_error(nil)
    for _ = 1, 2 do collectgarbage() end
  end)

  local function collect()
    for _ = 1, 3 do collectgarbage() end
  end

  it("comes back from join() with a traceback naming the line that raised it", function()
    local line -- the line that raises, read where it stands so that edits above cannot shift it
    local task = agentruns.spawn(function()
      line = debug.getinfo(1, "l").currentline; error("boom")
    end)
    local ok, err = task:join()
    assert.is_nil(ok)
    assert.matches("^" .. THIS .. ":" .. line .. ": boom\nstack traceback:\n", err)
    assert.matches(THIS .. ":" .. line .. ":", err:match("stack traceback:(.*)$"))
  end)

  it("stays a table when it is one, with the traceback beside kind and status", function()
    local line
    local task = agentruns.spawn(function()
      line = debug.getinfo(1, "l").currentline; error(errors.new("http", "Run not found", { status = 404 }))
    end)
    local _, err = task:join()
    assert.same({ "http", 404, "http: Run not found (status 404)" }, { err.kind, err.status, tostring(err) })
    assert.matches("^stack traceback:\n.*" .. THIS .. ":" .. line .. ":", err.traceback)
  end)

  it("keeps its traceback in gather's results", function()
    local results = agentruns.gather {
      function() return 1 end,
      function() agentruns.sleep(0); error("late boom") end,
    }
    assert.same({ n = 1, 1 }, results[1])
    assert.same({ 2, nil }, { results[2].n, results[2][1] })
    assert.matches("^" .. THIS .. ":%d+: late boom\nstack traceback:\n", results[2][2])
    collect()
    assert.same({}, reports) -- gather joined it
  end)

  it("is reported once when a task nobody joined is collected", function()
    agentruns.spawn(function() error("nobody joins me") end)
    agentruns.spawn(function() agentruns.sleep(0); error("nor me, later") end)
    agentruns.sleep(0.01) -- the second one fails here
    collect()
    assert.equal(2, #reports)
    table.sort(reports, function(a, b) return a.message < b.message end)
    assert.matches("^agentruns: a task failed and was never joined: " .. THIS .. ":%d+: nobody joins me\n"
      .. "stack traceback:\n", reports[1].message)
    assert.matches(THIS .. ":%d+: nor me, later", reports[2].message)
    collect()
    assert.equal(2, #reports)
  end)

  it("is not reported when the task was joined, before or after it failed", function()
    local early = agentruns.spawn(function() agentruns.sleep(0); error("joined first") end)
    local done = agentruns.spawn(function() error("joined after") end)
    assert.is_nil((early:join()))
    assert.is_nil((done:join()))
    early, done = nil, nil -- luacheck: ignore 311
    collect()
    assert.same({}, reports)
  end)

  it("reports a table error with its message and traceback", function()
    agentruns.spawn(function() error(errors.new("timeout", "no answer")) end)
    collect()
    assert.equal(1, #reports)
    assert.matches("^agentruns: a task failed and was never joined: timeout: no answer\nstack traceback:\n",
                   reports[1].message)
    assert.equal("timeout", reports[1].err.kind)
  end)

  it("goes to stderr by default, once, even when the script just ends", function()
    local out, err, script = child [[
      local agentruns = require "agentruns"
      agentruns.spawn(function() error("lost at exit") end) -- line 2
      local kept = agentruns.spawn(function() error("joined, not reported") end)
      kept:join()
      print("done")
    ]]
    assert.equal("done\n", out)
    local name = script:gsub("%p", "%%%0")
    assert.equal(1, count(err, "agentruns: a task failed and was never joined: "))
    assert.matches("agentruns: a task failed and was never joined: " .. name .. ":2: lost at exit\n"
      .. "stack traceback:\n", err)
    assert.is_nil(err:find("joined, not reported", 1, true))
  end)

  it("still reaches stderr when the handler itself fails", function()
    local _, err = child [[
      local agentruns = require "agentruns"
      agentruns.on_task_error(function() error("a broken handler") end)
      agentruns.spawn(function() error("boom") end)
      collectgarbage(); collectgarbage()
    ]]
    assert.equal(1, count(err, "agentruns: a task failed and was never joined: "))
    assert.matches(":3: boom", err)
  end)

  it("refuses a handler that is not a function", function()
    assert.has_error(function() agentruns.on_task_error(42) end,
                     "agentruns.on_task_error: expected a function or nil")
  end)
end)

describe("a task's error under Neovim's loop", function()
  local has_nvim = os.execute("command -v nvim >/dev/null 2>&1")
  has_nvim = has_nvim == true or has_nvim == 0
  it("reaches vim.notify at ERROR level, once, and not for the joined task", function()
    if not has_nvim then
      pending("nvim is not installed (scripts/deps.sh installs the neovim package)")
      return
    end
    local r, out = require("spec.support.nvim").run("spec/support/nvim_task_error.lua")
    assert(r, "no result from nvim:\n" .. out)
    assert.equal(1, #r.notes, out)
    assert.equal(r.error_level, r.notes[1].level)
    assert.matches("^agentruns: a task failed and was never joined: .-E5560", r.notes[1].message)
    assert.matches("stack traceback:\n.-spec/support/nvim_task_error%.lua:%d+", r.notes[1].message)
    assert.matches("joined, so never reported", r.joined_error)
  end)
end)

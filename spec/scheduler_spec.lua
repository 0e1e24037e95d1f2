-- agentruns.spawn / gather / sleep: tasks whose calls share one curl multi loop.
local agentruns = require "agentruns"
local curl = require "agentruns.curl"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"

local sb, control

local function stats(reset)
  local t = control:request { url = sb.url .. "/_sandbox/stats" .. (reset and "/reset" or ""),
                              method = reset and "POST" or "GET" }
  return cjson.decode(assert(t:wait()).body)
end

setup(function()
  sb = sandbox.start { step_delay = 0.03, keepalive = 0.2 }
  control = curl.session()
end)

teardown(function()
  control:close()
  sb.stop()
end)

describe("agentruns scheduler", function()
  local tr
  before_each(function()
    tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key, base_url = sb.url .. "/toolregistry" }
  end)

  local SLOW = { headers = { ["x-sandbox-fault"] = "delay=0.2" } }
  local HELD = { headers = { ["x-sandbox-fault"] = "delay=1.5" } }

  it("runs 50 gathered calls at once, and returns their results in order", function()
    stats(true)
    local fns = {}
    for i = 1, 50 do
      -- each held 1.5 s: far longer than starting all 50 takes, even under valgrind on a busy machine
      fns[i] = function() return tr:list_runs({ pageSize = 1, page = i }, HELD) end
    end
    local results = agentruns.gather(fns)
    assert.equal(50, #results)
    for i = 1, 50 do
      assert.same({ 1, i }, { results[i].n, results[i][1].pagination.page })
    end
    assert.equal(50, stats().max_in_flight)
  end)

  it("leaves plain calls sequential", function()
    stats(true)
    for i = 1, 3 do assert(tr:list_runs({ pageSize = 1, page = i }, SLOW)) end
    assert.equal(1, stats().max_in_flight)
  end)

  -- PUC Lua 5.1 cannot yield from inside a generic for's iterator; next() works everywhere.
  local for_loops_yield = _VERSION ~= "Lua 5.1" or require("agentruns.compat").jit ~= nil

  for _, style in ipairs { "next", "for" } do
    it("streams in one task while others call (" .. style .. " loops)", function()
      if style == "for" and not for_loops_yield then
        pending("PUC Lua 5.1: a for loop's iterator cannot yield; use :next() in tasks")
        return
      end
      local function each(iter, fn)
        if style == "for" then
          for item in iter do fn(item) end
        else
          while true do
            local item, err = iter:next()
            assert(err == nil, tostring(err))
            if item == nil then break end
            fn(item)
          end
        end
      end
      local run = assert(tr:create_run { intent = "Tally the week", selectedCustomerIntegrationIds = { "*" },
                                         context = "", userId = "user-123" })
      local results = agentruns.gather {
        function()
          local ids = {}
          each(tr:stream_events(run.runId), function(ev) ids[#ids + 1] = tonumber(ev.id) end)
          return ids
        end,
        function() return #assert(tr:list_integrations()) end,
        function()
          local n = 0
          each(tr:each_run({}, { max_items = 25 }), function() n = n + 1 end)
          return n
        end,
      }
      local ids = results[1][1]
      assert.is_true(#ids >= 5)
      for i = 1, #ids do assert.equal(i, ids[i]) end
      assert.same({ 4, 25 }, { results[2][1], results[3][1] })
    end)
  end

  it("sleeps without holding up other tasks", function()
    local order = {}
    agentruns.gather {
      function() agentruns.sleep(1.5); order[#order + 1] = "slept" end, -- outlasts the call, even under load
      function() assert(tr:list_integrations()); order[#order + 1] = "called" end,
    }
    assert.same({ "called", "slept" }, order)
  end)

  it("returns what a task returned, or nil and the error it raised", function()
    local results = agentruns.gather {
      function() return 1, nil, 3 end,
      function() error("boom", 0) end,
      function() return tr:get_run("not-a-uuid") end,
    }
    assert.same({ n = 3, 1, nil, 3 }, results[1])
    assert.same({ 2, nil }, { results[2].n, results[2][1] })
    assert.matches("^boom\nstack traceback:\n", results[2][2]) -- error(msg, 0): no position, still a traceback
    assert.same({ nil, "invalid_argument" }, { results[3][1], results[3][2].kind })
  end)

  it("keeps every task when one waits inside a coroutine of its own", function()
    local results = agentruns.gather {
      function() agentruns.sleep(0.05) return 1 end,
      function()
        agentruns.sleep(0.01)
        return coroutine.wrap(function() agentruns.sleep(0.1) return 2 end)()
      end,
      function() agentruns.sleep(0.2) return 3 end,
    }
    assert.same({ { n = 1, 1 }, { n = 1, 2 }, { n = 1, 3 } }, results)
    assert.equal(0, require("agentruns.scheduler").pending())
  end)

  it("lets a task wait for another", function()
    local first = agentruns.spawn(function() return #assert(tr:list_integrations()) end)
    local second = agentruns.spawn(function() return first:join() + 1 end)
    assert.equal(5, second:join())
    assert.is_true(first:done())
  end)

  it("lets several tasks wait for one, and takes a bare yield as giving way", function()
    local first = agentruns.spawn(function() agentruns.sleep(0.05) return 10 end)
    local joins = {}
    for i = 1, 3 do joins[i] = agentruns.spawn(function() return first:join() + i end) end
    local yielder = agentruns.spawn(function()
      coroutine.yield { deadline = 0, ready = false } -- not a wait, whatever it looks like
      coroutine.yield()
      return "resumed"
    end)
    assert.same({ 11, 12, 13 }, { joins[1]:join(), joins[2]:join(), joins[3]:join() })
    assert.equal("resumed", yielder:join())
    assert.equal(0, require("agentruns.scheduler").pending())
  end)

  it("raises on misuse", function()
    assert.has_error(function() agentruns.spawn(42) end, "agentruns.spawn: fn must be a function")
    assert.has_error(function() agentruns.gather { 1 } end, "agentruns.gather: item 1 is not a function")
    assert.has_error(function() agentruns.sleep(-1) end, "agentruns.sleep: seconds must be >= 0")
  end)
end)

-- humm:wait_run against the sandbox's live Humm runs: polling get_run until the run has ended,
-- each status change told once, a failed run returned as it ended, the timeout, bad options.
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local UNKNOWN = "00000000-0000-4000-8000-000000000000"

describe("humm:wait_run", function()
  local sb, ctl, humm

  setup(function()
    sb = sandbox.start { seed = 1 }
    ctl = support.control(sb)
    humm = support.client(sb, "humm")
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function() ctl.clear() end)

  -- An on_update that steps a manual live run on once per status it is told of.
  local function stepping(id, seen)
    return function(answer)
      seen[#seen + 1] = answer.run.status
      if answer.run.status == "triggered" or answer.run.status == "running" then ctl.advance("humm", id) end
    end
  end

  it("polls a schedule's run until it completes, telling each status once", function()
    local live = ctl.live_run("humm", { manual = true })
    local seen = {}
    local answer = assert(humm:wait_run(live.id, { interval = 0.01, on_update = stepping(live.id, seen) }))
    assert.same({ "triggered", "running", "completed" }, seen)
    assert.same({ live.id, live.schedule_id, "completed" }, { answer.run.id, answer.schedule.id, answer.run.status })
    assert.is_string(answer.run.summary)
    assert.equal(3, #ctl.requests())
    -- the run is the schedule's newest, in its history too
    assert.equal(live.id, assert(humm:get_schedule_history(live.schedule_id, { limit = 1 })).runs[1].id)
  end)

  it("returns a failed run with its error_message, and a run already ended at once", function()
    local live = ctl.live_run("humm", { manual = true, outcome = "failed" })
    local answer = assert(humm:wait_run(live.id, { interval = 0.01, on_update = stepping(live.id, {}) }))
    assert.same({ "failed", "The data source timed out" }, { answer.run.status, answer.run.error_message })
    assert.is_true(humm:is_terminal(answer.run.status))
    ctl.clear()
    assert(humm:wait_run(live.id))
    assert.equal(1, #ctl.requests())
  end)

  it("gives up after its timeout with the last answer in the error", function()
    local live = ctl.live_run("humm", { manual = true })
    local answer, err = humm:wait_run(live.id, { timeout = 0.05, interval = 0.01 })
    assert.is_nil(answer)
    assert.same({ "timeout", true, "triggered" }, { err.kind, err.retryable, err.run.run.status })
  end)

  it("ends at once with the API's 404 for an unknown run", function()
    local _, err = humm:wait_run(UNKNOWN, { interval = 0.01 })
    assert.same({ "http", 404, "Run not found", false }, { err.kind, err.status, err.message, err.retryable })
    assert.equal(1, #ctl.requests())
  end)

  it("refuses bad options before anything is sent", support.refusal_test(
    { "", function() return humm:wait_run(UNKNOWN, { on_poll = "yes" }) end, "on_poll", "on_poll: must be a function" },
    function() return ctl end))
end)
